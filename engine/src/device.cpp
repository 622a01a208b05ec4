#include "l2a/engine/device.h"

#include <cstdio>
#include <string>

#include "device_runtime.h"
#include "l2a/engine/error.h"
#include "l2a/engine/run_choices.h"

#if L2A_ENGINE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace l2a {
namespace {

// The index of "cuda" / "cuda:N"; -1 for anything else (including "cpu").
int parse_cuda_index(const std::string& device) {
    const std::optional<Device> parsed = parse_device(device);
    return parsed && parsed->is_cuda() ? parsed->index : -1;
}

std::string gib(std::int64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB",
                  static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
    return text;
}

}  // namespace

bool cuda_built() { return L2A_ENGINE_CUDA != 0; }

int cuda_device_count() {
#if L2A_ENGINE_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();  // no driver or no device: not an error of later calls
        return 0;
    }
    return count;
#else
    return 0;
#endif
}

CudaDeviceInfo cuda_device_info(int index) {
    const int count = cuda_device_count();
    if (index < 0 || index >= count) {
        fail("", "CUDA device " + std::to_string(index) + " does not exist (this machine has " +
                     std::to_string(count) + " CUDA device" + (count == 1 ? "" : "s") + ")");
    }
    CudaDeviceInfo info;
    info.index = index;
#if L2A_ENGINE_CUDA
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, index) != cudaSuccess) {
        (void)cudaGetLastError();
        fail("", "cannot read the properties of CUDA device " + std::to_string(index));
    }
    info.name = properties.name;
    info.compute_major = properties.major;
    info.compute_minor = properties.minor;
    info.multiprocessors = properties.multiProcessorCount;
    info.total_bytes = static_cast<std::int64_t>(properties.totalGlobalMem);
    char bus_id[32] = {};
    if (cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, index) == cudaSuccess) {
        info.pci_bus_id = bus_id;
    } else {
        (void)cudaGetLastError();
    }
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        info.free_bytes = static_cast<std::int64_t>(free_bytes);
    } else {
        (void)cudaGetLastError();
    }
#endif
    return info;
}

void require_device(const std::string& device) {
    if (is_cpu_device(device)) return;
    const int index = parse_cuda_index(device);
    if (index < 0) fail("", "--device " + device + ": expected " + kDeviceChoices);
    if (!cuda_built()) {
        fail("", "--device " + device +
                     ": this build has no CUDA support (it was configured with "
                     "L2A_WITH_CUDA=OFF); available: cpu");
    }
    const int count = cuda_device_count();
    if (count == 0) {
        fail("",
             "--device " + device + ": no CUDA device is visible on this machine; available: cpu");
    }
    if (index >= count) {
        std::string available = "cpu";
        for (int i = 0; i < count; ++i) available += ", cuda:" + std::to_string(i);
        fail("", "--device " + device + ": no such device; available: " + available);
    }
}

at::Device resolve_device(const std::string& device) {
    require_device(device);
    if (is_cpu_device(device)) return at::Device(at::kCPU);
    return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(parse_cuda_index(device)));
}

std::string canonical_device(const std::string& device) {
    const std::optional<Device> parsed = parse_device(device);
    return parsed ? device_name(*parsed) : device;
}

std::string device_label(const at::Device& device) {
    if (!device.is_cuda()) return "cpu";
    return cuda_device_info(device.index()).name;
}

void synchronize(const at::Device& device) {
#if L2A_ENGINE_CUDA
    if (device.is_cuda()) c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
    (void)device;
#endif
}

void reset_peak_memory(const at::Device& device) {
#if L2A_ENGINE_CUDA
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
    (void)device;
#endif
}

std::int64_t peak_memory(const at::Device& device) {
#if L2A_ENGINE_CUDA
    if (device.is_cuda()) {
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
        return stats
            .allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
            .peak;
    }
#else
    (void)device;
#endif
    return 0;
}

std::int64_t free_memory(const at::Device& device) {
#if L2A_ENGINE_CUDA
    if (device.is_cuda()) {
        c10::cuda::CUDACachingAllocator::emptyCache();
        return cuda_device_info(device.index()).free_bytes;
    }
#else
    (void)device;
#endif
    return 0;
}

std::int64_t cuda_free_bytes(int index) {
#if L2A_ENGINE_CUDA
    return free_memory(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index)));
#else
    (void)index;
    return 0;
#endif
}

std::string out_of_memory_message(const at::Device& device, const std::string& stage,
                                  const std::string& what, const std::string& advice) {
    std::string name = "the GPU";
    std::int64_t free_bytes = 0;
    try {
        free_bytes = free_memory(device);
        name = device_label(device);
    } catch (const std::exception&) {
        // The message matters more than the numbers in it.
    }
    return "out of GPU memory while " + stage + ": " + what + " on " + name + ", " +
           gib(free_bytes) + " free; " + advice;
}

}  // namespace l2a
