// Attention benchmarks on the GPU: the project's L2A kernels against full causal attention
// through LibTorch's SDPA backends, in one process. Free of LibTorch and CUDA headers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace l2a {

struct AttentionHeads {
    int q_heads = 28;    // Hq
    int kv_heads = 4;    // Hkv
    int head_dim = 128;  // D
    bool operator==(const AttentionHeads&) const = default;
};

struct AttentionBenchOptions {
    std::vector<std::int64_t> tokens = {8192, 32768, 65536, 131072};
    std::vector<double> fractions = {0.0, 0.1, 0.2, 0.5, 1.0};  // routed share, each in [0, 1]
    std::vector<AttentionHeads> shapes = {{28, 4, 128}, {32, 8, 128}};
    std::int64_t window = 4095;   // W of the local part
    int repeat = 10;              // timed runs per measurement (the median is reported)
    int warmup = 3;               // untimed runs before them
    std::uint64_t seed = 0;       // inputs and routing
    std::string device = "cuda";  // "cuda" or "cuda:N"
    bool fp16 = false;            // the inputs' and kernels' element type: fp16, else bf16
    int check_rows = 64;          // sampled rows per part checked against fp32 before timing
    double tolerance = 1e-2;      // relative error allowed per checked row
    // How the parts' timed runs are ordered. In blocks (the default): cuDNN's runs, then
    // flash's, once per (tokens, shape), then per row global's, local's and whole's, each part's
    // runs back to back after its warm-up, so that each runs near the clock its own power draw
    // leaves it under the power cap. Interleaved: rounds that run global, local, whole and cuDNN
    // once each, in the orders of interleaved_order (in each cycle of its rounds each part
    // follows every other equally often); every part then runs at about the clock the mix leaves
    // (the cap's controller follows the last few hundred milliseconds, which cuDNN's long runs
    // dominate), and cuDNN is timed for each row. Flash (the slowest) is timed in a block of its
    // own either way.
    bool interleaved = false;
    // What is running now ("T=32768 28/4/128 routed 20%"), for a progress line.
    std::function<void(std::string_view)> progress;
};

// The order of `n` parts in timed round `round` of an interleaved benchmark: a Williams design,
// so that over n rounds (2n when n is odd) each part directly follows every other part equally
// often and no part always runs after the same one. Round 0 of four parts: 0, 1, 3, 2.
inline std::vector<std::size_t> interleaved_order(int round, std::size_t n) {
    std::vector<std::size_t> order(n);
    if (n == 0) return order;
    // The first row: 0, 1, n-1, 2, n-2, ...; row k adds k to each (mod n).
    std::size_t low = 1, high = n - 1;
    const std::size_t period = n % 2 == 0 ? n : 2 * n;
    const std::size_t k = static_cast<std::size_t>(std::max(round, 0)) % period;
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t first = j == 0 ? 0 : j % 2 == 1 ? low++ : high--;
        order[j] = (first + k) % n;
    }
    if (k >= n) std::reverse(order.begin(), order.end());  // odd n: the rows reversed
    return order;
}

// One time in milliseconds (median of the timed runs), or unavailable with the reason.
struct BenchTime {
    double ms = 0.0;
    bool available = false;
    std::string reason;  // why not, when unavailable
    // When the timed runs went, on the steady clock (nanoseconds since its epoch): in blocks one
    // span, from after the warm-up runs had finished to after the last timed run had;
    // interleaved one span per run, from its launch to its end. A caller that samples the GPU's
    // clock meanwhile keeps the samples inside.
    struct Span {
        std::int64_t begin_ns = 0;
        std::int64_t end_ns = 0;
    };
    std::vector<Span> spans;
};

struct AttentionBenchRow {
    std::int64_t tokens = 0;
    AttentionHeads heads;
    double fraction = 0.0;    // requested routed share
    std::int64_t routed = 0;  // tokens actually routed (random, seeded)
    // FLOPs counted exactly: 4 * D * Hq per (query, key) pair, over the pairs each part visits.
    double global_flop = 0.0;  // routed rows p: p + 1 keys
    double local_flop = 0.0;   // every row t: min(t + 1, W) keys
    double full_flop = 0.0;    // every row t: t + 1 keys (the SDPA baselines)
    // Ours. global: routed-query compaction + packed global attention + gated add of the routed
    // rows into the residual. local: sliding-window attention of every row. whole: local then
    // global, in sequence on one stream (the router's logit is not included: the engine fuses
    // it into the RMSNorm before global attention).
    BenchTime global;
    BenchTime local;
    BenchTime whole;
    BenchTime cudnn;  // SDPA, cuDNN backend, full causal (in blocks the same for every fraction)
    BenchTime flash;  // SDPA, FlashAttention backend, full causal
    // Largest relative error (row norm) of the sampled rows against the fp32 reference.
    double global_error = 0.0;
    double local_error = 0.0;
};

struct AttentionBenchResult {
    std::string device;  // the GPU's name
    std::vector<AttentionBenchRow> rows;
};

// Runs the grid, every (tokens, shape) pair checked against an fp32 LibTorch reference first:
// a part whose sampled rows miss the tolerance throws l2a::Error naming the part, the shape and
// the error, before anything is timed. Throws l2a::Error when the build has no CUDA path or the
// device is missing, and for bad options.
AttentionBenchResult bench_attention(const AttentionBenchOptions& options);

}  // namespace l2a
