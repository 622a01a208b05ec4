// The names of a checkpoint's tensors, as HuggingFace's Qwen2/Qwen3 and the L2A checkpoints
// spell them. Every reader and writer of weights (the model loader, the demo model, construct,
// train) builds its names here, so that a name is spelled once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace l2a::tensor_names {

// Outside the layers.
inline constexpr std::string_view kEmbedTokens = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNorm = "model.norm.weight";
inline constexpr std::string_view kLmHead = "lm_head.weight";

// Inside layer N, after "model.layers.N.".
inline constexpr std::string_view kInputNorm = "input_layernorm.weight";
inline constexpr std::string_view kPostAttentionNorm = "post_attention_layernorm.weight";
inline constexpr std::string_view kGlobalInputNorm = "input_layernorm_global.weight";  // L2A
inline constexpr std::string_view kRouter = "self_attn.sigmoid_linear.weight";         // L2A
inline constexpr std::string_view kMlpGate = "mlp.gate_proj.weight";
inline constexpr std::string_view kMlpUp = "mlp.up_proj.weight";
inline constexpr std::string_view kMlpDown = "mlp.down_proj.weight";

// "model.layers.7." + name.
std::string layer_tensor(std::int64_t layer, std::string_view name);

// The attention tensors, in one of two sets: the base model's (local in an L2A model) and the
// L2A global set, whose names end in "_global" before ".weight" / ".bias".
enum class AttentionSet { Local, Global };
enum class AttentionPart { QProj, KProj, VProj, OProj, QNorm, KNorm };
enum class TensorKind { Weight, Bias };
inline constexpr AttentionPart kAttentionParts[] = {AttentionPart::QProj, AttentionPart::KProj,
                                                    AttentionPart::VProj, AttentionPart::OProj,
                                                    AttentionPart::QNorm, AttentionPart::KNorm};

// "model.layers.3.self_attn.q_proj_global.bias" for (3, Global, QProj, Bias).
std::string attention_tensor(std::int64_t layer, AttentionSet set, AttentionPart part,
                             TensorKind kind = TensorKind::Weight);

// The layer of "model.layers.7.mlp.up_proj.weight" (7); -1 for a name outside the layers.
std::int64_t layer_of(std::string_view name);

// The global-set name of a base attention tensor ("...self_attn.q_proj.weight" ->
// "...self_attn.q_proj_global.weight"); empty for any other name.
std::string global_counterpart(std::string_view name);

}  // namespace l2a::tensor_names
