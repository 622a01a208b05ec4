#include "l2a/engine/prefill.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "attention.h"
#include "device_runtime.h"
#include "hidden_state.h"
#include "l2a/engine/device.h"
#include "l2a/engine/process_group.h"
#include "layer_ops.h"
#include "lens_math.h"
#include "model_impl.h"
#include "process_group_tensor.h"
#include "splitmix.h"
#include "top_routing.h"

namespace l2a {
namespace {

using Clock = std::chrono::steady_clock;

// Host-timed named ranges, forwarded to the observer and kept for the Profile. On a GPU the
// stream is synchronized at both ends, so that a range times the work queued inside it.
class RangeRecorder {
public:
    RangeRecorder(PrefillObserver* observer, std::vector<TimedRange>& out, const at::Device& device)
        : observer_(observer), out_(out), device_(device), start_(Clock::now()) {}

    // `layer`: the layer of a layer phase, -1 for the stages outside the layers.
    void begin(Phase phase, std::int64_t layer) {
        synchronize(device_);
        const auto index = static_cast<std::int32_t>(layer);
        if (observer_) observer_->on_range_begin(range_name(phase, index));
        open_.push_back(out_.size());
        out_.push_back({phase, index, now_ns(), 0, static_cast<int>(open_.size()) - 1, {}});
    }
    void end() {
        synchronize(device_);
        close();
    }
    // Closes ranges left open by an exception so observers see balanced pairs (no
    // synchronization: the device may be what failed).
    void unwind() {
        while (!open_.empty()) close();
    }
    // The layer of the innermost open range; -1 outside the layers.
    std::int32_t current_layer() const { return open_.empty() ? -1 : out_[open_.back()].layer; }
    // The innermost open range ("layer 3 / mlp"), for error messages.
    std::string current() const {
        return open_.empty() ? "the run" : range_name(out_[open_.back()]);
    }
    double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
    // When the run started, on the steady clock.
    std::int64_t started_ns() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(start_.time_since_epoch())
            .count();
    }

private:
    void close() {
        TimedRange& range = out_[open_.back()];
        open_.pop_back();
        range.end_ns = now_ns();
        if (observer_) observer_->on_range_end(range_name(range));
    }
    std::int64_t now_ns() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    }
    PrefillObserver* observer_;
    std::vector<TimedRange>& out_;
    at::Device device_;
    std::vector<std::size_t> open_;
    Clock::time_point start_;
};

struct Range {
    Range(RangeRecorder& recorder, Phase phase, std::int64_t layer = -1) : recorder(recorder) {
        recorder.begin(phase, layer);
    }
    ~Range() noexcept(false) {
        // During unwinding the recorder's unwind() closes what is left, without touching the
        // device.
        if (std::uncaught_exceptions() == exceptions_) recorder.end();
    }
    Range(const Range&) = delete;
    Range& operator=(const Range&) = delete;
    RangeRecorder& recorder;
    int exceptions_ = std::uncaught_exceptions();
};

Backend validate(const Model& model, std::span<const std::int32_t> tokens,
                 const RunOptions& options) {
    const ModelConfig& c = model.config();
    const Model::Impl& m = model.impl();
    const std::string& where = model.summary().path;
    if (tokens.empty()) fail("", "nothing to run: the input has no tokens");
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
            fail("", "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                         " is outside the model's vocabulary (0.." +
                         std::to_string(c.vocab_size - 1) + ")");
        }
    }
    if (options.chunk_size < 1) fail("", "--chunk: must be at least 1");
    if (canonical_device(options.device) != canonical_device(m.placement.device)) {
        require_device(options.device);
        fail("", "--device " + options.device + ": the model was loaded on " + m.placement.device +
                     " (load it with the same device as the run)");
    }
    const std::optional<Backend> parsed = parse_backend(options.backend);
    if (!parsed) fail("", "--backend " + options.backend + ": expected " + kBackendChoices);
    const Backend backend = *parsed;
    if (backend != Backend::Reference) {
        if (m.device.is_cpu()) {
            fail("", "--backend " + options.backend +
                         ": runs on CUDA devices only (this run is on the CPU, where the backend "
                         "is reference)");
        }
        if (!cuda_built())
            fail("", "--backend " + options.backend + ": this build has no CUDA support");
    }
    if (backend == Backend::Kernels) {
        if (m.dtype != at::kBFloat16 && m.dtype != at::kHalf) {
            fail("", "--backend kernels: needs bf16 or fp16 weights (the model is placed in " +
                         m.placement.dtype + "; use --dtype bf16)");
        }
        if (c.head_dim != 64 && c.head_dim != 128) {
            fail("", "--backend kernels: head_dim " + std::to_string(c.head_dim) +
                         " is not supported by the kernels (64 or 128); use --backend sdpa");
        }
    }
    const bool l2a = c.is_l2a() && !options.as_base;
    if (!l2a) {
        const std::string plain = c.is_l2a()
                                      ? std::string("--as-base runs no router")
                                      : where + " is a plain " + model_type_name(c.model_type) +
                                            " model without L2A layers";
        if (options.routing.kind != RoutingKind::Learned) fail("", "--routing: " + plain);
        if (!options.prune.empty()) fail("", "--prune: " + plain);
        if (options.threshold) fail("", "--threshold: " + plain);
        return backend;
    }
    for (int layer : options.prune) {
        if (layer < 0 || layer >= c.num_hidden_layers) {
            fail("", "--prune: layer " + std::to_string(layer) + " does not exist (the model has " +
                         std::to_string(c.num_hidden_layers) + " layers: 0-" +
                         std::to_string(c.num_hidden_layers - 1) + ")");
        }
    }
    if (options.threshold && !(*options.threshold > 0.0 && *options.threshold < 1.0)) {
        fail("", "--threshold: " + std::to_string(*options.threshold) +
                     " is not a probability strictly between 0 and 1");
    }
    return backend;
}

AttentionBackend backend_function(Backend backend) {
#if L2A_ENGINE_CUDA
    if (backend == Backend::Sdpa) return &sdpa_attention;
    if (backend == Backend::Kernels) return &kernels_attention;
#else
    (void)backend;
#endif
    return &reference_attention;
}

// Whether a routing policy reads the router logits (the others decide without them).
bool reads_logits(RoutingKind kind) {
    return kind == RoutingKind::Learned || kind == RoutingKind::Top;
}

// Applies the routing policy to one layer's router logits z (one per decision in `out`; not read
// by the policies that reads_logits() says decide without them).
void apply_policy(const RunOptions& options, const L2AConfig& l2a, int layer,
                  std::span<const float> z, std::span<std::uint8_t> out) {
    const std::size_t t = out.size();
    switch (options.routing.kind) {
        case RoutingKind::Learned: {
            const double cut = decision_cut(l2a, options.threshold);
            for (std::size_t i = 0; i < t; ++i) out[i] = static_cast<double>(z[i]) >= cut ? 1 : 0;
            break;
        }
        case RoutingKind::Global:
            std::fill(out.begin(), out.end(), 1);
            break;
        case RoutingKind::Local:
            std::fill(out.begin(), out.end(), 0);
            break;
        case RoutingKind::Random: {
            std::uint64_t state =
                options.seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(layer + 1));
            for (std::size_t i = 0; i < t; ++i) {
                const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
                out[i] = u < options.routing.fraction ? 1 : 0;
            }
            break;
        }
        case RoutingKind::Top: {
            const auto keep = static_cast<std::size_t>(
                std::llround(options.routing.fraction * static_cast<double>(t)));
            route_top(z, keep, out);
            break;
        }
    }
}

// Copies a device tensor's elements to a host span of the same length.
// (One copy straight into `out`: no intermediate host tensor, whose fresh pages cost more than
// the transfer.)
template <typename T>
void copy_to_host(const at::Tensor& t, T* out) {
    if (t.numel() == 0) return;
    at::from_blob(out, {t.numel()}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value))
        .copy_(t.reshape({t.numel()}));
}

}  // namespace

std::string describe(const RunProgress& progress) {
    if (progress.phase == Phase::LmHead) return "LM head and per-token loss";
    if (!is_layer_phase(progress.phase) || progress.layer < 0) return phase_name(progress.phase);
    std::string text = "layer " + std::to_string(progress.layer);
    if (progress.num_layers > 0) text += " of 0-" + std::to_string(progress.num_layers - 1);
    if (progress.phase != Phase::Layer) text += std::string(": ") + phase_name(progress.phase);
    return text;
}

void set_cpu_threads(int threads) {
    if (threads > 0) at::set_num_threads(threads);
}

int cpu_threads() { return at::get_num_threads(); }

CpuLoad cpu_load() {
    CpuLoad load;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        load.cores = std::max(1, CPU_COUNT(&set));
    } else {
        load.cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    }
    double averages[1] = {0.0};
    if (getloadavg(averages, 1) == 1 && std::isfinite(averages[0]) && averages[0] >= 0.0) {
        load.load1 = averages[0];
    }
    return load;
}

int default_cpu_threads(const CpuLoad& load) {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long n = std::strtol(env, &end, 10);
        if (end != env && *end == '\0' && n > 0 && n <= 4096) return static_cast<int>(n);
    }
    const int cores = std::max(1, load.cores);
    if (load.load1 < 0.0) return cores;
    const int busy = static_cast<int>(std::lround(load.load1));
    return std::clamp(cores - busy, 1, cores);
}

int default_cpu_threads() { return default_cpu_threads(cpu_load()); }

namespace {

// Keeps a copy of the rows x [T, d] where they are, in their dtype (the layers update x in place).
void keep_hidden(const at::Tensor& x, HiddenState& out) { out = hidden_state(x.clone()); }

// NaN or Inf in the residual stream make every later number meaningless (the loss comes out as
// "n/a"): the run stops and says where it happened.
[[noreturn]] void nonfinite_activations(const Model& model, std::int64_t layer) {
    fail(model.summary().path,
         "layer " + std::to_string(layer) +
             " produced non-finite activations (NaN or Inf); the run is stopped (the layer's "
             "weights, or values too large for " +
             model.placement().dtype + ", are the likely cause)");
}

// What a run records around the arithmetic: timed ranges (forwarded to the observer), layer
// events, progress, cancellation, residual checkpoints and the check for non-finite
// activations. The arithmetic only marks where its phases begin and end.
class RunRecorder {
public:
    RunRecorder(const Model& model, const PrefillHooks& hooks, PrefillResult& result,
                const at::Device& device)
        : model_(model),
          hooks_(hooks),
          ranges_(hooks.observer, result.ranges, device),
          cuda_(device.is_cuda()),
          layers_(result.num_layers) {
        if (ResidualCheckpoints* keep = hooks.checkpoints) {
            keep->entering.assign(static_cast<std::size_t>(result.num_layers), {});
            keep->final_hidden = {};
            keep->num_tokens = result.num_tokens;
            keep->hidden_size = model.config().hidden_size;
        }
    }

    // Throws Cancelled once the caller asked the run to stop.
    void check() const {
        if (hooks_.cancel && hooks_.cancel->load(std::memory_order_relaxed)) throw Cancelled();
    }
    // Before `layer` runs (the layers below it are done); at num_layers the LM head is next.
    void progress_at_layer(std::int64_t layer) const {
        if (layer < layers_) {
            progress(Phase::Layer, layer, static_cast<double>(layer));
        } else {
            progress(Phase::LmHead, -1, static_cast<double>(layers_));
        }
    }
    // `rows`: the fraction of the LM head's rows done.
    void progress_in_lm_head(double rows) const {
        progress(Phase::LmHead, -1, static_cast<double>(layers_) + rows);
    }

    // A stage outside the layers (Phase::Embed, Phase::LmHead).
    Range range(Phase phase) { return Range(ranges_, phase); }
    // One part of a layer: (3, Phase::Router) is shown as "layer 3 / router".
    Range phase(std::int64_t layer, Phase phase) { return Range(ranges_, phase, layer); }
    // A collective (tensor parallel) inside the current layer part.
    Range all_reduce() { return Range(ranges_, Phase::AllReduce, ranges_.current_layer()); }

    // Keeps x, the state entering `layer`, when asked to.
    void keep_entering(std::int64_t layer, const at::Tensor& x) {
        if (keeps(layer))
            keep_hidden(x, hooks_.checkpoints->entering[static_cast<std::size_t>(layer)]);
    }
    // Enters a layer with x the residual stream: keeps x when asked, and opens the layer's range.
    Range begin_layer(std::int64_t layer, const at::Tensor& x) {
        check();
        if (keeps(layer))
            keep_hidden(x, hooks_.checkpoints->entering[static_cast<std::size_t>(layer)]);
        if (hooks_.distant_mass) {
            // Outside the layer's range: the oracle's work is not the layer's time.
            const std::vector<float> mass = layer_distant_mass(model_, x, static_cast<int>(layer));
            hooks_.distant_mass(static_cast<int>(layer), mass);
        }
        if (hooks_.observer) hooks_.observer->on_layer_begin(static_cast<int>(layer));
        return Range(ranges_, Phase::Layer, layer);
    }
    // The layer's routing is decided; what is left of it is the MLP.
    void routed(std::int64_t layer, std::span<const float> z,
                std::span<const std::uint8_t> d) const {
        if (hooks_.observer) hooks_.observer->on_routing(static_cast<int>(layer), z, d);
        progress(Phase::Mlp, layer, static_cast<double>(layer) + 0.8);
    }
    // x is the layer's output: one reduction over it (min and max, which NaN and Inf reach,
    // with no full-size temporary), called inside the layer's last phase so that its kernels
    // fall in that range. The CPU reads it at once; on CUDA each layer's flag stays on the device
    // until read_finite_flags, so the check adds no synchronization.
    void check_finite(std::int64_t layer, const at::Tensor& x) {
        const auto [lowest, highest] = at::aminmax(x);
        at::Tensor finite = at::isfinite(lowest).logical_and(at::isfinite(highest));
        if (cuda_) {
            finite_flags_.emplace_back(layer, std::move(finite));
        } else if (!finite.item<bool>()) {
            nonfinite_activations(model_, layer);
        }
    }
    // Leaves a layer.
    void end_layer(std::int64_t layer) {
        if (hooks_.observer) hooks_.observer->on_layer_end(static_cast<int>(layer));
        progress_at_layer(layer + 1);
    }
    // After the last layer, x the final hidden state: the checkpoint.
    void end_layers(const at::Tensor& x) {
        if (hooks_.checkpoints) keep_hidden(x, hooks_.checkpoints->final_hidden);
    }
    // The layers' flags from the device (CUDA); called inside the LM head's range, so that the
    // few kernels that gather them belong to a range of the timeline.
    void read_finite_flags() {
        if (finite_flags_.empty()) return;
        std::vector<at::Tensor> flags;
        for (const auto& [layer, flag] : finite_flags_) flags.push_back(flag);
        const at::Tensor host = at::stack(flags).to(at::kCPU);
        for (std::size_t i = 0; i < finite_flags_.size(); ++i) {
            if (!host[static_cast<std::int64_t>(i)].item<bool>()) {
                nonfinite_activations(model_, finite_flags_[i].first);
            }
        }
    }

    // The innermost open range, for error messages; unwind closes what an exception left open.
    std::string current() const { return ranges_.current(); }
    std::int32_t current_layer() const { return ranges_.current_layer(); }
    void unwind() { ranges_.unwind(); }
    double seconds() const { return ranges_.seconds(); }
    std::int64_t started_ns() const { return ranges_.started_ns(); }

private:
    // `done` counts layers; the LM head is one more.
    void progress(Phase phase, std::int64_t layer, double done) const {
        if (hooks_.progress) {
            const double fraction = std::clamp(done / static_cast<double>(layers_ + 1), 0.0, 1.0);
            hooks_.progress({fraction, phase, layer, layers_});
        }
    }
    bool keeps(std::int64_t layer) const {
        const ResidualCheckpoints* keep = hooks_.checkpoints;
        if (!keep) return false;
        return keep->every_layer || std::find(keep->layers.begin(), keep->layers.end(),
                                              static_cast<int>(layer)) != keep->layers.end();
    }

    const Model& model_;
    const PrefillHooks& hooks_;
    RangeRecorder ranges_;
    bool cuda_;
    std::int64_t layers_;
    std::vector<std::pair<std::int64_t, at::Tensor>>
        finite_flags_;  // CUDA: read after the last layer
};

// How a run turns an L2A layer's router logits into decisions.
struct Routing {
    const RunOptions& options;
    const L2AConfig& l2a;
    bool l2a_layers;  // false: plain layers (a plain model, or an L2A model run --as-base)
    std::vector<std::int64_t> positions{};  // the current layer's routed positions (reused)

    // Reads the logits z into z_out (the one host synchronization of a layer) and decides. A
    // decision that does not read them (a pruned layer, a random, all-global or all-local
    // policy) is made first, while the device is still computing them, so that the device
    // waits only for the copy.
    void decide(int layer, const at::Tensor& z, std::span<float> z_out,
                std::span<std::uint8_t> d_out) const {
        const bool pruned = std::binary_search(options.prune.begin(), options.prune.end(), layer);
        const bool after_copy = !pruned && reads_logits(options.routing.kind);
        if (pruned) {
            std::fill(d_out.begin(), d_out.end(), 0);
        } else if (!after_copy) {
            apply_policy(options, l2a, layer, {}, d_out);
        }
        copy_to_host(z, z_out.data());
        if (after_copy) apply_policy(options, l2a, layer, z_out, d_out);
    }
};

// The routed positions of one layer's decisions, ascending, written to `buffer`, which every
// layer of a run reuses (no allocation and no fresh pages per layer). Without a branch per
// token: a random policy's decisions would mispredict one branch in every few tokens.
std::span<const std::int64_t> routed_positions(std::span<const std::uint8_t> decisions,
                                               std::vector<std::int64_t>& buffer) {
    buffer.resize(decisions.size());
    std::size_t n = 0;
    for (std::size_t t = 0; t < decisions.size(); ++t) {
        buffer[n] = static_cast<std::int64_t>(t);
        n += decisions[t] != 0 ? 1 : 0;
    }
    return {buffer.data(), n};
}

// One decoder layer (L2A.md), in place on the residual stream x [T, d]. An L2A layer writes its
// router logits and decisions to z and d; a plain layer leaves them as they are.
void decoder_layer(const LayerOps& ops, const LayerWeights& w, Routing& routing, int layer,
                   at::Tensor& x, std::span<float> z, std::span<std::uint8_t> d,
                   RunRecorder& record) {
    if (!routing.l2a_layers) {
        // A plain Qwen layer (or an L2A layer run as its base): full causal attention with the
        // first attention set, i.e. global attention for every token.
        const Range r = record.phase(layer, Phase::Global);
        x.add_(ops.causal_attention(w.attn, ops.norm(x, w.input_norm), 0));
    } else {
        at::Tensor local;
        {
            const Range r = record.phase(layer, Phase::Local);
            local =
                ops.causal_attention(w.attn, ops.norm(x, w.input_norm), routing.l2a.sliding_window);
        }
        RouterOutput router;
        {
            const Range r = record.phase(layer, Phase::Router);
            router = ops.add_norm_router(x, std::move(local), w);  // x is now h = x + local
            routing.decide(layer, router.z, z, d);
        }
        const std::span<const std::int64_t> routed = routed_positions(d, routing.positions);
        if (!routed.empty()) {
            const Range r = record.phase(layer, Phase::Global);
            const QueryRows rows = ops.routed_rows(routed);
            ops.gated_add(x, ops.routed_attention(w.global, router.u, rows), rows);
        }
    }
    record.routed(layer, z, d);
    const Range r = record.phase(layer, Phase::Mlp);
    ops.add_mlp(x, w);
    record.check_finite(layer, x);
}

// The LM head over normalized final rows xn [n, d]: fp32 logits (for half-precision weights
// straight from the GEMM's fp32 accumulator), `block_rows` rows at a time, handed in order to
// `each(first_row, logits)`. `check` (when set) runs before each block.
void lm_head(const Model::Impl& m, const at::Tensor& xn, std::int64_t block_rows,
             const std::function<void()>& check,
             const std::function<void(std::int64_t, const at::Tensor&)>& each) {
    const std::int64_t rows = xn.size(0);
    for (std::int64_t r0 = 0; r0 < rows; r0 += block_rows) {
        if (check) check();
        const at::Tensor x = xn.narrow(0, r0, std::min(block_rows, rows - r0));
        each(r0, head_logits(m, x));
    }
}

// A resumed run's start and checkpoint (after the options: a bad --prune names itself rather than
// the layer the run would start at).
void validate_resume(const ModelConfig& config, std::size_t tokens, std::int64_t start_layer,
                     const HiddenState& hidden) {
    if (start_layer < 0 || start_layer > config.num_hidden_layers) {
        fail("", "re-run from layer " + std::to_string(start_layer) + ": the model has " +
                     std::to_string(config.num_hidden_layers) + " layers (start 0-" +
                     std::to_string(config.num_hidden_layers) + ")");
    }
    const std::size_t expected = tokens * static_cast<std::size_t>(config.hidden_size);
    if (hidden.size() != expected || hidden.hidden_size() != config.hidden_size) {
        fail("", "re-run from layer " + std::to_string(start_layer) + ": the checkpoint has " +
                     std::to_string(hidden.size()) + " values, expected " + std::to_string(tokens) +
                     " tokens x " + std::to_string(config.hidden_size));
    }
}

// The result before the run fills it: router logits NaN and decisions 1 (all global) for the
// layers to run; layers below `start_layer` are not run (NaN, 0); no per-token loss yet.
PrefillResult empty_result(const Model::Impl& m, std::int64_t tokens, std::int64_t start_layer) {
    const std::int64_t layers = m.config.num_hidden_layers;
    const auto cells = static_cast<std::size_t>(layers * tokens);
    PrefillResult result;
    result.num_tokens = tokens;
    result.num_layers = layers;
    result.router_logits.assign(cells, std::numeric_limits<float>::quiet_NaN());
    result.decisions.assign(cells, 1);
    std::fill_n(result.decisions.begin(), static_cast<std::size_t>(start_layer * tokens), 0);
    result.token_nll.assign(static_cast<std::size_t>(tokens),
                            std::numeric_limits<float>::quiet_NaN());
    result.device = device_label(m.device);
    return result;
}

// One layer's row [T] of a [num_layers, T] result array.
template <typename T>
std::span<T> layer_row(std::vector<T>& cells, std::int64_t layer, std::int64_t tokens) {
    return std::span<T>(cells.data() + layer * tokens, static_cast<std::size_t>(tokens));
}

// The tokens of a run on its device: ids, and every position as query rows with their RoPE
// tables. LayerOpsSettings refers to the rows, so an instance stays where it is made.
struct TokenInputs {
    TokenInputs(const ModelConfig& c, std::span<const std::int32_t> tokens,
                const at::Device& device)
        : rows(c, static_cast<std::int64_t>(tokens.size()),
               static_cast<std::int64_t>(tokens.size()), device) {
        at::Tensor ids_host = at::empty({static_cast<std::int64_t>(tokens.size())},
                                        at::TensorOptions().dtype(at::kLong));
        std::copy(tokens.begin(), tokens.end(), ids_host.data_ptr<std::int64_t>());
        ids = ids_host.to(device);
    }
    TokenInputs(const TokenInputs&) = delete;
    TokenInputs& operator=(const TokenInputs&) = delete;

    SequenceRows rows;
    at::Tensor ids;  // [T] int64 on the device
};

// The kernels' fused operators need rows of whole 16-byte vectors, at most 16384 wide (the MLP's
// SiLU product: its intermediate rows, this process's slice under tensor parallel).
bool fused_ops_fit(Backend backend, const ModelConfig& c) {
    return backend == Backend::Kernels && c.hidden_size % 8 == 0 && c.hidden_size <= 16384 &&
           c.intermediate_size % 8 == 0;
}

// The residual stream entering the first layer run: the token embeddings, or for a resumed run a
// copy of the checkpoint that the run owns (the layers update it in place), on the model's device
// in its dtype.
at::Tensor entering_state(const Model::Impl& m, const at::Tensor& ids, const at::Tensor& hidden,
                          RunRecorder& record) {
    if (!hidden.defined()) {
        const Range r = record.range(Phase::Embed);
        return m.embed.index_select(0, ids);
    }
    if (hidden.device() == m.device && hidden.scalar_type() == m.dtype) return hidden.clone();
    return hidden.to(m.device).to(m.dtype);
}

// A what-if variant's LM head pass where the reference (its base) left its final state and its
// per-token loss: the rows whose final state equals the reference's have the reference's logits,
// so they take its loss as it is, a KL of exactly 0 and the same top token. The LM head runs on
// the other rows and the last one (the next token's logits), gathered into blocks, and on the
// reference's state of the same rows for the comparison.
void head_on_changed_rows(const Model::Impl& m, const LayerOps& ops, const at::Tensor& x,
                          const at::Tensor& reference_state, const at::Tensor& changed,
                          const at::Tensor& ids, std::span<const float> reference_nll,
                          std::int64_t block_rows, at::ScalarType kl_math, PrefillResult& result,
                          RunRecorder& record) {
    const std::int64_t T = x.size(0);
    const std::int64_t vocab = m.config.vocab_size;
    std::copy(reference_nll.begin(), reference_nll.end(), result.token_nll.begin());
    at::Tensor wanted = changed.clone();
    wanted.narrow(0, T - 1, 1).fill_(true);
    const at::Tensor index = wanted.nonzero().flatten();  // ascending, int64, on the device
    const at::Tensor index_host = index.cpu();
    const std::int64_t* row_of = index_host.data_ptr<std::int64_t>();
    const std::int64_t n_rows = index.numel();
    std::vector<float> loss(static_cast<std::size_t>(block_rows));
    std::vector<double> kl(static_cast<std::size_t>(block_rows));
    std::vector<std::uint8_t> same(static_cast<std::size_t>(block_rows));
    for (std::int64_t r0 = 0; r0 < n_rows; r0 += block_rows) {
        record.check();
        const std::int64_t n = std::min(block_rows, n_rows - r0);
        const at::Tensor rows = index.narrow(0, r0, n);
        const at::Tensor logits =
            head_logits(m, ops.norm(x.index_select(0, rows).contiguous(), m.final_norm));
        const at::Tensor reference_logits = head_logits(
            m, ops.norm(reference_state.index_select(0, rows).contiguous(), m.final_norm));
        // Row t predicts token t + 1; the last row predicts none (its loss is not kept).
        const at::Tensor next = ids.index_select(0, (rows + 1).clamp_max(T - 1));
        const RowComparison compared =
            compare_next_token_rows(reference_logits, logits, kl_math, next);
        copy_to_host(compared.loss, loss.data());
        copy_to_host(compared.kl, kl.data());
        copy_to_host(compared.same_top.to(at::kByte), same.data());
        for (std::int64_t i = 0; i < n; ++i) {
            const std::int64_t t = row_of[r0 + i];
            const auto k = static_cast<std::size_t>(i);
            if (t + 1 < T) result.token_nll[static_cast<std::size_t>(t + 1)] = loss[k];
            result.reference_kl[static_cast<std::size_t>(t)] = kl[k];
            if (!same[k]) --result.reference_top1_agree;
        }
        if (r0 + n == n_rows) {
            result.last_logits.resize(static_cast<std::size_t>(vocab));
            copy_to_host(logits.narrow(0, n - 1, 1), result.last_logits.data());
        }
        record.progress_in_lm_head(static_cast<double>(r0 + n) / static_cast<double>(n_rows));
    }
}

// After the layers, x the final hidden state (released once normalized): the layers' finiteness
// flags, then the final norm and LM head into the result's last logits, the logits sink and the
// per-token NLL.
void head_and_loss(const Model::Impl& m, const LayerOps& ops, at::Tensor x, const at::Tensor& ids,
                   const RunOptions& options, const PrefillHooks& hooks, PrefillResult& result,
                   RunRecorder& record) {
    const Range r = record.range(Phase::LmHead);
    record.read_finite_flags();
    const std::int64_t T = x.size(0);
    const std::int64_t vocab = m.config.vocab_size;
    const std::int64_t block_rows =
        m.device.is_cuda() ? std::int64_t{2048} : std::max<std::int64_t>(options.chunk_size, 64);
    // Without the per-token NLL (and without a logits sink) only the last row is needed: the
    // next token's logits, which is all that time-to-first-token covers.
    const bool all_rows = options.token_nll || static_cast<bool>(hooks.logits_sink);
    const std::int64_t first = all_rows ? 0 : T - 1;
    // A what-if variant compared with its base: the rows whose final state differs.
    const HiddenState* reference = hooks.reference_final;
    at::Tensor reference_state;
    at::Tensor changed;  // [T] bool
    if (options.token_nll && reference && !reference->empty() &&
        reference->size() == static_cast<std::size_t>(x.numel())) {
        reference_state = state_tensor(*reference).view(x.sizes()).to(m.device).to(x.scalar_type());
        changed = at::ne(x, reference_state).any(1);
        result.reference_kl.assign(static_cast<std::size_t>(T), 0.0);
        result.reference_top1_agree = T;
    }
    const at::ScalarType kl_math = m.device.is_cpu() ? at::kDouble : at::kFloat;
    if (changed.defined() && !hooks.logits_sink &&
        hooks.reference_nll.size() == static_cast<std::size_t>(T)) {
        head_on_changed_rows(m, ops, x, reference_state, changed, ids, hooks.reference_nll,
                             block_rows, kl_math, result, record);
        return;
    }
    const at::Tensor xn = ops.norm(x.narrow(0, first, T - first), m.final_norm);
    x = at::Tensor();
    lm_head(
        m, xn, block_rows, [&record] { record.check(); },
        [&](std::int64_t row, const at::Tensor& logits) {
            const std::int64_t r0 = first + row;
            const std::int64_t n = logits.size(0);
            if (r0 + n == T) {
                result.last_logits.resize(static_cast<std::size_t>(vocab));
                copy_to_host(logits.narrow(0, n - 1, 1), result.last_logits.data());
            }
            if (hooks.logits_sink) {
                const at::Tensor host = logits.to(at::kCPU).contiguous();
                hooks.logits_sink(r0, n, vocab, host.data_ptr<float>());
            }
            // Row t predicts token t + 1.
            const std::int64_t predicted = options.token_nll ? std::min(n, T - 1 - r0) : 0;
            if (predicted > 0) {
                const at::Tensor nll = next_token_loss(logits.narrow(0, 0, predicted),
                                                       ids.narrow(0, r0 + 1, predicted));
                copy_to_host(nll, result.token_nll.data() + r0 + 1);
            }
            if (changed.defined() && changed.narrow(0, r0, n).any().item<bool>()) {
                // The reference's logits of the same block, through the same norm and GEMM shape:
                // rows with equal states get bit-equal logits, so their KL is exactly 0.
                const at::Tensor base_n = ops.norm(reference_state.narrow(0, r0, n), m.final_norm);
                const RowComparison rows =
                    compare_next_token_rows(head_logits(m, base_n), logits, kl_math);
                copy_to_host(rows.kl, result.reference_kl.data() + r0);
                result.reference_top1_agree -= n - rows.same_top.sum().item<std::int64_t>();
            }
            record.progress_in_lm_head(static_cast<double>(r0 + n) / static_cast<double>(T));
        });
}

// Called inside a catch block: closes the ranges the exception left open and throws it on, with
// LibTorch's errors (running out of memory among them) as an l2a::Error naming the stage.
[[noreturn]] void fail_run(RunRecorder& record, const at::Device& device, std::int64_t tokens) {
    const std::string stage = record.current();
    record.unwind();
    try {
        throw;
    } catch (const c10::OutOfMemoryError&) {
        fail("",
             out_of_memory_message(device, "running " + stage, std::to_string(tokens) + " tokens",
                                   "try --max-tokens or a smaller model"));
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        fail("", "LibTorch failed while running " + stage + " on " + device_label(device) + ": " +
                     what.substr(0, what.find('\n')));
    }
}

// The process group of a tensor-parallel run, checked against the shard; null for a whole model.
ProcessGroup* parallel_group(const Model& model, const PrefillHooks& hooks) {
    const Model::Impl& m = model.impl();
    const std::string& where = model.summary().path;
    ProcessGroup* group = hooks.group;
    if (!group) {
        if (m.shard_world > 1) {
            fail(where, "this is rank " + std::to_string(m.shard_rank) +
                            "'s shard of a model split across " + std::to_string(m.shard_world) +
                            " ranks: it runs only with the others (run_prefill_parallel, or "
                            "PrefillHooks::group)");
        }
        return nullptr;
    }
    if (m.shard_rank != group->rank() || m.shard_world != group->world()) {
        fail(where, "tensor parallel: the model is rank " + std::to_string(m.shard_rank) +
                        "'s shard of " + std::to_string(m.shard_world) + ", the process is rank " +
                        std::to_string(group->rank()) + " of " + std::to_string(group->world()) +
                        " (shard it with shard_for_rank for this rank)");
    }
    if (group->world() == 1) return nullptr;
    if (m.device.is_cpu() && m.dtype != at::kFloat) {
        fail(where, "tensor parallel on the CPU runs in fp32 (the model is placed in " +
                        m.placement.dtype + ")");
    }
    // Gloo sums host tensors, NCCL the tensors of its rank's GPU: the model must be there.
    const bool group_on_cpu = group->device() == "cpu";
    if (group_on_cpu != m.device.is_cpu() ||
        (!group_on_cpu &&
         at::Device(group->device() == "cuda" ? "cuda:0" : group->device()) != m.device)) {
        fail(where, "tensor parallel: the model is on " + m.device.str() +
                        ", the process group's collectives on " + group->device());
    }
    if (hooks.distant_mass) {
        fail(where, "tensor parallel: the distant-mass oracle is not supported");
    }
    return group;
}

// A test hook for what a rank's death does to the others: L2A_TEST_EXIT_AT=R:L makes rank R
// exit at once (status 3, no goodbye) when it reaches the first all-reduce of layer L.
std::optional<std::pair<int, int>> test_exit_point() {
    const char* value = std::getenv("L2A_TEST_EXIT_AT");
    if (!value) return std::nullopt;
    int rank = -1;
    int layer = -1;
    if (std::sscanf(value, "%d:%d", &rank, &layer) != 2) return std::nullopt;
    return std::pair{rank, layer};
}

// run_prefill from `start_layer`, with the state entering it (`hidden`: null to embed the tokens).
PrefillResult run_layers(const Model& model, std::span<const std::int32_t> tokens,
                         const RunOptions& options, std::int64_t start_layer,
                         const HiddenState* hidden, const PrefillHooks& hooks) {
    ProcessGroup* const group = parallel_group(model, hooks);
    const Backend backend = validate(model, tokens, options);
    if (hidden) validate_resume(model.config(), tokens.size(), start_layer, *hidden);
    const Model::Impl& m = model.impl();
    const auto T = static_cast<std::int64_t>(tokens.size());
    const std::int64_t L = m.config.num_hidden_layers;
    PrefillResult result = empty_result(m, T, start_layer);
    RunRecorder record(model, hooks, result, m.device);
    Routing routing{options, m.config.l2a, m.config.is_l2a() && !options.as_base};
    // Tensor parallel: the sum of the ranks' partial outputs, timed as an all-reduce range.
    PartialSum reduce;
    if (group) {
        reduce = [group, &record, exit_at = test_exit_point()](at::Tensor& partial) {
            const Range r = record.all_reduce();
            if (exit_at && exit_at->first == group->rank() &&
                exit_at->second == record.current_layer()) {
                std::fflush(nullptr);
                std::_Exit(3);
            }
            if (partial.is_cuda()) {
                // NCCL sums the partial outputs where they are, in the model's dtype.
                all_reduce_sum_tensor(*group, partial);
                return;
            }
            if (!partial.is_contiguous() || partial.scalar_type() != at::kFloat)
                partial = partial.to(at::kFloat).contiguous();
            group->all_reduce_sum(std::span<float>(partial.data_ptr<float>(),
                                                   static_cast<std::size_t>(partial.numel())));
        };
    }

    at::InferenceMode inference;
    bool stopped = false;
    reset_peak_memory(m.device);
    try {
        const TokenInputs inputs(m.config, tokens, m.device);
        LayerOpsSettings settings =
            layer_ops_settings(m, backend_function(backend), options.chunk_size, inputs.rows,
                               [&record] { record.check(); });
        settings.reduce = std::move(reduce);
        const std::unique_ptr<LayerOps> ops =
            make_layer_ops(std::move(settings), fused_ops_fit(backend, m.config));
        at::Tensor x = entering_state(
            m, inputs.ids,
            hidden ? state_tensor(*hidden).view({T, m.config.hidden_size}) : at::Tensor(), record);
        record.progress_at_layer(start_layer);
        for (std::int64_t li = start_layer; li < L; ++li) {
            if (li == hooks.stop_at_layer) {
                record.keep_entering(li, x);
                stopped = true;
                break;
            }
            const Range layer_range = record.begin_layer(li, x);
            decoder_layer(*ops, m.layers[static_cast<std::size_t>(li)], routing,
                          static_cast<int>(li), x, layer_row(result.router_logits, li, T),
                          layer_row(result.decisions, li, T), record);
            record.end_layer(li);
        }
        if (!stopped) {
            record.end_layers(x);
            head_and_loss(m, *ops, std::move(x), inputs.ids, options, hooks, result, record);
        }
    } catch (...) {
        fail_run(record, m.device, T);
    }
    result.wall_seconds = record.seconds();
    result.started_ns = record.started_ns();
    result.peak_device_bytes = peak_memory(m.device);
    return result;
}

}  // namespace

PrefillResult run_prefill(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks) {
    return run_layers(model, tokens, options, 0, nullptr, hooks);
}

PrefillResult run_prefill_from(const Model& model, std::span<const std::int32_t> tokens,
                               const RunOptions& options, int start_layer,
                               const HiddenState& hidden_at_start, const PrefillHooks& hooks) {
    if (hidden_at_start.empty()) {
        fail("", "re-run from layer " + std::to_string(start_layer) + ": no checkpoint");
    }
    return run_layers(model, tokens, options, start_layer, &hidden_at_start, hooks);
}

PrefillResult run_prefill_from(const Model& model, std::span<const std::int32_t> tokens,
                               const RunOptions& options, int start_layer,
                               std::span<const float> hidden_at_start, const PrefillHooks& hooks) {
    const HiddenState state(std::vector<float>(hidden_at_start.begin(), hidden_at_start.end()),
                            model.config().hidden_size);
    return run_layers(model, tokens, options, start_layer, &state, hooks);
}

void run_lm_head(
    const Model& model, std::span<const float> final_hidden, std::int64_t rows,
    const std::function<void(std::int64_t, std::int64_t, std::int64_t, const float*)>& sink,
    std::int64_t block_rows) {
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    if (rows < 0 || final_hidden.size() != static_cast<std::size_t>(rows * c.hidden_size)) {
        fail("", "LM head: " + std::to_string(final_hidden.size()) + " hidden values are not " +
                     std::to_string(rows) + " rows of " + std::to_string(c.hidden_size));
    }
    if (block_rows < 1) block_rows = 256;
    at::InferenceMode inference;
    try {
        at::Tensor host = at::empty({rows, c.hidden_size}, at::TensorOptions().dtype(at::kFloat));
        std::copy(final_hidden.begin(), final_hidden.end(), host.data_ptr<float>());
        const at::Tensor x = host.to(m.device).to(m.dtype);
        const at::Tensor xn = norm_in_blocks(x, m.final_norm, c.rms_norm_eps, m.dtype, block_rows);
        lm_head(m, xn, block_rows, {}, [&](std::int64_t r0, const at::Tensor& logits) {
            const at::Tensor out = logits.to(at::kCPU).contiguous();
            sink(r0, logits.size(0), c.vocab_size, out.data_ptr<float>());
        });
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        fail("", "LibTorch failed while running the LM head: " + what.substr(0, what.find('\n')));
    }
}

HiddenState hidden_state(at::Tensor tensor) {
    auto impl = std::make_shared<HiddenState::Impl>();
    impl->hidden_size = tensor.dim() == 2 ? tensor.size(1) : 0;
    impl->tensor = tensor.contiguous();
    return HiddenState(std::move(impl));
}

const at::Tensor& state_tensor(const HiddenState& state) {
    static const at::Tensor kNone;
    return state.empty() ? kNone : state.impl()->tensor;
}

HiddenState::HiddenState(std::vector<float> rows, std::int64_t hidden_size) {
    if (hidden_size < 1) fail("", "a hidden state needs a hidden size of at least 1");
    auto impl = std::make_shared<Impl>();
    impl->hidden_size = hidden_size;
    // The rows are the host copy, and the tensor a view of them (never written): no second copy.
    impl->host = std::move(rows);
    std::call_once(impl->host_once, [] {});
    const auto n = static_cast<std::int64_t>(impl->host.size());
    const at::Tensor t =
        at::from_blob(impl->host.data(), {n}, at::TensorOptions().dtype(at::kFloat));
    impl->tensor = n % hidden_size == 0 ? t.view({n / hidden_size, hidden_size}) : t;
    impl_ = std::move(impl);
}

std::int64_t HiddenState::rows() const {
    return impl_ && impl_->hidden_size > 0 ? impl_->tensor.numel() / impl_->hidden_size : 0;
}

std::int64_t HiddenState::hidden_size() const { return impl_ ? impl_->hidden_size : 0; }

std::size_t HiddenState::size() const {
    return impl_ ? static_cast<std::size_t>(impl_->tensor.numel()) : 0;
}

std::int64_t HiddenState::bytes() const {
    return impl_ ? static_cast<std::int64_t>(impl_->tensor.nbytes()) : 0;
}

bool HiddenState::on_device() const { return impl_ && !impl_->tensor.device().is_cpu(); }

const std::vector<float>& HiddenState::host() const {
    static const std::vector<float> kEmpty;
    if (!impl_) return kEmpty;
    std::call_once(impl_->host_once, [this] {
        const at::Tensor t = impl_->tensor;
        impl_->host.resize(static_cast<std::size_t>(t.numel()));
        if (t.numel() > 0) copy_to_host(t.to(at::kFloat), impl_->host.data());
    });
    return impl_->host;
}

}  // namespace l2a
