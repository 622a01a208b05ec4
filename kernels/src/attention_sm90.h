// Host entry points of the Hopper (sm_90a) attention path; attention.cu's dispatcher chooses
// between them and the mma.sync kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "attention_kernel.cuh"
#include "l2a/kernels/attention.h"

namespace l2a::kernels::detail {

// Whether the current device can run the Hopper kernels: compute capability 9.x, and this build
// carries their sm_90a code. Errors querying the device count as "no".
bool sm90_attention_available();

// Why sm90_attention_available() is false, for error messages.
std::string sm90_attention_unavailable_reason();

// Launch the Hopper kernel for the given policies. Returns false, launching nothing, when the
// K or V tensor cannot be described by a tensor map (e.g. a zero token stride); the caller then
// uses the mma.sync kernel. Launch failures throw KernelError. `lse_only` (every-query
// attention only): the kernel computes the LSEs alone and writes no output rows. `pairs`: D = 128
// launches that write output may run their blocks in pairs sharing each K/V tile
// (attention_sm90_kernel's Paired); false runs every block alone.
template <typename QuerySet, typename KeyRange>
bool sm90_attention_launch(const std::string& where, const AttentionShape& shape,
                           const AttentionParams& params, cudaStream_t stream, bool lse_only,
                           bool pairs);

}  // namespace l2a::kernels::detail
