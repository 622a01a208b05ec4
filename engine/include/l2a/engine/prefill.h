// The prefill runner: one document through the whole model, chunked so that memory grows
// about linearly in the number of tokens (no T x T matrix is ever formed).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/observer.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/timed_range.h"

namespace l2a {

class ProcessGroup;

class Cancelled : public Error {
public:
    Cancelled() : Error("run cancelled") {}
};

// A residual-stream state [num_tokens, hidden_size] kept by a run. It stays where the run
// computed it, in the run's dtype: on the GPU for a CUDA run, so that a what-if re-run or the
// attention lens starts from it without a round trip through the host, and exactly the run's own
// values (bf16/fp16 states widen losslessly to the fp32 rows `host` gives). Copies share the
// state, which never changes once kept.
class HiddenState {
public:
    struct Impl;
    HiddenState() = default;
    // fp32 host rows [rows, hidden] (a state from elsewhere: a file, a test).
    HiddenState(std::vector<float> rows, std::int64_t hidden_size);

    bool empty() const { return !impl_; }
    std::int64_t rows() const;
    std::int64_t hidden_size() const;
    // Values: rows * hidden_size.
    std::size_t size() const;
    // Bytes it holds where it is kept (device or host), not counting a copy made by `host`.
    std::int64_t bytes() const;
    // Whether it is kept in GPU memory.
    bool on_device() const;
    // The fp32 host rows, row-major: copied from the device on the first call and kept (for
    // callers that read the values; runs and the lens use the state where it is).
    const std::vector<float>& host() const;

    const Impl* impl() const { return impl_.get(); }
    explicit HiddenState(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

private:
    std::shared_ptr<Impl> impl_;
};

// Residual-stream checkpoints of a run, for what-if re-runs from a chosen layer and the attention
// lens. Memory: T * hidden * (bytes of the run's dtype) per kept layer, on the run's device.
struct ResidualCheckpoints {
    // What to keep: the state entering every layer, or entering the listed layers only.
    bool every_layer = false;
    std::vector<int> layers;
    // Filled by the run. entering[l]: the state entering layer l (empty where not kept; layers
    // below a run_prefill_from start are never kept). final_hidden: after the last layer,
    // before the final norm, always kept.
    std::vector<HiddenState> entering;  // [num_layers]
    HiddenState final_hidden;
    std::int64_t num_tokens = 0;
    std::int64_t hidden_size = 0;
};

// Where a run is, as typed fields, so that no display parses a stage name.
struct RunProgress {
    double fraction = 0.0;  // of the whole run, in [0, 1]; never goes back
    // Layer: `layer` is next (the layers below it are done); Mlp: inside `layer`, its routing
    // decided; LmHead: the layers are done, the LM head (and per-token loss) runs.
    Phase phase = Phase::Layer;
    std::int64_t layer = -1;  // counted from 0, as the views count; -1 outside the layers
    std::int64_t num_layers = 0;
    bool operator==(const RunProgress&) const = default;
};

// The one text for people, layers counted from 0 as the views count them: "layer 4 of 0-5",
// "layer 3 of 0-5: mlp", "LM head and per-token loss".
std::string describe(const RunProgress& progress);

struct PrefillHooks {
    PrefillObserver* observer = nullptr;
    // Called at each layer, inside each layer once its routing is decided, and for each block of
    // LM head rows; the last call of a finished run has fraction 1.
    std::function<void(const RunProgress&)> progress;
    // Checked between chunks and layers; when it becomes true the run throws l2a::Cancelled.
    const std::atomic<bool>* cancel = nullptr;
    // Receives the float32 next-token logits in order, `rows` rows of `vocab` floats at a time.
    std::function<void(std::int64_t first_row, std::int64_t rows, std::int64_t vocab,
                       const float* data)>
        logits_sink;
    // When set, receives the run's residual-stream checkpoints (see ResidualCheckpoints).
    ResidualCheckpoints* checkpoints = nullptr;
    // What-if variants: the final state of the run this one is compared with (its base's). With
    // the per-token loss, the LM head pass then also compares the two runs' next-token
    // distributions (PrefillResult::reference_kl), the reference's logits computed only for the
    // blocks of rows whose final state differs.
    const HiddenState* reference_final = nullptr;
    // With reference_final: the reference's per-token loss (its PrefillResult::token_nll, same
    // model and tokens). The rows whose final state equals the reference's then take its loss
    // as they are, and the LM head runs only on the rows that differ and on the last row.
    std::span<const float> reference_nll;
    // >= 0: the run stops on reaching this layer, having kept the state entering it when
    // `checkpoints` asks for it; no later layer and no LM head run (the attention lens needs the
    // state entering a layer that was not kept: a run from the nearest kept layer below it).
    std::int64_t stop_at_layer = -1;
    // When set (L2A models), the run computes each layer's routing-oracle distant mass from the
    // state entering the layer, as distant_mass (lens.h) does but on the run's device, where the
    // state stays, and hands over the layer's [rows] values, one layer at a time.
    std::function<void(int layer, std::span<const float> mass)> distant_mass;
    // Tensor parallel (tensor_parallel.h): the group whose ranks run the other shards of the
    // model, which must then be this rank's shard_for_rank. Every rank makes the same calls with
    // the same tokens and options; each gets the single-process result. The partial outputs of
    // every O and down projection are summed across the ranks, each sum recorded as an
    // all-reduce range of its layer. CPU and fp32 only; not with distant_mass.
    ProcessGroup* group = nullptr;
};

struct PrefillResult {
    std::int64_t num_tokens = 0;
    std::int64_t num_layers = 0;
    std::vector<float> router_logits;     // [num_layers, num_tokens]; NaN for plain layers
    std::vector<std::uint8_t> decisions;  // [num_layers, num_tokens]; applied decisions
    std::vector<float> token_nll;         // [num_tokens]; token_nll[0] = NaN (no prediction)
    std::vector<TimedRange> ranges;       // host-timed ranges (CUDA: synchronized)
    std::vector<float> last_logits;       // [vocab] logits of the last row (next token)
    double wall_seconds = 0.0;
    // The start of the run on the steady clock (CLOCK_MONOTONIC, ns), which the processes of one
    // computer share: the ranges of a tensor-parallel run's ranks line up by it.
    std::int64_t started_ns = 0;
    std::string device;                  // "cpu" or the GPU's name
    std::int64_t peak_device_bytes = 0;  // CUDA: peak bytes allocated during the run
    // With PrefillHooks::reference_final: per token, KL(reference || this run) of the next-token
    // distributions ([num_tokens]; exactly 0 where the final states are equal), and the number of
    // tokens whose top next token is the same. Empty when not computed.
    std::vector<double> reference_kl;
    std::int64_t reference_top1_agree = 0;
};

// CPU threads the engine's operators use (LibTorch intra-op threads); 0 keeps the default (one
// per core). More threads than free cores makes OpenMP's spinning workers much slower.
void set_cpu_threads(int threads);
int cpu_threads();

// How busy this machine's processors are: cores the process may use and the 1-minute load
// average (-1 when the system does not say).
struct CpuLoad {
    int cores = 1;
    double load1 = -1.0;
};
CpuLoad cpu_load();

// The thread count a run uses unless told otherwise: OMP_NUM_THREADS when set, else the cores
// not already busy (cores minus the rounded load average, at least 1). On a loaded machine one
// thread per core makes OpenMP's spinning workers many times slower than fewer threads.
int default_cpu_threads();
int default_cpu_threads(const CpuLoad& load);

// Throws l2a::Error for bad input (empty token list, ids outside the vocabulary, bad options:
// prune index out of range, threshold outside (0, 1)) and l2a::Cancelled when cancelled.
PrefillResult run_prefill(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks = {});

// Resumes a run at `start_layer` (0..num_layers) from `hidden_at_start`, the state entering
// that layer as ResidualCheckpoints holds it: runs layers start_layer.. and the LM head. With
// the checkpoint of a run with the same options below start_layer, the result equals that of
// run_prefill (same device and backend). Layers below start_layer are not run: their router
// logits are NaN and their decisions 0; callers take them from the run they resume. Ranges
// and progress cover the layers run. Throws l2a::Error as run_prefill does, and for a start
// outside 0..num_layers or a checkpoint that is not num_tokens x hidden_size.
PrefillResult run_prefill_from(const Model& model, std::span<const std::int32_t> tokens,
                               const RunOptions& options, int start_layer,
                               std::span<const float> hidden_at_start,
                               const PrefillHooks& hooks = {});

// The same from a kept state (ResidualCheckpoints): where it is on the model's device, the run
// starts from a device copy of it, with no transfer through the host.
PrefillResult run_prefill_from(const Model& model, std::span<const std::int32_t> tokens,
                               const RunOptions& options, int start_layer,
                               const HiddenState& hidden_at_start, const PrefillHooks& hooks = {});

// The LM head alone over final hidden states (ResidualCheckpoints::final_hidden, `rows` rows):
// final norm and head as run_prefill computes them on the CPU, the fp32 logits delivered to
// `sink` in order, a block of rows at a time. Throws l2a::Error for a size mismatch.
void run_lm_head(const Model& model, std::span<const float> final_hidden, std::int64_t rows,
                 const std::function<void(std::int64_t first_row, std::int64_t rows,
                                          std::int64_t vocab, const float* data)>& sink,
                 std::int64_t block_rows = 256);

}  // namespace l2a
