// The weights of a loaded model as LibTorch tensors on their device, in the placement's dtype (fp32
// on the CPU). Private to the engine.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/model.h"
#include "l2a/engine/tokenizer.h"
#include "torch_pch.h"

namespace l2a {

// One set of attention projections. Undefined tensors mean "absent" (no bias, no QK-norm).
struct AttentionWeights {
    at::Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in], as stored by HuggingFace
    at::Tensor q_bias, k_bias, v_bias, o_bias;
    at::Tensor q_norm, k_norm;  // [head_dim]
};

struct LayerWeights {
    at::Tensor input_norm;  // [d]
    AttentionWeights attn;  // plain models: the full attention; L2A: the local (SWA) set
    at::Tensor post_norm;   // [d]
    at::Tensor gate_proj, up_proj, down_proj;
    // L2A only.
    at::Tensor global_norm;   // [d]  input_layernorm_global
    AttentionWeights global;  // *_proj_global
    at::Tensor router;        // [d]  sigmoid_linear.weight, flattened
};

struct Model::Impl {
    std::filesystem::path dir;
    Placement placement;  // as resolved: dtype never "auto"
    at::Device device = at::Device(at::kCPU);
    at::ScalarType dtype = at::kFloat;
    ModelConfig config;
    ModelSummary summary;
    std::optional<Tokenizer> tokenizer;
    at::Tensor embed;       // [V, d]
    at::Tensor final_norm;  // [d]
    at::Tensor lm_head;     // [V, d] (the embedding when tied)
    std::vector<LayerWeights> layers;
    std::vector<std::string> warnings;  // Model::warnings()
    // Tensor parallel (shard_for_rank): this rank's part of a model split across shard_world
    // ranks; config holds the shard's head counts and intermediate size. 0 and 1: the whole model.
    int shard_rank = 0;
    int shard_world = 1;
};

// Throws l2a::Error (naming `where`) unless rank is in 0..world-1 and world divides the query
// heads, the KV heads and the MLP's intermediate size of c.
void check_tensor_parallel_split(const ModelConfig& c, const std::string& where, int rank,
                                 int world);

}  // namespace l2a
