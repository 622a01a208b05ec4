#include "l2a/engine/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "l2a/engine/error.h"

namespace l2a {

std::int64_t kv_bytes_per_token(const ModelConfig& config, int bytes_per_element) {
    // One K and one V row of Hkv heads.
    return 2 * config.num_key_value_heads * config.head_dim * bytes_per_element;
}

LayerKv layer_kv_bytes(const ModelConfig& config, std::int64_t tokens, int bytes_per_element,
                       bool pruned) {
    const std::int64_t per_token = kv_bytes_per_token(config, bytes_per_element);
    LayerKv kv;
    if (config.is_l2a()) {
        kv.local_bytes = std::min(tokens, config.l2a.sliding_window) * per_token;
        kv.global_bytes = pruned ? 0 : tokens * per_token;
    } else {
        kv.global_bytes = tokens * per_token;
    }
    return kv;
}

// Conventions for degenerate inputs: with fewer than two tokens (or no finite NLL from token 1
// on) there is nothing to average, so mean_nll and perplexity are NaN; with no tokens every
// global fraction is 0. An empty `decisions` span is accepted for plain models, which run
// global attention for every token; an empty `token_nll` means "not measured".
RunMetrics compute_metrics(const ModelConfig& config, const RunOptions& options,
                           std::int64_t num_tokens, std::span<const std::uint8_t> decisions,
                           std::span<const float> token_nll) {
    if (num_tokens < 0) {
        throw Error("metrics: negative token count " + std::to_string(num_tokens));
    }
    const std::int64_t layers = config.num_hidden_layers;
    const std::int64_t tokens = num_tokens;
    const bool all_global = decisions.empty() && !config.is_l2a();
    if (!all_global && static_cast<std::int64_t>(decisions.size()) != layers * tokens) {
        throw Error("metrics: expected " + std::to_string(layers) + " x " + std::to_string(tokens) +
                    " routing decisions, got " + std::to_string(decisions.size()));
    }
    if (!token_nll.empty() && static_cast<std::int64_t>(token_nll.size()) != tokens) {
        throw Error("metrics: expected " + std::to_string(tokens) + " token NLL values, got " +
                    std::to_string(token_nll.size()));
    }
    if (config.is_l2a()) {
        for (int layer : options.prune) {
            if (layer < 0 || layer >= layers) {
                throw Error("--prune: layer " + std::to_string(layer) +
                            " does not exist (the model has " + std::to_string(layers) +
                            " layers)");
            }
        }
    }

    RunMetrics metrics;
    double nll_sum = 0.0;
    std::int64_t nll_count = 0;
    for (std::size_t t = 1; t < token_nll.size(); ++t) {
        if (std::isfinite(token_nll[t])) {
            nll_sum += token_nll[t];
            ++nll_count;
        }
    }
    if (nll_count > 0) {
        metrics.mean_nll = nll_sum / static_cast<double>(nll_count);
        metrics.perplexity = std::exp(metrics.mean_nll);
    } else {
        metrics.mean_nll = std::numeric_limits<double>::quiet_NaN();
        metrics.perplexity = std::numeric_limits<double>::quiet_NaN();
    }

    metrics.global_fraction.assign(static_cast<std::size_t>(layers), 0.0);
    for (std::int64_t layer = 0; layer < layers && tokens > 0; ++layer) {
        if (all_global) {
            metrics.global_fraction[layer] = 1.0;
            continue;
        }
        const auto row = decisions.subspan(static_cast<std::size_t>(layer * tokens),
                                           static_cast<std::size_t>(tokens));
        const auto routed =
            std::count_if(row.begin(), row.end(), [](std::uint8_t d) { return d != 0; });
        metrics.global_fraction[layer] = static_cast<double>(routed) / static_cast<double>(tokens);
    }
    double fraction_sum = 0.0;
    for (double fraction : metrics.global_fraction) {
        fraction_sum += fraction;
    }
    metrics.global_fraction_overall = layers > 0 ? fraction_sum / static_cast<double>(layers) : 0.0;

    metrics.kv.resize(static_cast<std::size_t>(layers));
    for (std::int64_t layer = 0; layer < layers; ++layer) {
        const bool pruned = std::find(options.prune.begin(), options.prune.end(),
                                      static_cast<int>(layer)) != options.prune.end();
        LayerKv& kv = metrics.kv[layer];
        kv = layer_kv_bytes(config, tokens, options.kv_bytes_per_element, pruned);
        metrics.kv_bytes_total += kv.local_bytes + kv.global_bytes;
    }
    metrics.kv_bytes_without_l2a =
        layers * tokens * kv_bytes_per_token(config, options.kv_bytes_per_element);
    return metrics;
}

}  // namespace l2a
