// The NCCL backend of ProcessGroup (CUDA tensors, one GPU per rank), built in CUDA builds where
// cmake/Distributed.cmake found the NCCL headers of the version the torch wheel was built with:
// ProcessGroupNCCL's layout depends on NCCL's version macros, so other headers are refused.
#include <c10/cuda/CUDAFunctions.h>
#include <nccl.h>

#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "l2a/engine/error.h"
#include "process_group_backends.h"

#if !defined(L2A_TORCH_NCCL_VERSION_CODE)
#error \
    "L2A_TORCH_NCCL_VERSION_CODE (the torch wheel's NCCL version) is set by cmake/Distributed.cmake"
#endif
static_assert(NCCL_VERSION_CODE == L2A_TORCH_NCCL_VERSION_CODE,
              "nccl.h is not the NCCL version the torch wheel was built with");

namespace l2a {

bool nccl_backend_built() { return true; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const GroupOptions& options,
                                                    std::chrono::milliseconds timeout,
                                                    int device_index) {
    const int devices = static_cast<int>(c10::cuda::device_count());
    if (device_index < 0 || device_index >= devices) {
        fail("", "rank " + std::to_string(options.rank) +
                     ": no GPU cuda:" + std::to_string(device_index) + " (this machine shows " +
                     std::to_string(devices) + ")");
    }
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = timeout;
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, options.rank, options.world,
                                                             nccl_options);
    // The communicator is made now, bound to the rank's GPU (else on its first collective).
    group->setBoundDeviceId(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index)));
    return group;
}

}  // namespace l2a
