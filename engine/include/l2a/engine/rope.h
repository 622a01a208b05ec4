// Rotary position embedding parameters exactly as HuggingFace computes them for each
// rope_scaling type (default, linear, dynamic NTK, YaRN).
#pragma once

#include <cstdint>
#include <vector>

#include "l2a/engine/config.h"

namespace l2a {

struct RopeParams {
    // head_dim / 2 entries, each exactly the float32 value of HF's inv_freq buffer (within an
    // ulp of torch's pow), so cos/sin computed in float32 from them match HF's.
    std::vector<double> inv_freq;
    double attention_scaling = 1.0;  // multiplies cos and sin (YaRN's mscale)
};

// `seq_len` is the number of positions the run covers; only dynamic scaling depends on it
// (HF recomputes its inv_freq when positions exceed max_position_embeddings).
RopeParams compute_rope(const ModelConfig& config, std::int64_t seq_len);

}  // namespace l2a
