// Quality and memory numbers derived from a run. Torch-free and cheap.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/run_options.h"

namespace l2a {

struct LayerKv {
    std::int64_t local_bytes = 0;   // sliding-window cache: min(T, W) tokens
    std::int64_t global_bytes = 0;  // full cache: T tokens, 0 when the layer is pruned
};

struct RunMetrics {
    double mean_nll = 0.0;                // over tokens 1..T-1 (token 0 has no prediction)
    double perplexity = 0.0;              // exp(mean_nll)
    std::vector<double> global_fraction;  // per layer: share of tokens that ran global attention
    double global_fraction_overall = 0.0;
    std::vector<LayerKv> kv;  // per layer
    std::int64_t kv_bytes_total = 0;
    std::int64_t kv_bytes_without_l2a = 0;  // same model with one full-attention cache per layer
};

// Bytes one token occupies in one K/V cache of one layer: 2 * Hkv * D * bytes_per_element.
std::int64_t kv_bytes_per_token(const ModelConfig& config, int bytes_per_element);

// The KV cache of one layer after `tokens` tokens: an L2A layer keeps a local cache of at most
// W tokens and a global cache of every token (none when the layer is pruned); a plain layer
// keeps one full cache. The same model without L2A keeps `tokens` tokens in each layer.
LayerKv layer_kv_bytes(const ModelConfig& config, std::int64_t tokens, int bytes_per_element,
                       bool pruned = false);

// `decisions` is [layers, num_tokens] row-major, 1 where the token ran global attention; a plain
// model may pass it empty (every token is global). `token_nll` has num_tokens entries (token 0
// is NaN: nothing predicts it) or is empty when NLL was not measured. With no finite NLL from
// token 1 on (e.g. 0 or 1 tokens) mean_nll and perplexity are NaN; with 0 tokens every global
// fraction is 0. Pruning applies to L2A models only. Throws l2a::Error on mismatched sizes or
// a pruned layer that does not exist.
RunMetrics compute_metrics(const ModelConfig& config, const RunOptions& options,
                           std::int64_t num_tokens, std::span<const std::uint8_t> decisions,
                           std::span<const float> token_nll);

}  // namespace l2a
