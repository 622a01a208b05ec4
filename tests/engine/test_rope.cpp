#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "l2a/engine/rope.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

ModelConfig small_config(std::int64_t head_dim, double theta) {
    ModelConfig config;
    config.model_type = ModelType::Qwen3;
    config.vocab_size = 32;
    config.hidden_size = 64;
    config.intermediate_size = 64;
    config.num_hidden_layers = 1;
    config.num_attention_heads = 2;
    config.num_key_value_heads = 1;
    config.head_dim = head_dim;
    config.max_position_embeddings = 1024;
    config.rope_theta = theta;
    return config;
}

TEST(Rope, DefaultFrequenciesFollowTheta) {
    const RopeParams params = compute_rope(small_config(4, 10000.0), 8);
    ASSERT_EQ(params.inv_freq.size(), 2u);
    EXPECT_DOUBLE_EQ(params.inv_freq[0], 1.0);
    EXPECT_NEAR(params.inv_freq[1], 0.01, 1e-9);  // 10000^(-2/4)
    EXPECT_EQ(params.attention_scaling, 1.0);
}

TEST(Rope, LinearDividesEveryFrequencyByTheFactor) {
    ModelConfig config = small_config(8, 10000.0);
    const RopeParams plain = compute_rope(config, 8);
    config.rope_scaling.type = RopeScalingType::Linear;
    config.rope_scaling.factor = 4.0;
    const RopeParams scaled = compute_rope(config, 8);
    ASSERT_EQ(scaled.inv_freq.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_DOUBLE_EQ(scaled.inv_freq[i], plain.inv_freq[i] / 4.0);
    }
    EXPECT_EQ(scaled.attention_scaling, 1.0);
}

TEST(Rope, DynamicChangesOnlyBeyondMaxPositions) {
    ModelConfig config = small_config(8, 10000.0);
    const RopeParams plain = compute_rope(config, 8);
    config.rope_scaling.type = RopeScalingType::Dynamic;
    config.rope_scaling.factor = 2.0;
    EXPECT_EQ(compute_rope(config, 1024).inv_freq, plain.inv_freq);
    const RopeParams stretched = compute_rope(config, 2048);
    // base' = base * (2 * 2048 / 1024 - 1)^(8/6) = 10000 * 3^(4/3)
    const double base = 10000.0 * std::pow(3.0, 4.0 / 3.0);
    EXPECT_DOUBLE_EQ(stretched.inv_freq[0], 1.0);
    for (std::size_t i = 1; i < 4; ++i) {
        const double expected = std::pow(base, -2.0 * static_cast<double>(i) / 8.0);
        EXPECT_NEAR(stretched.inv_freq[i], expected, expected * 1e-6) << i;
        EXPECT_LT(stretched.inv_freq[i], plain.inv_freq[i]);
    }
}

TEST(Rope, YarnAttentionFactorDefaultsToMscale) {
    ModelConfig config = small_config(16, 10000.0);
    config.rope_scaling.type = RopeScalingType::Yarn;
    config.rope_scaling.factor = 4.0;
    config.rope_scaling.original_max_position_embeddings = 256;
    EXPECT_DOUBLE_EQ(compute_rope(config, 8).attention_scaling, 0.1 * std::log(4.0) + 1.0);

    config.rope_scaling.mscale = 2.0;  // ignored without mscale_all_dim
    EXPECT_DOUBLE_EQ(compute_rope(config, 8).attention_scaling, 0.1 * std::log(4.0) + 1.0);
    config.rope_scaling.mscale_all_dim = 1.0;
    EXPECT_DOUBLE_EQ(compute_rope(config, 8).attention_scaling,
                     (0.2 * std::log(4.0) + 1.0) / (0.1 * std::log(4.0) + 1.0));
    config.rope_scaling.attention_factor = 0.75;
    EXPECT_DOUBLE_EQ(compute_rope(config, 8).attention_scaling, 0.75);
}

TEST(Rope, YarnKeepsHighFrequenciesAndInterpolatesLowOnes) {
    ModelConfig config = small_config(64, 10000.0);
    const RopeParams plain = compute_rope(config, 8);
    config.rope_scaling.type = RopeScalingType::Yarn;
    config.rope_scaling.factor = 8.0;
    config.rope_scaling.original_max_position_embeddings = 1024;
    const RopeParams yarn = compute_rope(config, 8);
    ASSERT_EQ(yarn.inv_freq.size(), 32u);
    EXPECT_DOUBLE_EQ(yarn.inv_freq.front(), plain.inv_freq.front());
    EXPECT_NEAR(yarn.inv_freq.back(), plain.inv_freq.back() / 8.0, plain.inv_freq.back() * 1e-6);
}

TEST(Rope, RejectsOddHeadDim) {
    EXPECT_THROW(compute_rope(small_config(7, 10000.0), 8), Error);
    EXPECT_THROW(compute_rope(small_config(0, 10000.0), 8), Error);
}

double relative_difference(double actual, double expected) {
    if (actual == expected) {
        return 0.0;
    }
    return std::abs(actual - expected) / std::max(std::abs(expected), 1e-30);
}

// Every rope type against transformers' own rotary embedding module (see rope_golden.py).
TEST(Rope, MatchesTransformers) {
    if (!test::python_can_import("torch, transformers")) {
        GTEST_SKIP() << "needs " << L2A_PYTHON << " with torch and transformers";
    }
    const fs::path dir = fs::path(L2A_TEST_WORK_DIR) / "test_rope";
    fs::create_directories(dir);
    const fs::path golden = dir / "rope_golden.json";
    const fs::path script = fs::path(L2A_SOURCE_DIR) / "tests/engine/rope_golden.py";
    const std::string command = std::string("\"") + L2A_PYTHON + "\" \"" + script.string() +
                                "\" \"" + golden.string() + "\"";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;

    std::ifstream in(golden);
    const nlohmann::json data = nlohmann::json::parse(in);
    const auto& cases = data.at("cases");
    ASSERT_GT(cases.size(), 100u);
    double worst = 0.0;
    std::string worst_case;
    for (const auto& item : cases) {
        const std::string name = item.at("name").get<std::string>();
        SCOPED_TRACE(name);
        const ModelConfig config = parse_model_config(item.at("config").dump(), name);
        const RopeParams params = compute_rope(config, item.at("seq_len").get<std::int64_t>());
        const auto expected = item.at("inv_freq").get<std::vector<double>>();
        ASSERT_EQ(params.inv_freq.size(), expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            const double difference = relative_difference(params.inv_freq[i], expected[i]);
            EXPECT_LE(difference, 1e-6)
                << "inv_freq[" << i << "] " << params.inv_freq[i] << " vs " << expected[i];
            if (difference > worst) {
                worst = difference;
                worst_case = name + " [" + std::to_string(i) + "]";
            }
        }
        EXPECT_LE(relative_difference(params.attention_scaling,
                                      item.at("attention_scaling").get<double>()),
                  1e-12);
    }
    std::cout << "[ rope     ] " << cases.size() << " cases vs transformers "
              << data.at("transformers").get<std::string>() << ", largest relative difference "
              << worst << " (" << worst_case << ")\n";
}

}  // namespace
}  // namespace l2a
