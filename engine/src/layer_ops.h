// The operations a decoder layer is made of, on one device with one kind of kernel. The layer
// itself is written once over this interface (prefill.cpp, decoder_layer); a run picks the
// implementation once (make_layer_ops):
// - reference: LibTorch ops on the CPU or CUDA, fp32 norms and RoPE computed in row blocks,
//   attention through the run's backend (reference or sdpa; kernels when the fused ops do not
//   apply to the model's shape).
// - kernels (CUDA, --backend kernels): the project's fused operators (add + RMSNorm + router
//   logit, QK-norm + RoPE, gated scatter-add) and attention kernels.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "attention.h"
#include "l2a/engine/config.h"
#include "model_impl.h"
#include "torch_pch.h"

namespace l2a {

// Tensor parallel: sums, in place and across the ranks, the partial outputs [n, d] of a
// row-parallel projection (each rank's O or down projection over its own heads or intermediate
// slice), so that every rank holds the whole projection.
using PartialSum = std::function<void(at::Tensor&)>;

// What the operations of one run need: the model's shape and dtype, the attention backend, the
// row blocks of the row-wise stages, RoPE, and every token as query rows.
struct LayerOpsSettings {
    const ModelConfig& config;
    at::ScalarType dtype;
    AttentionBackend attend;
    std::int64_t query_block;  // attention query rows per block (--chunk)
    std::int64_t norm_rows;    // rows per block of norms and projections
    std::int64_t mlp_rows;
    const RopeTables& rope;
    const QueryRows& every_row;   // tokens 0..T-1
    std::function<void()> check;  // between blocks; throws to cancel
    // Tensor parallel only (the model is a shard): applied to the output of every O projection
    // and MLP down projection before it is added to the residual stream. Empty: one process.
    PartialSum reduce = {};
};

// The router's view of a layer's residual: u = RMSNorm_global(h) in the model dtype (global
// attention reads it) and the router logits z = router(u), fp32 [T], on the device.
struct RouterOutput {
    at::Tensor u;
    at::Tensor z;
};

class LayerOps {
public:
    explicit LayerOps(LayerOpsSettings settings) : s_(std::move(settings)) {}
    virtual ~LayerOps() = default;
    LayerOps(const LayerOps&) = delete;
    LayerOps& operator=(const LayerOps&) = delete;

    // RMSNorm of the rows of x [n, d], returned in the model dtype.
    virtual at::Tensor norm(const at::Tensor& x, const at::Tensor& weight) const = 0;
    // h = x + local, in place on x; then u = RMSNorm(h) with w.global_norm and z = router(u).
    virtual RouterOutput add_norm_router(at::Tensor& x, at::Tensor local,
                                         const LayerWeights& w) const = 0;
    // Normalized rows x [n, d] projected to heads [n, heads, D] in the model dtype: bias, then
    // QK-norm (when `norm` is defined) and RoPE at the positions of `rows` (none when null).
    virtual at::Tensor project(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, const at::Tensor& norm, std::int64_t heads,
                               const QueryRows* rows) const = 0;
    // The routed positions (host, ascending) as query rows on the device.
    virtual QueryRows routed_rows(std::span<const std::int64_t> routed) const = 0;
    // Gated residual: h[rows[i]] += a[i]; rows not routed add nothing.
    virtual void gated_add(at::Tensor& h, const at::Tensor& a, const QueryRows& rows) const = 0;

    // Causal attention of every token over w's projections of the normalized rows xn, after the
    // output projection: [T, d]. window 0: full causal; W > 0: the last W keys.
    at::Tensor causal_attention(const AttentionWeights& w, const at::Tensor& xn,
                                std::int64_t window) const;
    // Full causal attention of the routed queries only (keys and values of every token), after
    // the output projection: [routed, d].
    at::Tensor routed_attention(const AttentionWeights& w, const at::Tensor& u,
                                const QueryRows& rows) const;
    // h += MLP(RMSNorm(h) with w.post_norm), in place, in row blocks.
    void add_mlp(at::Tensor& h, const LayerWeights& w) const;

protected:
    const LayerOpsSettings& settings() const { return s_; }
    // rows += MLP(xn) for one block of rows (xn: the rows after the post-attention norm).
    virtual void add_mlp_rows(at::Tensor& rows, const at::Tensor& xn, const LayerWeights& w) const;

private:
    at::Tensor attention(const AttentionWeights& w, const at::Tensor& queries_from,
                         const QueryRows& rows, const at::Tensor& keys_from,
                         std::int64_t window) const;
    LayerOpsSettings s_;
};

// Positions 0..rows-1 of a sequence as query rows on the device, with their RoPE tables.
// LayerOpsSettings refers to every_row and rope, so an instance stays where it is made.
struct SequenceRows {
    // `sequence_length`: the tokens of the whole run (at least `rows`), which dynamic RoPE
    // scaling depends on, so that a run over the first rows of a sequence rotates them as the
    // run over all of it does.
    SequenceRows(const ModelConfig& config, std::int64_t rows, std::int64_t sequence_length,
                 const at::Device& device);
    SequenceRows(const SequenceRows&) = delete;
    SequenceRows& operator=(const SequenceRows&) = delete;

    std::vector<std::int64_t> positions;  // 0..rows-1, host
    QueryRows every_row;
    RopeTables rope;
};

// The settings of a run of model `m` over `rows`. On the GPU, row-wise stages run in blocks that
// keep their fp32 temporaries a small, fixed size; on the CPU the whole sequence is one block.
LayerOpsSettings layer_ops_settings(const Model::Impl& m, AttentionBackend attend,
                                    std::int64_t chunk, const SequenceRows& rows,
                                    std::function<void()> check);

// The kernels' fused operators when `fused` (CUDA builds only), else the reference ops.
std::unique_ptr<LayerOps> make_layer_ops(LayerOpsSettings settings, bool fused);

// RMSNorm of the rows of x in fp32, in blocks of `block_rows`, returned in `dtype`.
at::Tensor norm_in_blocks(const at::Tensor& x, const at::Tensor& weight, double eps,
                          at::ScalarType dtype, std::int64_t block_rows);

// fp32 logits of normalized final rows xn [n, d] in the model dtype (for half-precision weights
// straight from the GEMM's fp32 accumulator).
at::Tensor head_logits(const Model::Impl& m, const at::Tensor& xn);

// The loss of next-token logits [rows, vocab] (fp32) against the tokens that follow, `next`
// [rows] int64: log-sum-exp minus the next token's logit, per row (fp32, on the logits' device).
at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& next);

// Per row of two runs' next-token logits [rows, vocab] (the reference's and the other's):
// KL(reference || other) in `math` (fp64 on the CPU, fp32 on a GPU), as fp64, and whether
// their top tokens agree (bool), both on the logits' device. Given `next` [rows] int64 also the
// other run's loss (next_token_loss), from the same log-sum-exp.
struct RowComparison {
    at::Tensor kl;
    at::Tensor same_top;
    at::Tensor loss;  // with `next` only
};
RowComparison compare_next_token_rows(const at::Tensor& reference_logits, const at::Tensor& logits,
                                      at::ScalarType math, const at::Tensor& next = {});

// Router logits (fp32) of the normalized rows u (any dtype; computed in fp32) per the config's
// router input mode (L2A.md): w . u, u[:, 0] or mean(u). `router` is sigmoid_linear's weight [d].
at::Tensor router_logits(const at::Tensor& u, const at::Tensor& router, RouterInput input);

}  // namespace l2a
