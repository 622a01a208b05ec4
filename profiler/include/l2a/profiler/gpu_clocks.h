// The GPU's SM clock, board power, temperature and clock-event reasons, sampled while a benchmark's
// runs go (NVML, loaded at run time: builds and machines without it still run, and say why nothing
// was sampled), and what the samples say about the runs and, traced, about each kernel. A kernel
// timed while the power cap held the clock down is slower for a reason outside the kernel; the
// traced breakdown shows it next to the kernel's time. Free of LibTorch and of CUDA and NVML
// headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/profile.h"

namespace l2a {

struct ClockSample {
    std::int64_t time_ns = 0;  // on the sampler's clock (the tracer converts it to run time)
    std::uint32_t sm_mhz = 0;
    std::uint32_t power_mw = 0;  // 0: not readable on this GPU
    std::uint64_t reasons = 0;   // NVML clock-event reasons, the bits below
    std::uint32_t celsius = 0;   // the GPU's temperature; 0: not readable
};

// NVML's clock-event reason bits (nvmlClocksEventReason*): why the clock is below its maximum.
inline constexpr std::uint64_t kClockReasonIdle = 0x1;
inline constexpr std::uint64_t kClockReasonPowerCap = 0x4;  // software power cap
inline constexpr std::uint64_t kClockReasonHardwareSlowdown = 0x8;
inline constexpr std::uint64_t kClockReasonSoftwareThermal = 0x20;
inline constexpr std::uint64_t kClockReasonHardwareThermal = 0x40;
inline constexpr std::uint64_t kClockReasonPowerBrake = 0x80;

struct ClockStats {
    std::int64_t samples = 0;
    std::uint32_t median_mhz = 0;
    std::uint32_t min_mhz = 0;
    std::uint32_t max_mhz = 0;
    double median_watts = 0;  // 0 when no sample read the power
    double power_capped = 0;  // share of samples held by the power cap (software or brake)
    double slowed = 0;  // share slowed for heat (software or hardware) or by a hardware slowdown
    std::uint32_t max_celsius = 0;  // the hottest sample's temperature; 0 when none was read
};

// Statistics of `samples` (all zero without samples).
ClockStats clock_stats(std::span<const ClockSample> samples);

// The statistics of the samples taken while each kernel ran, keyed by short_kernel_name (the
// names of KernelSummary::kernels). `kernels` in order of their begin (as KernelTimeline holds
// them) and samples in run time; a sample between kernels belongs to none.
std::map<std::string, ClockStats> clock_stats_by_kernel(std::span<const KernelRecord> kernels,
                                                        std::span<const ClockSample> samples);

// Samples one GPU, named by its PCI bus id ("0000:1A:00.0", CudaDeviceInfo::pci_bus_id), every
// `period` (at least 1 ms) on a thread of its own until stop(), each sample stamped by `now`
// (nanoseconds on any clock the caller can convert). Where NVML (libnvidia-ml.so.1, or the file
// that L2A_NVML_LIBRARY names) or the GPU is missing it never starts and reason() says why.
// Power is NVML's reading, which on recent GPUs is averaged over about a second.
class ClockSampler {
public:
    ClockSampler(const std::string& pci_bus_id, std::chrono::microseconds period,
                 std::function<std::int64_t()> now);
    ~ClockSampler();
    ClockSampler(const ClockSampler&) = delete;
    ClockSampler& operator=(const ClockSampler&) = delete;

    bool active() const;
    const std::string& reason() const;  // "" while active
    // Stops sampling (once) and returns the samples in time order.
    std::vector<ClockSample> stop();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
    std::string reason_;
};

}  // namespace l2a
