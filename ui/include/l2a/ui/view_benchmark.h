// `l2a-studio --bench-views [--tokens N] [--layers L] [--frames F] [--size WxH]`: frame times of
// the routing map and the timeline on a synthetic profile (N tokens x L layers, ~20% routed, a
// host and GPU timeline), full view and zoomed in, plus the texture build. Needs a
// QApplication; prints a table and returns the exit code.
#pragma once

#include <cstdint>

#include "l2a/engine/profile.h"

namespace l2a::ui {

int run_view_benchmark(int argc, char** argv);

// A run-like profile without a model: `tokens` x `layers` decisions (about `routed` of them
// routed, in bursts as real routing is), router logits to match, a document of short words,
// per-token NLL, and a timeline of host ranges (embed, per layer local/router/global/mlp,
// lm_head) with `kernels_per_phase` kernels on two GPU streams under each phase. Deterministic.
Profile synthetic_profile(std::int64_t tokens, int layers, double routed = 0.2,
                          int kernels_per_phase = 4, std::uint32_t seed = 1);

}  // namespace l2a::ui
