// What the engine needs of the device its tensors live on: resolving "cuda:N", naming the GPU,
// stream synchronization for host timers, the caching allocator's peak, and free memory for
// out-of-memory messages. Private to the engine; every function also works in a CPU-only build.
#pragma once

#include <cstdint>
#include <string>

#include "torch_pch.h"

namespace l2a {

// "cpu", "cuda" (device 0) or "cuda:N", checked against this build and machine (require_device).
at::Device resolve_device(const std::string& device);
// Canonical spelling: "cpu" or "cuda:N" ("cuda" is "cuda:0").
std::string canonical_device(const std::string& device);

// "cpu", or the GPU's name ("NVIDIA H100 80GB HBM3").
std::string device_label(const at::Device& device);

// Waits for the work queued on the device's current stream (no-op on the CPU).
void synchronize(const at::Device& device);

// The caching allocator's peak of allocated bytes since the last reset (0 on the CPU).
void reset_peak_memory(const at::Device& device);
std::int64_t peak_memory(const at::Device& device);

// Free bytes on the GPU after returning the allocator's cached blocks (0 on the CPU).
std::int64_t free_memory(const at::Device& device);

// "out of GPU memory while <stage>: <what> on <GPU>, X GiB free; <advice>"
std::string out_of_memory_message(const at::Device& device, const std::string& stage,
                                  const std::string& what, const std::string& advice);

}  // namespace l2a
