#include "l2a/engine/tensor_parallel.h"

#include <string>

#include "l2a/engine/error.h"
#include "model_impl.h"

namespace l2a {
namespace {

// Rows [first, first + count) of dim `dim`, in memory of their own (the whole tensor is freed
// with the model it came from).
at::Tensor slice(const at::Tensor& t, std::int64_t dim, std::int64_t first, std::int64_t count) {
    if (!t.defined()) return t;
    return t.narrow(dim, first, count).clone(at::MemoryFormat::Contiguous);
}

// The rank's heads of one attention set: Q/K/V rows and biases (column-parallel), O columns
// (row-parallel; the O bias is added once, by rank 0).
AttentionWeights shard_attention(const AttentionWeights& w, const ModelConfig& c, int rank,
                                 int world) {
    const std::int64_t dim = c.head_dim;
    const std::int64_t q = c.num_attention_heads / world * dim;
    const std::int64_t kv = c.num_key_value_heads / world * dim;
    AttentionWeights out;
    out.q_proj = slice(w.q_proj, 0, rank * q, q);
    out.k_proj = slice(w.k_proj, 0, rank * kv, kv);
    out.v_proj = slice(w.v_proj, 0, rank * kv, kv);
    out.o_proj = slice(w.o_proj, 1, rank * q, q);
    out.q_bias = slice(w.q_bias, 0, rank * q, q);
    out.k_bias = slice(w.k_bias, 0, rank * kv, kv);
    out.v_bias = slice(w.v_bias, 0, rank * kv, kv);
    if (rank == 0) out.o_bias = w.o_bias;
    out.q_norm = w.q_norm;
    out.k_norm = w.k_norm;
    return out;
}

void require_divides(const std::string& where, int world, std::int64_t n, const char* what) {
    if (n % world != 0) {
        fail(where, "tensor parallel over " + std::to_string(world) + " ranks: " + what + " (" +
                        std::to_string(n) + ") is not a multiple of " + std::to_string(world));
    }
}

}  // namespace

Model shard_for_rank(const Model& model, int rank, int world) {
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const std::string& where = m.summary.path;
    if (m.shard_world != 1) fail(where, "the model is already a shard of a tensor-parallel split");
    if (world < 1) fail(where, "tensor parallel: " + std::to_string(world) + " ranks");
    if (rank < 0 || rank >= world) {
        fail(where, "tensor parallel: rank " + std::to_string(rank) + " is not in 0.." +
                        std::to_string(world - 1));
    }
    if (world == 1) return model;
    require_divides(where, world, c.num_attention_heads, "num_attention_heads");
    require_divides(where, world, c.num_key_value_heads, "num_key_value_heads");
    require_divides(where, world, c.intermediate_size, "intermediate_size");

    at::NoGradGuard no_grad;
    auto out = std::make_shared<Model::Impl>();
    out->dir = m.dir;
    out->placement = m.placement;
    out->device = m.device;
    out->dtype = m.dtype;
    out->config = c;
    out->config.num_attention_heads = c.num_attention_heads / world;
    out->config.num_key_value_heads = c.num_key_value_heads / world;
    out->config.intermediate_size = c.intermediate_size / world;
    out->summary = m.summary;
    if (m.tokenizer) out->tokenizer.emplace(Tokenizer::from_file(m.dir / "tokenizer.json"));
    out->embed = m.embed;
    out->final_norm = m.final_norm;
    out->lm_head = m.lm_head;
    out->warnings = m.warnings;
    out->shard_rank = rank;
    out->shard_world = world;
    const std::int64_t mlp = out->config.intermediate_size;
    out->layers.reserve(m.layers.size());
    for (const LayerWeights& w : m.layers) {
        LayerWeights s;
        s.input_norm = w.input_norm;
        s.attn = shard_attention(w.attn, c, rank, world);
        s.post_norm = w.post_norm;
        s.gate_proj = slice(w.gate_proj, 0, rank * mlp, mlp);
        s.up_proj = slice(w.up_proj, 0, rank * mlp, mlp);
        s.down_proj = slice(w.down_proj, 1, rank * mlp, mlp);
        s.global_norm = w.global_norm;
        if (w.global.q_proj.defined()) s.global = shard_attention(w.global, c, rank, world);
        s.router = w.router;
        out->layers.push_back(std::move(s));
    }
    return Model(std::move(out));
}

ShardInfo shard_info(const Model& model) {
    return {model.impl().shard_rank, model.impl().shard_world};
}

ModelConfig whole_config(const Model& model) {
    const Model::Impl& m = model.impl();
    ModelConfig c = m.config;
    c.num_attention_heads *= m.shard_world;
    c.num_key_value_heads *= m.shard_world;
    c.intermediate_size *= m.shard_world;
    return c;
}

PrefillResult run_prefill_parallel(const Model& shard, std::span<const std::int32_t> tokens,
                                   const RunOptions& options, ProcessGroup& group,
                                   const PrefillHooks& hooks) {
    PrefillHooks with_group = hooks;
    with_group.group = &group;
    return run_prefill(shard, tokens, options, with_group);
}

}  // namespace l2a
