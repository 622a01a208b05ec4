#include "layer_ops.h"

#include <algorithm>
#include <numeric>

#include "l2a/engine/rope.h"

namespace l2a {

at::Tensor head_logits(const Model::Impl& m, const at::Tensor& xn) {
    return m.dtype == at::kFloat ? at::matmul(xn, m.lm_head.t())
                                 : at::mm(xn, m.lm_head.t(), at::kFloat);
}

at::Tensor norm_in_blocks(const at::Tensor& x, const at::Tensor& weight, double eps,
                          at::ScalarType dtype, std::int64_t block_rows) {
    const std::int64_t t = x.size(0);
    if (t <= block_rows) return rms_norm(x, weight, eps).to(dtype);
    at::Tensor y = at::empty_like(x, x.options().dtype(dtype));
    for (std::int64_t r0 = 0; r0 < t; r0 += block_rows) {
        const std::int64_t n = std::min(block_rows, t - r0);
        y.narrow(0, r0, n).copy_(rms_norm(x.narrow(0, r0, n), weight, eps));
    }
    return y;
}

namespace {

// The loss of each row of `logits` [rows, vocab] given its log-sum-exp `lse` ([rows], or
// [rows, 1]), fp32.
at::Tensor loss_with_lse(const at::Tensor& logits, const at::Tensor& lse, const at::Tensor& next) {
    const std::int64_t rows = logits.size(0);
    return (lse.view({rows}) - logits.gather(1, next.view({rows, 1})).view({rows})).to(at::kFloat);
}

}  // namespace

at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& next) {
    return loss_with_lse(logits, at::logsumexp(logits, -1), next);
}

RowComparison compare_next_token_rows(const at::Tensor& reference_logits, const at::Tensor& logits,
                                      at::ScalarType math, const at::Tensor& next) {
    const std::int64_t rows = logits.size(0);
    const at::Tensor a = reference_logits.to(math);
    const at::Tensor b = logits.to(math);
    const at::Tensor lse_a = at::logsumexp(a, -1, true);
    const at::Tensor lse_b = at::logsumexp(b, -1, true);
    // KL(p || q) = sum_v p_v (log p_v - log q_v) = sum_v p_v (a_v - b_v) - lse(a) + lse(b),
    // with p = softmax(a): one temporary of the block's size besides p, no log-softmax tensors.
    const at::Tensor p = (a - lse_a).exp_();
    const at::Tensor kl = (at::sub(a, b).mul_(p)).sum(-1) - lse_a.view({rows}) + lse_b.view({rows});
    RowComparison out;
    // Rounding may leave a tiny negative sum where the distributions (nearly) agree.
    out.kl = kl.clamp_min(0.0).to(at::kDouble);
    out.same_top = at::eq(a.argmax(-1), b.argmax(-1));
    if (next.defined()) {
        // In the logits' own precision, as a run without a reference computes it.
        out.loss = logits.scalar_type() == math ? loss_with_lse(b, lse_b, next)
                                                : next_token_loss(logits, next);
    }
    return out;
}

at::Tensor router_logits(const at::Tensor& u, const at::Tensor& router, RouterInput input) {
    const at::Tensor uf = u.to(at::kFloat);
    switch (input) {
        case RouterInput::HiddenLinearProj:
            return at::matmul(uf, router.to(at::kFloat));
        case RouterInput::HiddenFirstDim:
            return uf.select(-1, 0).contiguous();
        case RouterInput::HiddenMean:
            return uf.mean(-1);
    }
    return {};
}

namespace {

at::Tensor output_projection(const at::Tensor& attn, const AttentionWeights& w) {
    return w.o_bias.defined() ? at::addmm(w.o_bias, attn, w.o_proj.t())
                              : at::matmul(attn, w.o_proj.t());
}

at::Tensor mlp(const LayerWeights& w, const at::Tensor& x) {
    at::Tensor gate = at::matmul(x, w.gate_proj.t());
    at::Tensor up = at::matmul(x, w.up_proj.t());
    return at::matmul(at::silu(gate) * up, w.down_proj.t());
}

}  // namespace

at::Tensor LayerOps::attention(const AttentionWeights& w, const at::Tensor& queries_from,
                               const QueryRows& rows, const at::Tensor& keys_from,
                               std::int64_t window) const {
    const std::int64_t hq = s_.config.num_attention_heads;
    const std::int64_t hkv = s_.config.num_key_value_heads;
    at::Tensor out;
    {
        const at::Tensor q = project(queries_from, w.q_proj, w.q_bias, w.q_norm, hq, &rows);
        const at::Tensor k = project(keys_from, w.k_proj, w.k_bias, w.k_norm, hkv, &s_.every_row);
        const at::Tensor v = project(keys_from, w.v_proj, w.v_bias, at::Tensor(), hkv, nullptr);
        out = s_.attend(q, rows, k, v, window, s_.query_block, s_.check);
    }
    at::Tensor y = output_projection(out, w);
    if (s_.reduce) s_.reduce(y);
    return y;
}

at::Tensor LayerOps::causal_attention(const AttentionWeights& w, const at::Tensor& xn,
                                      std::int64_t window) const {
    return attention(w, xn, s_.every_row, xn, window);
}

at::Tensor LayerOps::routed_attention(const AttentionWeights& w, const at::Tensor& u,
                                      const QueryRows& rows) const {
    return attention(w, u.index_select(0, rows.device_positions), rows, u, 0);
}

void LayerOps::add_mlp(at::Tensor& h, const LayerWeights& w) const {
    const std::int64_t t = h.size(0);
    for (std::int64_t r0 = 0; r0 < t; r0 += s_.mlp_rows) {
        s_.check();
        const std::int64_t n = std::min(s_.mlp_rows, t - r0);
        at::Tensor rows = h.narrow(0, r0, n);
        add_mlp_rows(rows, norm(rows, w.post_norm), w);
    }
}

void LayerOps::add_mlp_rows(at::Tensor& rows, const at::Tensor& xn, const LayerWeights& w) const {
    at::Tensor y = mlp(w, xn);
    if (s_.reduce) s_.reduce(y);
    rows.add_(y);
}

namespace {

// Host positions as an int64 tensor on the run's device (on a GPU, copied straight from the
// span, with no host tensor in between; on the CPU, a copy, since the span may not outlive it).
at::Tensor device_positions(std::span<const std::int64_t> positions, const LayerOpsSettings& s) {
    const at::Device device = s.every_row.device_positions.device();
    if (positions.empty())
        return at::empty({0}, at::TensorOptions().dtype(at::kLong).device(device));
    const at::Tensor host = at::from_blob(const_cast<std::int64_t*>(positions.data()),
                                          {static_cast<std::int64_t>(positions.size())},
                                          at::TensorOptions().dtype(at::kLong));
    return device.is_cpu() ? host.clone() : host.to(device);
}

// LibTorch ops: norms, QK-norm and RoPE in fp32, computed in blocks of norm_rows rows.
class ReferenceOps final : public LayerOps {
public:
    using LayerOps::LayerOps;

    at::Tensor norm(const at::Tensor& x, const at::Tensor& weight) const override {
        const LayerOpsSettings& s = settings();
        return norm_in_blocks(x, weight, s.config.rms_norm_eps, s.dtype, s.norm_rows);
    }

    RouterOutput add_norm_router(at::Tensor& x, at::Tensor local,
                                 const LayerWeights& w) const override {
        const LayerOpsSettings& s = settings();
        const std::int64_t t = x.size(0);
        x.add_(local);
        local = at::Tensor();
        RouterOutput out{at::empty_like(x, x.options().dtype(s.dtype)),
                         at::empty({t}, x.options().dtype(at::kFloat))};
        // The router sees the fp32 normalized rows; attention gets them in the dtype.
        for (std::int64_t r0 = 0; r0 < t; r0 += s.norm_rows) {
            const std::int64_t n = std::min(s.norm_rows, t - r0);
            const at::Tensor uf =
                rms_norm(x.narrow(0, r0, n), w.global_norm, s.config.rms_norm_eps);
            out.z.narrow(0, r0, n).copy_(router_logits(uf, w.router, s.config.l2a.router_input));
            out.u.narrow(0, r0, n).copy_(uf);
        }
        return out;
    }

    at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                       const at::Tensor& norm, std::int64_t heads,
                       const QueryRows* rows) const override {
        const LayerOpsSettings& s = settings();
        const std::int64_t t = x.size(0);
        const std::int64_t dim = s.config.head_dim;
        const at::Tensor* positions = rows ? &rows->device_positions : nullptr;
        auto block = [&](const at::Tensor& part, std::int64_t r0) {
            at::Tensor y =
                bias.defined() ? at::addmm(bias, part, weight.t()) : at::matmul(part, weight.t());
            y = y.view({part.size(0), heads, dim});
            if (!norm.defined() && !positions) return y;
            at::Tensor f =
                norm.defined() ? rms_norm(y, norm, s.config.rms_norm_eps) : y.to(at::kFloat);
            if (positions) f = apply_rope(f, s.rope, positions->narrow(0, r0, part.size(0)));
            return f.to(s.dtype);
        };
        if (t <= s.norm_rows) return block(x, 0).contiguous();
        at::Tensor out = at::empty({t, heads, dim}, x.options().dtype(s.dtype));
        for (std::int64_t r0 = 0; r0 < t; r0 += s.norm_rows) {
            const std::int64_t n = std::min(s.norm_rows, t - r0);
            out.narrow(0, r0, n).copy_(block(x.narrow(0, r0, n), r0));
        }
        return out;
    }

    QueryRows routed_rows(std::span<const std::int64_t> routed) const override {
        return {routed, device_positions(routed, settings()), false, at::Tensor()};
    }

    void gated_add(at::Tensor& h, const at::Tensor& a, const QueryRows& rows) const override {
        h.index_add_(0, rows.device_positions, a);
    }
};

#if L2A_ENGINE_CUDA
// The kernels backend's fused per-token operators (bf16/fp16, CUDA).
class KernelOps final : public LayerOps {
public:
    using LayerOps::LayerOps;

    at::Tensor norm(const at::Tensor& x, const at::Tensor& weight) const override {
        at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
        fused_add_rms_norm(x, {}, {}, weight, settings().config.rms_norm_eps, y, {}, {});
        return y;
    }

    // h = x + local, u = RMSNorm_global(h) and (linear router) z = w . u in one pass.
    RouterOutput add_norm_router(at::Tensor& x, at::Tensor local,
                                 const LayerWeights& w) const override {
        const LayerOpsSettings& s = settings();
        const RouterInput input = s.config.l2a.router_input;
        const bool linear = input == RouterInput::HiddenLinearProj;
        RouterOutput out{at::empty_like(x, x.options().dtype(s.dtype)),
                         at::empty({x.size(0)}, x.options().dtype(at::kFloat))};
        fused_add_rms_norm(local, x, x, w.global_norm, s.config.rms_norm_eps, out.u,
                           linear ? w.router : at::Tensor(), linear ? out.z : at::Tensor());
        if (!linear) out.z = router_logits(out.u, w.router, input);
        return out;
    }

    at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                       const at::Tensor& norm, std::int64_t heads,
                       const QueryRows* rows) const override {
        const LayerOpsSettings& s = settings();
        at::Tensor y = bias.defined() ? at::addmm(bias, x, weight.t()) : at::matmul(x, weight.t());
        y = y.view({x.size(0), heads, s.config.head_dim});
        if (rows) {
            fused_norm_rope(y, norm, s.config.rms_norm_eps, s.rope,
                            rows->all ? at::Tensor() : rows->device_positions32);
        }
        return y;
    }

    QueryRows routed_rows(std::span<const std::int64_t> routed) const override {
        const at::Tensor idx = device_positions(routed, settings());
        return {routed, idx, false, idx.to(at::kInt)};
    }

    void gated_add(at::Tensor& h, const at::Tensor& a, const QueryRows& rows) const override {
        const at::Tensor count = at::full({1}, static_cast<std::int64_t>(rows.positions.size()),
                                          at::TensorOptions().dtype(at::kInt).device(h.device()));
        fused_scatter_add_rows(h, a, rows.device_positions32, count);
    }

protected:
    // silu(gate) * up in one pass, in place on gate (rounded as the unfused ops). Without tensor
    // parallel the residual add rides on the down projection's GEMM (rows = rows + act W^T: no
    // y to write and read back); it then rounds once, in fp32, where HuggingFace rounds y to the
    // model dtype before the add, so this backend's sums can differ from it in the last bit.
    void add_mlp_rows(at::Tensor& rows, const at::Tensor& xn,
                      const LayerWeights& w) const override {
        at::Tensor gate = at::matmul(xn, w.gate_proj.t());
        {
            const at::Tensor up = at::matmul(xn, w.up_proj.t());
            fused_silu_mul(gate, up, gate);
        }
        if (settings().reduce) {
            at::Tensor y = at::matmul(gate, w.down_proj.t());
            settings().reduce(y);
            rows.add_(y);
        } else {
            rows.addmm_(gate, w.down_proj.t());
        }
    }
};
#endif

}  // namespace

SequenceRows::SequenceRows(const ModelConfig& config, std::int64_t rows,
                           std::int64_t sequence_length, const at::Device& device)
    : positions(static_cast<std::size_t>(rows)) {
    std::iota(positions.begin(), positions.end(), std::int64_t{0});
    every_row = {positions, at::arange(rows, at::TensorOptions().dtype(at::kLong).device(device)),
                 true, at::Tensor()};
    const RopeParams params = compute_rope(config, sequence_length);
    rope = make_rope_tables(params.inv_freq, params.attention_scaling, rows, device);
}

LayerOpsSettings layer_ops_settings(const Model::Impl& m, AttentionBackend attend,
                                    std::int64_t chunk, const SequenceRows& rows,
                                    std::function<void()> check) {
    const bool cuda = m.device.is_cuda();
    const auto T = static_cast<std::int64_t>(rows.positions.size());
    return {m.config,
            m.dtype,
            attend,
            chunk,
            cuda ? std::int64_t{16384} : T,
            cuda ? std::int64_t{8192} : std::max<std::int64_t>(chunk, 256),
            rows.rope,
            rows.every_row,
            std::move(check)};
}

std::unique_ptr<LayerOps> make_layer_ops(LayerOpsSettings settings, bool fused) {
#if L2A_ENGINE_CUDA
    if (fused) return std::make_unique<KernelOps>(std::move(settings));
#else
    (void)fused;
#endif
    return std::make_unique<ReferenceOps>(std::move(settings));
}

}  // namespace l2a
