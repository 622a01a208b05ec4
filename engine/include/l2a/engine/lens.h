// Why a token went global: its global attention over the keys before it (the attention lens)
// and how much of that attention falls on keys older than the local window ("distant mass"),
// for one token or for every token of a layer (the routing oracle). Computed from the residual
// state entering the layer, as ResidualCheckpoints holds it. Header free of LibTorch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"

namespace l2a {

// The global attention of one token's query in one L2A layer.
struct AttentionLens {
    std::int64_t token = 0;
    int layer = 0;
    std::int64_t window = 0;  // W: the local attention sees keys max(0, t-W+1)..t
    std::int64_t heads = 0;   // query heads H
    // [H, token + 1]: head h's softmax weights over keys 0..token (each row sums to 1).
    std::vector<float> weights;
    // [token + 1]: the mean over heads.
    std::vector<float> mean_weights;
    // [H, min(W, token + 1)]: the local (sliding-window) attention's weights of the same token,
    // over keys max(0, t-W+1)..t, from the layer's local projections.
    std::vector<float> local_weights;
    // Per head, and the mean over heads: the share of the global weights on keys older than
    // the window (keys 0..t-W); 0 for t < W.
    std::vector<double> head_distant_mass;  // [H]
    double distant_mass = 0.0;
};

// The lens of `token` in L2A layer `layer`, from `hidden_entering` ([num_tokens, hidden] fp32
// rows, the state entering the layer; only rows 0..token are read, but num_tokens is the run's
// length, which dynamic RoPE scaling depends on). Computes, as the layer does, with the
// engine's reference operations: h = x + SWA(RMSNorm_in(x)) for rows 0..token,
// u = RMSNorm_global(h), global q and k (projection, QK-norm, RoPE at the absolute positions),
// softmax(q k^T / sqrt(D)) with GQA, on the model's device and dtype with fp32 softmax. Throws
// l2a::Error for a plain model, a layer or token out of range, or a state of the wrong size.
AttentionLens attention_lens(const Model& model, std::span<const float> hidden_entering,
                             std::int64_t num_tokens, int layer, std::int64_t token);
// The same from a kept state (ResidualCheckpoints::entering), read where it is kept.
AttentionLens attention_lens(const Model& model, const HiddenState& hidden_entering,
                             std::int64_t num_tokens, int layer, std::int64_t token);

// The distant mass of every token's global query in L2A layer `layer` ([num_tokens], mean over
// heads), from the state entering the layer: for each query t and head, the log-sum-exp of
// its scores over keys 0..t-W and over keys 0..t, distant = exp(lse_old - lse_all) (0 for
// t < W). Blocked over queries and keys with a running maximum and two running sums (one
// maximum serves both: the share is their ratio), in fp32 on the model's device: never a T x T
// matrix. Equal to attention_lens(...).distant_mass of each token (within float rounding).
// Throws l2a::Error as attention_lens does.
std::vector<float> distant_mass(const Model& model, std::span<const float> hidden_entering,
                                std::int64_t num_tokens, int layer);
std::vector<float> distant_mass(const Model& model, const HiddenState& hidden_entering,
                                std::int64_t num_tokens, int layer);

// The indices of the `k` largest `weights` (a lens's mean_weights, or one head's row), largest
// first; equal weights by index.
std::vector<std::int64_t> top_weights(std::span<const float> weights, std::size_t k);

}  // namespace l2a
