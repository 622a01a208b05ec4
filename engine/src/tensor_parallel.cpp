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

}  // namespace

Model shard_for_rank(const Model& model, int rank, int world) {
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const std::string& where = m.summary.path;
    if (m.shard_world != 1) fail(where, "the model is already a shard of a tensor-parallel split");
    check_tensor_parallel_split(c, where, rank, world);
    if (world == 1) return model;

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

namespace {

class WeightsHash {
public:
    void add(const at::Tensor& t) {
        if (!t.defined()) {
            mix_value(0xffffffffu);
            return;
        }
        const at::Tensor host = t.to(at::kCPU).contiguous();
        mix_value(static_cast<std::uint64_t>(host.dim()));
        for (const std::int64_t n : host.sizes()) mix_value(static_cast<std::uint64_t>(n));
        mix_value(static_cast<std::uint64_t>(host.scalar_type()));
        const auto* bytes = static_cast<const unsigned char*>(host.data_ptr());
        const std::size_t count = host.numel() * host.element_size();
        for (std::size_t i = 0; i < count; ++i) h_ = (h_ ^ bytes[i]) * 0x100000001b3ull;
    }
    void add(const AttentionWeights& a) {
        for (const at::Tensor* t : {&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &a.q_bias,
                                    &a.k_bias, &a.v_bias, &a.o_bias, &a.q_norm, &a.k_norm}) {
            add(*t);
        }
    }
    std::string hex() const {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out(16, '0');
        for (int i = 0; i < 16; ++i)
            out[static_cast<std::size_t>(i)] = kHex[(h_ >> (60 - 4 * i)) & 0xf];
        return out;
    }

private:
    void mix_value(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) h_ = (h_ ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    }
    std::uint64_t h_ = 0xcbf29ce484222325ull;  // FNV-1a 64
};

}  // namespace

std::string weights_digest(const Model& model) {
    const Model::Impl& m = model.impl();
    WeightsHash hash;
    hash.add(m.embed);
    hash.add(m.final_norm);
    hash.add(m.lm_head);
    for (const LayerWeights& w : m.layers) {
        hash.add(w.input_norm);
        hash.add(w.attn);
        hash.add(w.post_norm);
        hash.add(w.gate_proj);
        hash.add(w.up_proj);
        hash.add(w.down_proj);
        hash.add(w.global_norm);
        hash.add(w.global);
        hash.add(w.router);
    }
    return hash.hex();
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
