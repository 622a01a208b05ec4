#include "tensor_parallel_gpus.h"

#include <cstdlib>
#include <string>

namespace l2a::cli {

std::string tensor_parallel_gpu(int rank) { return "cuda:" + std::to_string(rank); }

std::string tensor_parallel_gpu_shortage(int n, int visible) {
    if (visible >= n) return {};
    const std::string shown = visible == 0   ? std::string("no GPU is visible")
                              : visible == 1 ? std::string("1 GPU is visible")
                                             : std::to_string(visible) + " GPUs are visible";
    return std::to_string(n) + " processes need a GPU each (rank r runs on cuda:r), and " + shown +
           " (CUDA_VISIBLE_DEVICES picks them); " +
           (visible >= 2 ? "give --tensor-parallel " + std::to_string(visible) + " or fewer"
                         : std::string("run without --tensor-parallel, or on the CPU (--device "
                                       "cpu)"));
}

bool keep_nvlink_multicast_off() {
    if (std::getenv("NCCL_NVLS_ENABLE") != nullptr) return false;
    return ::setenv("NCCL_NVLS_ENABLE", "0", 0) == 0;
}

}  // namespace l2a::cli
