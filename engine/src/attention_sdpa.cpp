// The sdpa backend: LibTorch's scaled_dot_product_attention on the GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "attention.h"

namespace l2a {
namespace {

// [T, H, D] -> [1, H * group, T, D], contiguous: the fused kernels get one KV head per query
// head (cuDNN's and FlashAttention's entry points take equal head counts).
at::Tensor heads_first(const at::Tensor& x, std::int64_t group) {
    at::Tensor t = x.permute({1, 0, 2});
    if (group > 1) t = t.repeat_interleave(group, 0);
    return t.contiguous().unsqueeze(0);
}

// [1, H, n, D] -> [n, H * D]
at::Tensor rows_first(const at::Tensor& o) {
    return o.squeeze(0).permute({1, 0, 2}).reshape({o.size(2), o.size(1) * o.size(3)});
}

// Full causal attention of every token: cuDNN first (the fastest on Hopper), FlashAttention when
// cuDNN refuses the shape; fp32 (tests) through the dispatcher, which picks a fused kernel that
// supports it.
at::Tensor full_causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    const std::int64_t group = q.size(1) / k.size(1);
    const at::Tensor qh = heads_first(q, 1);
    const at::Tensor kh = heads_first(k, group);
    const at::Tensor vh = heads_first(v, group);
    if (q.scalar_type() == at::kFloat) {
        return rows_first(
            at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, /*is_causal=*/true));
    }
    try {
        auto result = at::_scaled_dot_product_cudnn_attention(qh, kh, vh, std::nullopt,
                                                              /*compute_log_sumexp=*/false, 0.0,
                                                              /*is_causal=*/true);
        return rows_first(std::get<0>(result));
    } catch (const c10::OutOfMemoryError&) {
        throw;
    } catch (const c10::Error& e) {
        // cuDNN without a plan for this shape or GPU: FlashAttention below, said once.
        static bool said = false;
        if (!said) {
            said = true;
            const std::string what = e.what_without_backtrace();
            std::fprintf(stderr,
                         "l2a: note: cuDNN attention unavailable (%s); using FlashAttention\n",
                         what.substr(0, what.find('\n')).c_str());
        }
    }
    auto result = at::_scaled_dot_product_flash_attention(qh, kh, vh, 0.0, /*is_causal=*/true);
    return rows_first(std::get<0>(result));
}

// Full causal attention of routed queries (half precision). A chunk of routed queries at
// positions first..last sees keys [0, first) without a mask, which FlashAttention computes with
// its log-sum-exp; the short band [first, last] needs the causal mask and is computed exactly in
// fp32. The two softmax parts are merged by their log-sum-exps. Chunks end before their band
// exceeds `band` keys, so memory is bounded by chunk x band, never by T.
at::Tensor routed_causal(const at::Tensor& q, const QueryRows& rows, const at::Tensor& kh,
                         const at::Tensor& vh, std::int64_t query_block,
                         const std::function<void()>& check) {
    constexpr std::int64_t band = 4096;
    const std::int64_t n = q.size(0);
    const std::int64_t hq = q.size(1);
    const std::int64_t dim = q.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    const float neg_inf = -std::numeric_limits<float>::infinity();
    const at::Tensor qh = heads_first(q, 1);
    const at::Tensor k_heads = kh.squeeze(0);  // [H, T, D]
    const at::Tensor v_heads = vh.squeeze(0);
    at::Tensor out = at::empty({n, hq * dim}, q.options());
    const std::int64_t* pos = rows.positions.data();
    for (std::int64_t q0 = 0; q0 < n;) {
        if (check) check();
        const std::int64_t first = pos[q0];
        std::int64_t q1 = q0 + 1;
        while (q1 < n && q1 - q0 < query_block && pos[q1] - first < band) ++q1;
        const std::int64_t qn = q1 - q0;
        const std::int64_t kn = pos[q1 - 1] + 1 - first;
        const at::Tensor qc = qh.narrow(2, q0, qn);

        const at::Tensor qf = qc.squeeze(0).to(at::kFloat);  // [H, qn, D]
        at::Tensor scores =
            at::matmul(qf, k_heads.narrow(1, first, kn).to(at::kFloat).transpose(1, 2));
        scores.mul_(scale);
        const at::Tensor qpos = rows.device_positions.narrow(0, q0, qn).view({qn, 1});
        const at::Tensor kpos = at::arange(first, first + kn, qpos.options()).view({1, kn});
        scores.masked_fill_((kpos > qpos).unsqueeze(0), neg_inf);
        at::Tensor lse = at::logsumexp(scores, -1);  // [H, qn]
        at::Tensor o = at::matmul(at::exp(scores - lse.unsqueeze(-1)),
                                  v_heads.narrow(1, first, kn).to(at::kFloat));  // [H, qn, D]
        scores = at::Tensor();
        if (first > 0) {
            auto prefix = at::_scaled_dot_product_flash_attention(
                qc, kh.narrow(2, 0, first), vh.narrow(2, 0, first), 0.0, /*is_causal=*/false);
            const at::Tensor o_prefix = std::get<0>(prefix).squeeze(0).to(at::kFloat);
            const at::Tensor lse_prefix = std::get<1>(prefix).squeeze(0).narrow(1, 0, qn);
            const at::Tensor total = at::logaddexp(lse_prefix, lse);
            o = o_prefix * at::exp(lse_prefix - total).unsqueeze(-1) +
                o * at::exp(lse - total).unsqueeze(-1);
        }
        out.narrow(0, q0, qn).copy_(o.permute({1, 0, 2}).reshape({qn, hq * dim}));
        q0 = q1;
    }
    return out;
}

}  // namespace

at::Tensor sdpa_attention(const at::Tensor& q, const QueryRows& rows, const at::Tensor& k,
                          const at::Tensor& v, std::int64_t window, std::int64_t query_block,
                          const std::function<void()>& check) {
    const std::int64_t n = q.size(0);
    const std::int64_t hq = q.size(1);
    const std::int64_t dim = q.size(2);
    const std::int64_t tokens = k.size(0);
    if (n == 0) return at::empty({0, hq * dim}, q.options());
    if (rows.all && (window == 0 || window >= tokens)) {
        if (check) check();
        return full_causal(q, k, v);
    }

    const std::int64_t group = hq / k.size(1);
    const at::Tensor kh = heads_first(k, group);
    const at::Tensor vh = heads_first(v, group);
    if (window == 0 && q.scalar_type() != at::kFloat) {
        return routed_causal(q, rows, kh, vh, query_block, check);
    }

    // Masked attention over query chunks, each against the keys it can see: memory grows with
    // the chunk, never with T x T. Local chunks are large (their key band is short); routed
    // chunks (fp32) see keys from 0 and stay smaller so that their mask stays small.
    const std::int64_t block = std::max<std::int64_t>(query_block, window > 0 ? 4096 : 1024);
    const at::Tensor qh = heads_first(q, 1);
    at::Tensor out = at::empty({n, hq * dim}, q.options());
    const std::int64_t* pos = rows.positions.data();
    for (std::int64_t q0 = 0; q0 < n; q0 += block) {
        if (check) check();
        const std::int64_t qn = std::min(block, n - q0);
        const std::int64_t first = pos[q0];
        const std::int64_t last = pos[q0 + qn - 1];
        const std::int64_t key_begin =
            window > 0 ? std::max<std::int64_t>(0, first - window + 1) : 0;
        const std::int64_t kn = last + 1 - key_begin;
        at::Tensor qpos = rows.device_positions.narrow(0, q0, qn).view({qn, 1});
        at::Tensor kpos = at::arange(key_begin, last + 1, qpos.options()).view({1, kn});
        at::Tensor allowed = kpos <= qpos;
        if (window > 0) allowed = allowed & (kpos > qpos - window);
        at::Tensor o = at::scaled_dot_product_attention(
            qh.narrow(2, q0, qn), kh.narrow(2, key_begin, kn), vh.narrow(2, key_begin, kn),
            allowed.view({1, 1, qn, kn}), 0.0, /*is_causal=*/false);
        out.narrow(0, q0, qn).copy_(rows_first(o));
    }
    return out;
}

}  // namespace l2a
