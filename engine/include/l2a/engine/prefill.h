// The prefill runner: one document through the whole model, chunked so that memory grows
// about linearly in the number of tokens (no T x T matrix is ever formed).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/observer.h"
#include "l2a/engine/run_options.h"

namespace l2a {

class Cancelled : public Error {
public:
    Cancelled() : Error("run cancelled") {}
};

struct TimedRange {
    std::string name;
    std::int64_t begin_ns = 0;  // since the start of the run
    std::int64_t end_ns = 0;
    int depth = 0;
};

struct PrefillHooks {
    PrefillObserver* observer = nullptr;
    // fraction in [0, 1] and what is running ("layer 3 / 28").
    std::function<void(double fraction, std::string_view stage)> progress;
    // Checked between chunks and layers; when it becomes true the run throws l2a::Cancelled.
    const std::atomic<bool>* cancel = nullptr;
    // Receives the float32 next-token logits in order, `rows` rows of `vocab` floats at a time.
    std::function<void(std::int64_t first_row, std::int64_t rows, std::int64_t vocab,
                       const float* data)> logits_sink;
};

struct PrefillResult {
    std::int64_t num_tokens = 0;
    std::int64_t num_layers = 0;
    std::vector<float> router_logits;       // [num_layers, num_tokens]; NaN for plain layers
    std::vector<std::uint8_t> decisions;    // [num_layers, num_tokens]; applied decisions
    std::vector<float> token_nll;           // [num_tokens]; token_nll[0] = NaN (no prediction)
    std::vector<TimedRange> ranges;         // host-timed named ranges (CUDA: synchronized)
    std::vector<float> last_logits;         // [vocab] logits of the last row (next token)
    double wall_seconds = 0.0;
    std::string device;                     // "cpu" or the GPU's name
    std::int64_t peak_device_bytes = 0;     // CUDA: peak bytes allocated during the run
};

// CPU threads the engine's operators use (LibTorch intra-op threads); 0 keeps the default (one
// per core). More threads than free cores makes OpenMP's spinning workers much slower.
void set_cpu_threads(int threads);
int cpu_threads();

// Throws l2a::Error for bad input (empty token list, ids outside the vocabulary, bad options:
// prune index out of range, threshold outside (0, 1)) and l2a::Cancelled when cancelled.
PrefillResult run_prefill(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks = {});

}  // namespace l2a
