#include <gtest/gtest.h>

#include "l2a/engine/tensor_names.h"

namespace l2a::tensor_names {
namespace {

// The spellings HuggingFace's Qwen2/Qwen3 checkpoints and the L2A checkpoints use.
TEST(TensorNames, LayerTensors) {
    EXPECT_EQ(layer_tensor(0, kInputNorm), "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(layer_tensor(27, kPostAttentionNorm),
              "model.layers.27.post_attention_layernorm.weight");
    EXPECT_EQ(layer_tensor(3, kGlobalInputNorm), "model.layers.3.input_layernorm_global.weight");
    EXPECT_EQ(layer_tensor(3, kRouter), "model.layers.3.self_attn.sigmoid_linear.weight");
    EXPECT_EQ(layer_tensor(1, kMlpDown), "model.layers.1.mlp.down_proj.weight");
    EXPECT_EQ(std::string(kEmbedTokens), "model.embed_tokens.weight");
    EXPECT_EQ(std::string(kLmHead), "lm_head.weight");
}

TEST(TensorNames, AttentionTensors) {
    EXPECT_EQ(attention_tensor(7, AttentionSet::Local, AttentionPart::QProj),
              "model.layers.7.self_attn.q_proj.weight");
    EXPECT_EQ(attention_tensor(7, AttentionSet::Global, AttentionPart::QProj),
              "model.layers.7.self_attn.q_proj_global.weight");
    EXPECT_EQ(attention_tensor(2, AttentionSet::Global, AttentionPart::VProj, TensorKind::Bias),
              "model.layers.2.self_attn.v_proj_global.bias");
    EXPECT_EQ(attention_tensor(0, AttentionSet::Local, AttentionPart::KNorm),
              "model.layers.0.self_attn.k_norm.weight");
}

TEST(TensorNames, LayerOf) {
    EXPECT_EQ(layer_of("model.layers.7.mlp.up_proj.weight"), 7);
    EXPECT_EQ(layer_of("model.layers.12.input_layernorm.weight"), 12);
    EXPECT_EQ(layer_of("model.norm.weight"), -1);
    EXPECT_EQ(layer_of("model.layers.x.mlp.up_proj.weight"), -1);
    EXPECT_EQ(layer_of("model.layers.7"), -1);
    EXPECT_EQ(layer_of("model.layers..weight"), -1);
}

TEST(TensorNames, GlobalCounterpart) {
    EXPECT_EQ(global_counterpart("model.layers.3.self_attn.q_proj.weight"),
              "model.layers.3.self_attn.q_proj_global.weight");
    EXPECT_EQ(global_counterpart("model.layers.3.self_attn.o_proj.bias"),
              "model.layers.3.self_attn.o_proj_global.bias");
    EXPECT_EQ(global_counterpart("model.layers.10.self_attn.k_norm.weight"),
              "model.layers.10.self_attn.k_norm_global.weight");
    // Not base attention tensors: nothing to copy.
    EXPECT_EQ(global_counterpart("model.layers.3.self_attn.q_proj_global.weight"), "");
    EXPECT_EQ(global_counterpart("model.layers.3.mlp.up_proj.weight"), "");
    EXPECT_EQ(global_counterpart("model.embed_tokens.weight"), "");
    EXPECT_EQ(global_counterpart("model.layers.3.self_attn.sigmoid_linear.weight"), "");
}

}  // namespace
}  // namespace l2a::tensor_names
