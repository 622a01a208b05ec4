// The attention backends and the per-token operators around them, on LibTorch tensors.
// - reference: blocked over queries and keys with an online softmax (CPU and CUDA), so that no
//   [T, T] score matrix exists and memory grows linearly in T.
// - sdpa (CUDA): LibTorch's scaled_dot_product_attention; cuDNN (then FlashAttention) for full
//   causal attention, masked SDPA over query chunks for the window and the routed queries.
// - kernels (CUDA): the project's kernels (kernels/include/l2a/kernels/attention.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "torch_pch.h"

namespace l2a {

// RMSNorm over the last dimension, as HuggingFace's Qwen2/Qwen3 RMSNorm, computed and returned
// in fp32 whatever the dtype of x and weight (callers cast to the model dtype).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// cos/sin tables [positions, head_dim] in fp32 on `device` (already multiplied by the rope
// attention scaling).
struct RopeTables {
    at::Tensor cos;
    at::Tensor sin;
};
RopeTables make_rope_tables(const std::vector<double>& inv_freq, double attention_scaling,
                            std::int64_t positions, const at::Device& device);

// x: [n, heads, D] (fp32); rows of `tables` picked by `positions` ([n] int64, x's device).
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables, const at::Tensor& positions);

// The queries of one attention call and where they sit in the sequence.
struct QueryRows {
    std::span<const std::int64_t> positions;  // host, ascending, one per query row
    at::Tensor device_positions;              // the same, int64 on the tensors' device
    bool all = false;                         // every token 0..T-1 in order
    at::Tensor device_positions32;            // int32 copy for the kernels (undefined: none)
};

// Causal attention of queries against keys 0..T-1. window 0: full causal; window W > 0: keys
// t-W+1 .. t. q: [n, Hq, D], k and v: [T, Hkv, D] (GQA: Hq a multiple of Hkv), all in one
// dtype. Returns [n, Hq * D] in q's dtype. `check` runs between blocks (it throws to cancel).
using AttentionBackend = at::Tensor (*)(const at::Tensor& q, const QueryRows& rows,
                                        const at::Tensor& k, const at::Tensor& v,
                                        std::int64_t window, std::int64_t query_block,
                                        const std::function<void()>& check);

// Blocked online-softmax attention in fp32 (inputs of lower precision are upcast per block).
at::Tensor reference_attention(const at::Tensor& q, const QueryRows& rows, const at::Tensor& k,
                               const at::Tensor& v, std::int64_t window, std::int64_t query_block,
                               const std::function<void()>& check);

// Defined only in builds with the CUDA engine path (L2A_WITH_CUDA).
at::Tensor sdpa_attention(const at::Tensor& q, const QueryRows& rows, const at::Tensor& k,
                          const at::Tensor& v, std::int64_t window, std::int64_t query_block,
                          const std::function<void()>& check);
at::Tensor kernels_attention(const at::Tensor& q, const QueryRows& rows, const at::Tensor& k,
                             const at::Tensor& v, std::int64_t window, std::int64_t query_block,
                             const std::function<void()>& check);

// The routing oracle's distant mass on the GPU: per query t and head h, the share of t's causal
// attention on keys 0..t-W, as 1 - exp(LSE over the window - LSE over keys 0..t), both LSEs from
// the sliding-window kernel (W = T is full causal). q: [T, Hq, D], k: [T, Hkv, D], bf16 or
// fp16. Returns [T, Hq] fp32; rows t < W are 0. Defined only in builds with the CUDA engine path.
at::Tensor kernels_distant_mass(const at::Tensor& q, const at::Tensor& k, std::int64_t window);

// The kernels backend's fused per-token operators (kernels/include/l2a/kernels/fused_ops.h) on
// LibTorch tensors and the current stream; bf16/fp16 only. Undefined tensors mean "absent".
// Defined only in builds with the CUDA engine path.
//
// y = RMSNorm(x + residual) * weight over rows; the sum goes to sum_out (which may be x or
// residual); with router_weight, router_logits[r] = y[r] . router_weight in fp32.
void fused_add_rms_norm(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& sum_out,
                        const at::Tensor& weight, double eps, const at::Tensor& y,
                        const at::Tensor& router_weight, const at::Tensor& router_logits);
// In place on x [rows, heads, D]: per-head RMSNorm with norm_weight (optional), then RoPE at
// positions32 (int32 [rows]; undefined: row r is position r).
void fused_norm_rope(const at::Tensor& x, const at::Tensor& norm_weight, double eps,
                     const RopeTables& rope, const at::Tensor& positions32);
// dst[positions32[i]] += src[i] for i < count32[0] (both int32 on the device).
void fused_scatter_add_rows(const at::Tensor& dst, const at::Tensor& src,
                            const at::Tensor& positions32, const at::Tensor& count32);
// out = silu(gate) * up over [rows, cols] (out may be gate or up), rounded as the unfused ops.
void fused_silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out);

}  // namespace l2a
