#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace l2a {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    const at::Tensor xf = x.to(at::kFloat);
    at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
    return weight.to(at::kFloat) * (xf * at::rsqrt(variance + eps));
}

RopeTables make_rope_tables(const std::vector<double>& inv_freq, double attention_scaling,
                            std::int64_t positions, const at::Device& device) {
    // Angles in double: at 128K positions fp32 products lose several digits of the phase.
    // Computed where the tables are used: at 128K positions the host's cos and sin of 16.7
    // million doubles and the upload took about 0.1 s, paid by every run, lens and oracle layer.
    const at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble).device(device);
    at::Tensor freq = at::tensor(inv_freq, at::TensorOptions().dtype(at::kDouble)).to(device);
    at::Tensor pos = at::arange(positions, f64);
    const at::Tensor angles = at::outer(pos, freq);  // [P, D/2]
    // Each half of a row repeats the other (HF's rotate_half layout): cos and sin of the D/2
    // angles once, rounded to fp32, then the halves side by side ([P, D]).
    const at::Tensor cos = angles.cos().mul_(attention_scaling).to(at::kFloat);
    const at::Tensor sin = angles.sin().mul_(attention_scaling).to(at::kFloat);
    return {at::cat({cos, cos}, /*dim=*/1), at::cat({sin, sin}, /*dim=*/1)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables, const at::Tensor& positions) {
    const std::int64_t half = x.size(-1) / 2;
    at::Tensor cos = tables.cos.index_select(0, positions).unsqueeze(1);  // [n, 1, D]
    at::Tensor sin = tables.sin.index_select(0, positions).unsqueeze(1);
    at::Tensor x1 = x.narrow(-1, 0, half);
    at::Tensor x2 = x.narrow(-1, half, half);
    at::Tensor rotated = at::cat({-x2, x1}, -1);
    return x * cos + rotated * sin;
}

at::Tensor reference_attention(const at::Tensor& q_rows, const QueryRows& rows,
                               const at::Tensor& k_rows, const at::Tensor& v_rows,
                               std::int64_t window, std::int64_t query_block,
                               const std::function<void()>& check) {
    const std::int64_t n = q_rows.size(0);
    const std::int64_t hq = q_rows.size(1);
    const std::int64_t dim = q_rows.size(2);
    const std::int64_t hkv = k_rows.size(1);
    const std::int64_t group = hq / hkv;
    const std::int64_t key_block = std::max<std::int64_t>(query_block, 1024);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    const float neg_inf = -std::numeric_limits<float>::infinity();

    // Head-major fp32: [heads, tokens, D].
    const at::Tensor q = q_rows.permute({1, 0, 2}).to(at::kFloat).contiguous();
    const at::Tensor k = k_rows.permute({1, 0, 2}).to(at::kFloat).contiguous();
    const at::Tensor v = v_rows.permute({1, 0, 2}).to(at::kFloat).contiguous();
    const at::TensorOptions f32 = q.options();
    at::Tensor out = at::empty({n, hq * dim}, f32);
    if (n == 0) return out.to(q_rows.scalar_type());
    const std::int64_t* pos = rows.positions.data();
    // GQA without replicating K/V: the `group` query heads that share a KV head become rows.
    at::Tensor qg = q.reshape({hkv, group, n, dim});

    for (std::int64_t q0 = 0; q0 < n; q0 += query_block) {
        if (check) check();
        const std::int64_t qn = std::min(query_block, n - q0);
        const std::int64_t first = pos[q0];
        const std::int64_t last = pos[q0 + qn - 1];
        const std::int64_t key_begin =
            window > 0 ? std::max<std::int64_t>(0, first - window + 1) : 0;
        const std::int64_t key_end = last + 1;
        at::Tensor qpos = rows.device_positions.narrow(0, q0, qn).view({qn, 1});
        at::Tensor qc = qg.narrow(2, q0, qn).reshape({hkv, group * qn, dim}) * scale;

        at::Tensor row_max = at::full({hkv, group * qn, 1}, neg_inf, f32);
        at::Tensor row_sum = at::zeros({hkv, group * qn, 1}, f32);
        at::Tensor acc = at::zeros({hkv, group * qn, dim}, f32);
        for (std::int64_t k0 = key_begin; k0 < key_end; k0 += key_block) {
            const std::int64_t kn = std::min(key_block, key_end - k0);
            at::Tensor kpos = at::arange(k0, k0 + kn, qpos.options()).view({1, kn});
            at::Tensor allowed = kpos <= qpos;  // [qn, kn]
            if (window > 0) allowed = allowed & (kpos > qpos - window);
            at::Tensor scores =
                at::matmul(qc, k.narrow(1, k0, kn).transpose(1, 2));  // [hkv, g*qn, kn]
            scores = scores.view({hkv, group, qn, kn})
                         .masked_fill(allowed.logical_not(), neg_inf)
                         .view({hkv, group * qn, kn});
            at::Tensor block_max = std::get<0>(scores.max(-1, /*keepdim=*/true));
            at::Tensor new_max = at::maximum(row_max, block_max);
            // Rows with no allowed key yet keep a -inf maximum; shift by 0 there to avoid inf -
            // inf.
            at::Tensor shift = at::where(at::isinf(new_max), at::zeros_like(new_max), new_max);
            at::Tensor p = at::exp(scores - shift);
            at::Tensor correction = at::exp(row_max - shift);
            row_sum = row_sum * correction + p.sum(-1, /*keepdim=*/true);
            acc = acc * correction + at::matmul(p, v.narrow(1, k0, kn));
            row_max = new_max;
        }
        // Every query sees at least itself, so row_sum > 0.
        at::Tensor o = (acc / row_sum).view({hkv, group, qn, dim}).reshape({hq, qn, dim});
        out.narrow(0, q0, qn).copy_(o.permute({1, 0, 2}).reshape({qn, hq * dim}));
    }
    return out.to(q_rows.scalar_type());
}

}  // namespace l2a
