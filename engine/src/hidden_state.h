// A kept residual-stream state as the engine holds it: a LibTorch tensor [rows, hidden] on the
// run's device in the run's dtype. Private to the engine.
#pragma once

#include <mutex>
#include <vector>

#include "l2a/engine/prefill.h"
#include "torch_pch.h"

namespace l2a {

struct HiddenState::Impl {
    at::Tensor tensor;  // [rows, hidden] (flat where the values are not whole rows), contiguous;
                        // never written once kept
    std::int64_t hidden_size = 0;
    mutable std::once_flag host_once;
    mutable std::vector<float> host;  // fp32 copy, made by HiddenState::host()
};

// A state holding `tensor` (the caller's tensor, which must not be written afterwards).
HiddenState hidden_state(at::Tensor tensor);
// The kept tensor; undefined for an empty state.
const at::Tensor& state_tensor(const HiddenState& state);

}  // namespace l2a
