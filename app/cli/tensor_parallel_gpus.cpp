#include "tensor_parallel_gpus.h"

#include <algorithm>
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

bool asks_for_tensor_parallel(std::span<const std::string_view> args) {
    constexpr std::string_view kOption = "--tensor-parallel";
    return std::any_of(args.begin(), args.end(), [&](std::string_view a) {
        return a == kOption || (a.size() > kOption.size() &&
                                a.substr(0, kOption.size()) == kOption && a[kOption.size()] == '=');
    });
}

void prepare_tensor_parallel_env(std::span<const std::string_view> args) {
    if (asks_for_tensor_parallel(args)) keep_nvlink_multicast_off();
}

}  // namespace l2a::cli
