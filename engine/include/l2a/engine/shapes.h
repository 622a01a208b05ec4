// Published Qwen model shapes, for benchmarks with random weights (no download needed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/config.h"

namespace l2a {

// Names accepted by published_shape(): "qwen3-8b", "qwen2.5-7b", ... (lower case).
std::vector<std::string> published_shape_names();

// The config of a published model shape (layer count, widths, heads, head dim, vocabulary,
// rope, norms as in its config.json), made into an L2A model (l2a_qwen2 / l2a_qwen3) with the
// given sliding window when `l2a` is true. Throws l2a::Error "--shape: unknown shape 'x'
// (known: ...)" for other names.
ModelConfig published_shape(std::string_view name, bool l2a = true, std::int64_t window = 4095);

}  // namespace l2a
