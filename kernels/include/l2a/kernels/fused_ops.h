// The small per-token operators of an L2A layer, fused where that saves passes over memory:
// residual add + RMSNorm (+ router logit), RoPE with QK-norm, the gated scatter-add of the
// routed rows, and the MLP's SiLU-gated product. Same conventions as attention.h: device pointers,
// element strides, a stream, host-side validation, KernelError on failure, no synchronization.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "l2a/kernels/attention.h"  // ElementType, KernelError

namespace l2a::kernels {

// y = RMSNorm(x (+ residual)) * weight over rows of `cols` elements, as HuggingFace's Qwen
// RMSNorm: sum of squares in fp32, y = weight * (x * rsqrt(mean(x^2) + eps)).
// - residual (optional): the row sum s = x + residual is normalized; when sum_out is set, s
//   (rounded to the element type) is written there (it may alias x or residual).
// - router_weight (optional, [cols], element type) with router_logits (fp32 [rows]): also writes
//   router_logits[r] = dot(y[r], router_weight) in fp32 over the rounded y — the L2A router's
//   logit on the normalized hidden state, in the same pass.
// x, residual, sum_out and y are [rows, cols] with cols contiguous and the given row strides
// (elements, multiples of 8; 16-byte aligned bases). cols: a multiple of 8, at most 16384.
struct AddRmsNormArgs {
    ElementType element_type = ElementType::bf16;
    int64_t rows = 0;
    int cols = 0;
    float eps = 1e-6f;
    const void* x = nullptr;
    int64_t x_row_stride = 0;
    const void* residual = nullptr;  // optional
    int64_t residual_row_stride = 0;
    void* sum_out = nullptr;  // optional, needs residual
    int64_t sum_row_stride = 0;
    const void* weight = nullptr;  // [cols]
    void* y = nullptr;
    int64_t y_row_stride = 0;
    const void* router_weight = nullptr;  // optional [cols]
    float* router_logits = nullptr;       // [rows], needs router_weight
};
void add_rms_norm_forward(const AddRmsNormArgs& args, cudaStream_t stream);

// In place on a [rows, heads, head_dim] tensor (q or k after projection): optional per-head
// RMSNorm over head_dim with norm_weight (Qwen3's q_norm / k_norm), then rotate-half RoPE:
// x' = x * cos[pos] + rotate_half(x) * sin[pos], cos/sin fp32 [table_rows, head_dim] (the
// attention scaling already folded in), pos = positions[r] (int32, device) or r when positions
// is null. head_dim 64 or 128.
struct RopeArgs {
    ElementType element_type = ElementType::bf16;
    int64_t rows = 0;
    int heads = 0;
    int head_dim = 0;
    void* data = nullptr;
    int64_t token_stride = 0;  // elements
    int64_t head_stride = 0;
    const void* norm_weight = nullptr;  // optional [head_dim], element type
    float eps = 1e-6f;
    const float* cos = nullptr;
    const float* sin = nullptr;
    int64_t table_rows = 0;              // positions must be < table_rows
    const int32_t* positions = nullptr;  // optional [rows]
};
void rope_forward(const RopeArgs& args, cudaStream_t stream);

// The gated add of global attention: for i < *count (on the device),
// dst[positions[i], :] += src[i, :] (element type, fp32 sum). Unrouted rows are untouched.
// dst [tokens, cols], src [>= count, cols]; cols a multiple of 8.
struct ScatterAddArgs {
    ElementType element_type = ElementType::bf16;
    int64_t tokens = 0;
    int cols = 0;
    void* dst = nullptr;
    int64_t dst_row_stride = 0;
    const void* src = nullptr;
    int64_t src_row_stride = 0;
    const int32_t* positions = nullptr;  // [count], each < tokens
    const int32_t* count = nullptr;      // device
};
void scatter_add_rows(const ScatterAddArgs& args, cudaStream_t stream);

// The MLP's gated activation: out = silu(gate) * up, elementwise over [rows, cols], rounded as
// HuggingFace's Qwen MLP rounds (silu(gate) to the element type, then the product), in one pass
// instead of two. out may alias gate or up (same strides). cols a multiple of 8.
struct SiluMulArgs {
    ElementType element_type = ElementType::bf16;
    int64_t rows = 0;
    int64_t cols = 0;
    const void* gate = nullptr;
    int64_t gate_row_stride = 0;  // elements
    const void* up = nullptr;
    int64_t up_row_stride = 0;
    void* out = nullptr;
    int64_t out_row_stride = 0;
};
void silu_mul_forward(const SiluMulArgs& args, cudaStream_t stream);

}  // namespace l2a::kernels
