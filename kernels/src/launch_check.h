// Host-side checks shared by the kernel launchers: every CUDA call and launch either succeeds
// or throws KernelError naming the function and kernel it came from.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "l2a/kernels/attention.h"

namespace l2a::kernels::detail {

[[noreturn]] inline void fail(const std::string& where, const std::string& problem) {
    throw KernelError("l2a::kernels::" + where + ": " + problem);
}

inline void check_cuda(cudaError_t status, const std::string& where, const std::string& what) {
    if (status != cudaSuccess) {
        fail(where, what + " failed: " + cudaGetErrorName(status) + " (" +
                        cudaGetErrorString(status) + ")");
    }
}

// The name of the kernel this thread launched last (last_kernel_launched in attention.h).
std::string& last_launch_name();

// Call right after a <<<...>>> launch: reports bad launch configurations and any error that an
// earlier asynchronous operation left behind, and records the kernel's name.
inline void check_launch(const std::string& where, const std::string& kernel) {
    check_cuda(cudaGetLastError(), where, "launch of " + kernel);
    last_launch_name() = kernel;
}

}  // namespace l2a::kernels::detail
