// The reference attention backend on LibTorch ops: blocked over queries and keys with an online
// softmax, so that no [T, T] score matrix exists and memory grows linearly in T.
#pragma once

#include <cstdint>
#include <functional>

#include "torch_pch.h"

namespace l2a {

// RMSNorm over the last dimension, as HuggingFace's Qwen2/Qwen3 RMSNorm (in fp32).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// cos/sin tables [positions, head_dim] (already multiplied by the rope attention scaling).
struct RopeTables {
    at::Tensor cos;
    at::Tensor sin;
};
RopeTables make_rope_tables(const std::vector<double>& inv_freq, double attention_scaling,
                            std::int64_t positions);

// x: [heads, n, D]; rows of `tables` picked by `positions` ([n] int64).
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables, const at::Tensor& positions);

// Causal attention of queries at `positions` against keys 0..T-1. window 0: full causal;
// window W > 0: keys t-W+1 .. t. q: [Hq, n, D], k and v: [Hkv, T, D] (GQA: Hq a multiple of Hkv),
// positions: [n] int64, ascending. Returns [n, Hq * D]. `check` runs between blocks (it throws
// to cancel).
at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& positions, const at::Tensor& k,
                             const at::Tensor& v, std::int64_t window, std::int64_t query_block,
                             std::int64_t key_block, const std::function<void()>& check);

}  // namespace l2a
