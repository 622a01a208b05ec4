// The arithmetic of the attention lens and of the distant-mass oracle on query and key tensors,
// apart from the model, so that it can be checked on queries and keys built for a known answer.
// Private to the engine.
#pragma once

#include <cstdint>
#include <vector>

#include "torch_pch.h"

namespace l2a {

class Model;

// Softmax weights of one query's heads q [H, D] over keys k [n, Hkv, D], scores q . k / sqrt(D)
// in fp32, as the attention backends group heads (GQA: query head h reads key head
// h / (H / Hkv)): [H, n] fp32 on q's device.
at::Tensor attention_weights_of(const at::Tensor& q, const at::Tensor& k);

// For the queries q [T, H, D] at positions 0..T-1 against keys k [T, Hkv, D]: per query t and
// head, the share of its causal softmax weights (keys 0..t) that falls on keys 0..t-window, the
// keys older than the sliding window (0 for t < window). [T, H] fp32 on q's device. Blocked:
// query_block queries against key_block keys at a time, with one running maximum and two
// running sums (old keys, all keys) per query and head; never a T x T matrix.
at::Tensor distant_mass_of(const at::Tensor& q, const at::Tensor& k, std::int64_t window,
                           std::int64_t query_block, std::int64_t key_block);

// The distant mass (mean over heads, [T] on the host) of layer `layer`'s global queries from the
// residual stream `state` [T, hidden] entering it, on the model's device; `state` is not
// changed. What distant_mass (lens.h) computes from host rows; the routing oracle calls it
// inside a run, so that the state never leaves the device.
std::vector<float> layer_distant_mass(const Model& model, const at::Tensor& state, int layer);

}  // namespace l2a
