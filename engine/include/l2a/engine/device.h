// Which compute devices this build and this machine offer. Free of LibTorch and CUDA headers.
#pragma once

#include <cstdint>
#include <string>

namespace l2a {

struct CudaDeviceInfo {
    int index = 0;
    std::string name;       // "NVIDIA H100 80GB HBM3"
    int compute_major = 0;  // 9 for Hopper
    int compute_minor = 0;
    int multiprocessors = 0;
    std::int64_t total_bytes = 0;
    std::int64_t free_bytes = 0;  // at the time of the call
    std::string pci_bus_id;       // "0000:1A:00.0" (NVML reads it; nvidia-smi: "00000000:1A:00.0")
};

// Whether the engine was compiled with its CUDA path (L2A_WITH_CUDA).
bool cuda_built();
// CUDA devices visible now; 0 when the build has no CUDA path or the machine has no GPU.
int cuda_device_count();
// Throws l2a::Error when `index` names no device.
CudaDeviceInfo cuda_device_info(int index = 0);
// Free memory of GPU `index`, counting the blocks the engine has cached but not in use as free
// (they are released first); 0 without a CUDA path.
std::int64_t cuda_free_bytes(int index = 0);

// Checks a --device value ("cpu", "cuda", "cuda:N") against this build and machine; throws
// l2a::Error with a message that says what is available otherwise.
void require_device(const std::string& device);

}  // namespace l2a
