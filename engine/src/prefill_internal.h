// Engine-private entry to the prefill runner for tensor parallel runs (tensor_parallel.cpp).
#pragma once

#include <cstdint>
#include <span>

#include "l2a/engine/prefill.h"
#include "layer_ops.h"

namespace l2a {

// run_prefill over a shard (shard_for_rank), with `reduce` summing the partial outputs of the
// O and down projections across the ranks (LayerOpsSettings::reduce).
PrefillResult run_prefill_reduced(const Model& shard, std::span<const std::int32_t> tokens,
                                  const RunOptions& options, const PrefillHooks& hooks,
                                  PartialSum reduce);

}  // namespace l2a
