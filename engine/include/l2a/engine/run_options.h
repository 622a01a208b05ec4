// What a run is asked to do: routing policy, pruning plan, limits. Plain values, recorded in
// the Profile so that every run can be reproduced.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/run_choices.h"

namespace l2a {

enum class RoutingKind { Learned, Global, Local, Random, Top };

struct RoutingPolicy {
    RoutingKind kind = RoutingKind::Learned;
    double fraction = 0.0;  // Random: probability per token; Top: share of tokens per layer

    // "learned", "global", "local", "random:F", "top:F" with 0 <= F <= 1.
    // Throws l2a::Error "--routing: ..." on anything else.
    static RoutingPolicy parse(std::string_view text);
    std::string to_string() const;
    bool operator==(const RoutingPolicy&) const = default;
};

// Layers whose global attention is removed. Sorted, unique.
using PruningPlan = std::vector<int>;
// "0,5,7" (also "" for none). Throws l2a::Error "--prune: ..." for bad numbers.
PruningPlan parse_pruning_plan(std::string_view text);
std::string format_pruning_plan(const PruningPlan& plan);

struct RunOptions {
    std::int64_t max_tokens = 0;      // 0: no limit; longer inputs are truncated (and reported)
    std::optional<double> threshold;  // overrides the checkpoint's sigmoid_threshold (theta)
    RoutingPolicy routing;
    PruningPlan prune;
    std::uint64_t seed = 0;         // for random routing
    std::int64_t chunk_size = 256;  // query rows per attention / MLP / LM-head chunk
    // Must match the model's placement ("cpu", "cuda", "cuda:N"; parse_device in run_choices.h).
    std::string device = "cpu";
    // Attention backend, as parse_backend (run_choices.h) reads it. "reference": blocked LibTorch
    // ops (CPU and CUDA). "sdpa" (CUDA): LibTorch scaled_dot_product_attention (cuDNN /
    // FlashAttention for full causal, masked for the window and the routed queries). "kernels"
    // (CUDA): the project's kernels/.
    std::string backend = "reference";
    // Run an L2A model as its base model: every layer runs full causal attention with its first
    // (local) attention set, no router, no global set. The baseline of `l2a bench prefill`.
    bool as_base = false;
    // Compute the per-token NLL (needs logits of every row). Off: only the last row's logits
    // are computed (time to first token).
    bool token_nll = true;
    int kv_bytes_per_element = 2;  // KV-cache accounting assumes a bf16 cache by default
    bool operator==(const RunOptions&) const = default;
};

}  // namespace l2a
