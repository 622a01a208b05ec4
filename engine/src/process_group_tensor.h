// Collectives on tensors (the engine's own, on the group's device), beside ProcessGroup's public
// ones on host memory. Private to the engine; free of c10d headers.
#pragma once

#include "l2a/engine/process_group.h"

namespace l2a {

// Sums `tensor` (on the group's device: host memory for Gloo, the rank's GPU for NCCL; any
// floating dtype the backend sums) over the ranks, in place. Throws l2a::Error naming the rank
// when the tensor is elsewhere or a rank failed.
void all_reduce_sum_tensor(ProcessGroup& group, at::Tensor& tensor);

}  // namespace l2a
