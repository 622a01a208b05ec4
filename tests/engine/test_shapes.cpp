#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "l2a/engine/shapes.h"
#include "test_support.h"

namespace l2a {
namespace {

// Parameters outside the embedding and the LM head, of the base model, counted from the shape.
double non_embedding_parameters(const ModelConfig& c) {
    const double h = static_cast<double>(c.hidden_size);
    const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
    const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
    double layer =
        h * q * 2 + h * kv * 2 + 3 * h * static_cast<double>(c.intermediate_size) + 2 * h;
    if (c.has_qk_norm()) layer += 2 * static_cast<double>(c.head_dim);
    if (c.has_qkv_bias()) layer += q + 2 * kv;
    return layer * static_cast<double>(c.num_hidden_layers) + h;
}

// The model cards give the non-embedding parameter count of each model (in billions, rounded);
// a wrong width, depth or head count moves the count far more than the rounding.
TEST(PublishedShapes, MatchTheModelCardsParameterCounts) {
    const std::vector<std::pair<std::string, double>> cards = {
        {"qwen3-0.6b", 0.44}, {"qwen3-1.7b", 1.4},    {"qwen3-4b", 3.6},      {"qwen3-8b", 6.95},
        {"qwen3-14b", 13.2},  {"qwen2.5-0.5b", 0.36}, {"qwen2.5-1.5b", 1.31}, {"qwen2.5-3b", 2.77},
        {"qwen2.5-7b", 6.53}, {"qwen2.5-14b", 13.1},
    };
    const std::vector<std::string> names = published_shape_names();
    EXPECT_EQ(names.size(), cards.size());
    for (const auto& [name, billions] : cards) {
        EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
        const double counted = non_embedding_parameters(published_shape(name, false)) / 1e9;
        EXPECT_NEAR(counted, billions, billions * 0.015) << name;
    }
}

TEST(PublishedShapes, Qwen3EightBIsExact) {
    const ModelConfig c = published_shape("qwen3-8b");
    EXPECT_EQ(c.model_type, ModelType::L2AQwen3);
    EXPECT_EQ(c.num_hidden_layers, 36);
    EXPECT_EQ(c.hidden_size, 4096);
    EXPECT_EQ(c.intermediate_size, 12288);
    EXPECT_EQ(c.num_attention_heads, 32);
    EXPECT_EQ(c.num_key_value_heads, 8);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.vocab_size, 151936);
    EXPECT_EQ(c.max_position_embeddings, 40960);
    EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_FALSE(c.attention_bias);
    EXPECT_EQ(c.l2a.sliding_window, 4095);
    EXPECT_EQ(c.l2a.router_input, RouterInput::HiddenLinearProj);
    EXPECT_DOUBLE_EQ(c.l2a.sigmoid_threshold, 0.5);
    EXPECT_DOUBLE_EQ(c.l2a.sigmoid_temp, 1.0);
}

TEST(PublishedShapes, Qwen25SevenBIsExact) {
    const ModelConfig c = published_shape("qwen2.5-7b", true, 1024);
    EXPECT_EQ(c.model_type, ModelType::L2AQwen2);
    EXPECT_EQ(c.num_hidden_layers, 28);
    EXPECT_EQ(c.hidden_size, 3584);
    EXPECT_EQ(c.intermediate_size, 18944);
    EXPECT_EQ(c.num_attention_heads, 28);
    EXPECT_EQ(c.num_key_value_heads, 4);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.vocab_size, 152064);
    EXPECT_EQ(c.max_position_embeddings, 131072);
    EXPECT_TRUE(c.attention_bias);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.l2a.sliding_window, 1024);
    EXPECT_EQ(published_shape("qwen2.5-7b", false).model_type, ModelType::Qwen2);
    EXPECT_DOUBLE_EQ(published_shape("qwen2.5-14b").rms_norm_eps, 1e-5);
}

// Every shape is a config that the loader accepts, and survives config.json unchanged.
TEST(PublishedShapes, RoundTripThroughConfigJson) {
    for (const std::string& name : published_shape_names()) {
        for (bool l2a : {false, true}) {
            const ModelConfig c = published_shape(name, l2a);
            const ModelConfig back = parse_model_config(model_config_to_json(c), name);
            EXPECT_EQ(back.model_type, c.model_type) << name;
            EXPECT_EQ(back.num_hidden_layers, c.num_hidden_layers) << name;
            EXPECT_EQ(back.hidden_size, c.hidden_size) << name;
            EXPECT_EQ(back.intermediate_size, c.intermediate_size) << name;
            EXPECT_EQ(back.num_attention_heads, c.num_attention_heads) << name;
            EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads) << name;
            EXPECT_EQ(back.head_dim, c.head_dim) << name;
            EXPECT_EQ(back.vocab_size, c.vocab_size) << name;
            EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings) << name;
            EXPECT_EQ(back.attention_bias, c.attention_bias) << name;
            EXPECT_DOUBLE_EQ(back.rope_theta, c.rope_theta) << name;
            EXPECT_DOUBLE_EQ(back.rms_norm_eps, c.rms_norm_eps) << name;
            if (l2a) {
                EXPECT_EQ(back.l2a.sliding_window, c.l2a.sliding_window) << name;
            }
        }
    }
}

TEST(PublishedShapes, UnknownNameListsTheKnownOnes) {
    const std::string message =
        test::thrown_error([] { published_shape("qwen3-9b"); }).value_or("");
    EXPECT_NE(message.find("--shape: unknown shape 'qwen3-9b'"), std::string::npos) << message;
    EXPECT_NE(message.find("qwen2.5-7b"), std::string::npos) << message;
    EXPECT_NE(test::thrown_error([] { published_shape("Qwen3-8B"); }), std::nullopt);
    EXPECT_NE(test::thrown_error([] { published_shape("qwen3-8b", true, 0); }), std::nullopt);
}

}  // namespace
}  // namespace l2a
