#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"

namespace l2a {
namespace {

// 3 layers, 2 KV heads of dim 4: one token in one cache of one layer is 2 * 2 * 4 * 2 = 32 bytes
// with the default bf16 accounting.
ModelConfig small_model(ModelType type) {
    ModelConfig config;
    config.model_type = type;
    config.vocab_size = 16;
    config.hidden_size = 16;
    config.intermediate_size = 32;
    config.num_hidden_layers = 3;
    config.num_attention_heads = 4;
    config.num_key_value_heads = 2;
    config.head_dim = 4;
    config.l2a.sliding_window = 3;
    return config;
}

TEST(Metrics, KvBytesPerToken) {
    const ModelConfig config = small_model(ModelType::L2AQwen3);
    EXPECT_EQ(kv_bytes_per_token(config, 2), 32);
    EXPECT_EQ(kv_bytes_per_token(config, 4), 64);
    ModelConfig qwen25_7b = config;
    qwen25_7b.num_key_value_heads = 4;
    qwen25_7b.head_dim = 128;
    EXPECT_EQ(kv_bytes_per_token(qwen25_7b, 2), 2048);
}

// One function for a layer's KV cost: compute_metrics and `l2a info` both use it.
TEST(Metrics, LayerKvBytes) {
    const ModelConfig l2a = small_model(ModelType::L2AQwen3);  // W = 3, 32 B per token
    LayerKv kv = layer_kv_bytes(l2a, 10, 2);
    EXPECT_EQ(kv.local_bytes, 3 * 32);
    EXPECT_EQ(kv.global_bytes, 10 * 32);
    kv = layer_kv_bytes(l2a, 2, 2);  // fewer tokens than the window
    EXPECT_EQ(kv.local_bytes, 2 * 32);
    kv = layer_kv_bytes(l2a, 10, 2, /*pruned=*/true);
    EXPECT_EQ(kv.local_bytes, 3 * 32);
    EXPECT_EQ(kv.global_bytes, 0);
    const ModelConfig plain = small_model(ModelType::Qwen3);
    kv = layer_kv_bytes(plain, 10, 4);
    EXPECT_EQ(kv.local_bytes, 0);
    EXPECT_EQ(kv.global_bytes, 10 * 64);
    // Pruning is an L2A notion: a plain layer keeps its cache.
    EXPECT_EQ(layer_kv_bytes(plain, 10, 4, true).global_bytes, 10 * 64);
}

TEST(Metrics, L2AModel) {
    const ModelConfig config = small_model(ModelType::L2AQwen3);
    RunOptions options;
    // T = 5; layer 0 routes 2 of 5 tokens, layer 1 all, layer 2 none.
    const std::vector<std::uint8_t> decisions = {1, 0, 0, 1, 0,  //
                                                 1, 1, 1, 1, 1,  //
                                                 0, 0, 0, 0, 0};
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> nll = {nan, 1.0f, 2.0f, 3.0f, 6.0f};
    const RunMetrics metrics = compute_metrics(config, options, 5, decisions, nll);

    EXPECT_DOUBLE_EQ(metrics.mean_nll, 3.0);
    EXPECT_DOUBLE_EQ(metrics.perplexity, std::exp(3.0));
    ASSERT_EQ(metrics.global_fraction.size(), 3u);
    EXPECT_DOUBLE_EQ(metrics.global_fraction[0], 0.4);
    EXPECT_DOUBLE_EQ(metrics.global_fraction[1], 1.0);
    EXPECT_DOUBLE_EQ(metrics.global_fraction[2], 0.0);
    EXPECT_DOUBLE_EQ(metrics.global_fraction_overall, 1.4 / 3.0);

    ASSERT_EQ(metrics.kv.size(), 3u);
    for (const LayerKv& kv : metrics.kv) {
        EXPECT_EQ(kv.local_bytes, 3 * 32);   // min(T = 5, W = 3) tokens
        EXPECT_EQ(kv.global_bytes, 5 * 32);  // every token, routed or not
    }
    EXPECT_EQ(metrics.kv_bytes_total, 3 * (96 + 160));
    EXPECT_EQ(metrics.kv_bytes_without_l2a, 3 * 5 * 32);
}

TEST(Metrics, PruningDropsTheGlobalCache) {
    const ModelConfig config = small_model(ModelType::L2AQwen2);
    RunOptions options;
    options.prune = {0, 2};
    options.kv_bytes_per_element = 4;  // 64 bytes per token
    const std::vector<std::uint8_t> decisions(3 * 2, 1);
    const RunMetrics metrics = compute_metrics(config, options, 2, decisions, {});

    EXPECT_EQ(metrics.kv[0].local_bytes, 2 * 64);  // T = 2 < W
    EXPECT_EQ(metrics.kv[0].global_bytes, 0);
    EXPECT_EQ(metrics.kv[1].global_bytes, 2 * 64);
    EXPECT_EQ(metrics.kv[2].global_bytes, 0);
    EXPECT_EQ(metrics.kv_bytes_total, 3 * 128 + 128);
    EXPECT_EQ(metrics.kv_bytes_without_l2a, 3 * 2 * 64);
    EXPECT_TRUE(std::isnan(metrics.mean_nll));  // no NLL measured
    EXPECT_TRUE(std::isnan(metrics.perplexity));
}

TEST(Metrics, PlainModelHasOnlyFullCaches) {
    const ModelConfig config = small_model(ModelType::Qwen2);
    RunOptions options;
    options.prune = {1};  // not applicable to a plain model: ignored
    const std::vector<std::uint8_t> decisions(3 * 4, 1);
    const std::vector<float> nll = {std::numeric_limits<float>::quiet_NaN(), 0.5f, 1.5f, 1.0f};
    const RunMetrics metrics = compute_metrics(config, options, 4, decisions, nll);

    EXPECT_DOUBLE_EQ(metrics.mean_nll, 1.0);
    EXPECT_DOUBLE_EQ(metrics.perplexity, std::exp(1.0));
    EXPECT_DOUBLE_EQ(metrics.global_fraction_overall, 1.0);
    for (const LayerKv& kv : metrics.kv) {
        EXPECT_EQ(kv.local_bytes, 0);
        EXPECT_EQ(kv.global_bytes, 4 * 32);
    }
    EXPECT_EQ(metrics.kv_bytes_total, metrics.kv_bytes_without_l2a);
    EXPECT_EQ(metrics.kv_bytes_total, 3 * 4 * 32);

    // A plain model may pass no decisions at all: every token ran full attention.
    const RunMetrics implicit = compute_metrics(config, options, 4, {}, nll);
    EXPECT_EQ(implicit.global_fraction, std::vector<double>(3, 1.0));
}

TEST(Metrics, SkipsNonFiniteNll) {
    const ModelConfig config = small_model(ModelType::Qwen3);
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // Token 0 never counts, even when finite.
    const std::vector<float> nll = {100.0f, 2.0f, inf, nan, 4.0f};
    const RunMetrics metrics = compute_metrics(config, RunOptions{}, 5, {}, nll);
    EXPECT_DOUBLE_EQ(metrics.mean_nll, 3.0);
}

TEST(Metrics, EmptyAndSingleTokenInputs) {
    const ModelConfig config = small_model(ModelType::L2AQwen3);
    const RunMetrics empty = compute_metrics(config, RunOptions{}, 0, {}, {});
    EXPECT_TRUE(std::isnan(empty.mean_nll));
    EXPECT_TRUE(std::isnan(empty.perplexity));
    EXPECT_EQ(empty.global_fraction, std::vector<double>(3, 0.0));
    EXPECT_EQ(empty.global_fraction_overall, 0.0);
    EXPECT_EQ(empty.kv_bytes_total, 0);
    EXPECT_EQ(empty.kv_bytes_without_l2a, 0);

    const std::vector<std::uint8_t> decisions = {1, 0, 1};
    const std::vector<float> nll = {std::numeric_limits<float>::quiet_NaN()};
    const RunMetrics one = compute_metrics(config, RunOptions{}, 1, decisions, nll);
    EXPECT_TRUE(std::isnan(one.mean_nll));
    EXPECT_TRUE(std::isnan(one.perplexity));
    EXPECT_DOUBLE_EQ(one.global_fraction_overall, 2.0 / 3.0);
    EXPECT_EQ(one.kv_bytes_total, 3 * (32 + 32));
}

TEST(Metrics, RejectsMismatchedInputs) {
    const ModelConfig config = small_model(ModelType::L2AQwen3);
    const std::vector<std::uint8_t> decisions(3 * 4, 1);
    const std::vector<float> nll(4, 1.0f);
    EXPECT_THROW(compute_metrics(config, RunOptions{}, 5, decisions, {}), Error);
    EXPECT_THROW(compute_metrics(config, RunOptions{}, 4, {}, nll), Error);  // L2A needs them
    EXPECT_THROW(compute_metrics(config, RunOptions{}, 4, decisions, std::vector<float>(3)), Error);
    EXPECT_THROW(compute_metrics(config, RunOptions{}, -1, {}, {}), Error);
    RunOptions options;
    options.prune = {3};
    EXPECT_THROW(compute_metrics(config, options, 4, decisions, nll), Error);
    EXPECT_NO_THROW(compute_metrics(config, RunOptions{}, 4, decisions, nll));
}

}  // namespace
}  // namespace l2a
