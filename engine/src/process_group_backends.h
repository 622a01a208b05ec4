// The c10d backends behind ProcessGroup (process_group_c10d.cpp): each is made in a file of its
// own, compiled only where its headers were found (cmake/Distributed.cmake), with a stand-in
// that throws where they were not. Private to the engine.
#pragma once

#include <chrono>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "l2a/engine/process_group.h"
#include "process_group_tensor.h"

namespace l2a {

// Gloo on the CPU (process_group_gloo.cpp; process_group_gloo_none.cpp throws).
bool gloo_backend_built();
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const GroupOptions& options,
                                                    std::chrono::milliseconds timeout);

// NCCL on the rank's GPU `device_index` (process_group_nccl.cpp; process_group_nccl_none.cpp
// throws).
bool nccl_backend_built();
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const GroupOptions& options,
                                                    std::chrono::milliseconds timeout,
                                                    int device_index);

}  // namespace l2a
