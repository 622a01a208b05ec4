#include "l2a/profiler/gpu_clocks.h"

#include <dlfcn.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "l2a/profiler/kernel_summary.h"

namespace l2a {

namespace {

std::uint32_t median_of(std::vector<std::uint32_t> values) {
    if (values.empty()) return 0;
    const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
    std::nth_element(values.begin(), middle, values.end());
    return *middle;
}

}  // namespace

ClockStats clock_stats(std::span<const ClockSample> samples) {
    ClockStats out;
    if (samples.empty()) return out;
    std::vector<std::uint32_t> mhz;
    std::vector<std::uint32_t> milliwatts;
    std::int64_t capped = 0;
    std::int64_t slowed = 0;
    out.min_mhz = samples.front().sm_mhz;
    for (const ClockSample& s : samples) {
        mhz.push_back(s.sm_mhz);
        if (s.power_mw > 0) milliwatts.push_back(s.power_mw);
        out.min_mhz = std::min(out.min_mhz, s.sm_mhz);
        out.max_mhz = std::max(out.max_mhz, s.sm_mhz);
        out.max_celsius = std::max(out.max_celsius, s.celsius);
        if (s.reasons & (kClockReasonPowerCap | kClockReasonPowerBrake)) ++capped;
        if (s.reasons & (kClockReasonSoftwareThermal | kClockReasonHardwareThermal |
                         kClockReasonHardwareSlowdown)) {
            ++slowed;
        }
    }
    out.samples = static_cast<std::int64_t>(samples.size());
    out.median_mhz = median_of(std::move(mhz));
    out.median_watts = static_cast<double>(median_of(std::move(milliwatts))) * 1e-3;
    out.power_capped = static_cast<double>(capped) / static_cast<double>(out.samples);
    out.slowed = static_cast<double>(slowed) / static_cast<double>(out.samples);
    return out;
}

std::map<std::string, ClockStats> clock_stats_by_kernel(std::span<const KernelRecord> kernels,
                                                        std::span<const ClockSample> samples) {
    std::map<std::string, std::vector<ClockSample>> by_name;
    std::map<std::string, std::string> short_names;
    for (const ClockSample& s : samples) {
        // The last kernel that began at or before the sample; it holds the sample if it had not
        // ended yet (one stream: kernels do not overlap).
        auto it =
            std::upper_bound(kernels.begin(), kernels.end(), s.time_ns,
                             [](std::int64_t t, const KernelRecord& k) { return t < k.begin_ns; });
        if (it == kernels.begin()) continue;
        const KernelRecord& k = *std::prev(it);
        if (s.time_ns >= k.end_ns) continue;
        auto [name, added] = short_names.try_emplace(k.name);
        if (added) name->second = short_kernel_name(k.name);
        by_name[name->second].push_back(s);
    }
    std::map<std::string, ClockStats> out;
    for (const auto& [name, list] : by_name) out[name] = clock_stats(list);
    return out;
}

// ---- the sampler: NVML through dlopen ------------------------------------------------------

namespace {

// The few NVML entry points used, as the NVML API declares them (nvmlReturn_t is an int,
// NVML_SUCCESS 0; nvmlDevice_t an opaque pointer; NVML_CLOCK_SM 1; power in milliwatts).
using NvmlDevice = void*;
using InitFn = int (*)();
using ShutdownFn = int (*)();
using HandleByPciFn = int (*)(const char*, NvmlDevice*);
using ClockFn = int (*)(NvmlDevice, int, unsigned int*);
using PowerFn = int (*)(NvmlDevice, unsigned int*);
using ReasonsFn = int (*)(NvmlDevice, unsigned long long*);
using TemperatureFn = int (*)(NvmlDevice, int, unsigned int*);
using ErrorStringFn = const char* (*)(int);
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlClockSm = 1;
constexpr int kNvmlTemperatureGpu = 0;  // the die's sensor, degrees Celsius

}  // namespace

struct ClockSampler::Impl {
    void* library = nullptr;
    ShutdownFn shutdown = nullptr;
    ClockFn clock = nullptr;
    PowerFn power = nullptr;
    ReasonsFn reasons = nullptr;
    TemperatureFn temperature = nullptr;
    NvmlDevice device = nullptr;
    std::function<std::int64_t()> now;
    std::chrono::microseconds period{5000};

    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    std::vector<ClockSample> samples;
    std::thread thread;

    ~Impl() {
        if (shutdown) shutdown();
        if (library) dlclose(library);
    }

    void run() {
        std::unique_lock<std::mutex> lock(mutex);
        auto next = std::chrono::steady_clock::now();
        while (!stopping) {
            next += period;
            lock.unlock();
            ClockSample s;
            s.time_ns = now();
            unsigned int value = 0;
            if (clock(device, kNvmlClockSm, &value) == kNvmlSuccess) s.sm_mhz = value;
            if (power && power(device, &value) == kNvmlSuccess) s.power_mw = value;
            unsigned long long bits = 0;
            if (reasons && reasons(device, &bits) == kNvmlSuccess) s.reasons = bits;
            if (temperature && temperature(device, kNvmlTemperatureGpu, &value) == kNvmlSuccess) {
                s.celsius = value;
            }
            lock.lock();
            if (s.sm_mhz > 0) samples.push_back(s);
            // A late round (a slow read) does not make the next ones come back to back: at most
            // one sample a period, whatever the reads cost.
            next = std::max(next, std::chrono::steady_clock::now());
            wake.wait_until(lock, next, [this] { return stopping; });
        }
    }
};

ClockSampler::ClockSampler(const std::string& pci_bus_id, std::chrono::microseconds period,
                           std::function<std::int64_t()> now) {
    if (pci_bus_id.empty() || !now) {
        reason_ =
            pci_bus_id.empty() ? "the GPU's PCI bus id is unknown" : "no clock to stamp samples";
        return;
    }
    auto impl = std::make_unique<Impl>();
    const char* path = std::getenv("L2A_NVML_LIBRARY");
    const std::string library = path != nullptr && path[0] != '\0' ? path : "libnvidia-ml.so.1";
    impl->library = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!impl->library) {
        reason_ = "NVML (" + library + ") is not installed";
        return;
    }
    const auto symbol = [&](const char* name) { return dlsym(impl->library, name); };
    const auto init = reinterpret_cast<InitFn>(symbol("nvmlInit_v2"));
    const auto by_pci = reinterpret_cast<HandleByPciFn>(symbol("nvmlDeviceGetHandleByPciBusId_v2"));
    impl->clock = reinterpret_cast<ClockFn>(symbol("nvmlDeviceGetClockInfo"));
    impl->power = reinterpret_cast<PowerFn>(symbol("nvmlDeviceGetPowerUsage"));
    impl->reasons = reinterpret_cast<ReasonsFn>(symbol("nvmlDeviceGetCurrentClocksEventReasons"));
    impl->temperature = reinterpret_cast<TemperatureFn>(symbol("nvmlDeviceGetTemperature"));
    if (!impl->reasons) {
        impl->reasons =
            reinterpret_cast<ReasonsFn>(symbol("nvmlDeviceGetCurrentClocksThrottleReasons"));
    }
    const auto shutdown = reinterpret_cast<ShutdownFn>(symbol("nvmlShutdown"));
    const auto error_string = reinterpret_cast<ErrorStringFn>(symbol("nvmlErrorString"));
    const auto describe = [&](int status) {
        const char* text = error_string ? error_string(status) : nullptr;
        return std::string(text ? text : "error") + " (" + std::to_string(status) + ")";
    };
    if (!init || !by_pci || !impl->clock || !shutdown) {
        reason_ = "NVML lacks the clock functions";
        return;
    }
    if (const int status = init(); status != kNvmlSuccess) {
        reason_ = "NVML did not start: " + describe(status);
        return;
    }
    impl->shutdown = shutdown;
    // NVML reads the id's fields as hex numbers: CUDA's spelling (4-digit domain, upper case)
    // names the same GPU as its own (8-digit domain).
    if (const int status = by_pci(pci_bus_id.c_str(), &impl->device); status != kNvmlSuccess) {
        reason_ =
            "NVML does not give the GPU at PCI bus id " + pci_bus_id + ": " + describe(status);
        return;
    }
    unsigned int mhz = 0;
    if (const int status = impl->clock(impl->device, kNvmlClockSm, &mhz); status != kNvmlSuccess) {
        reason_ = "NVML cannot read this GPU's SM clock: " + describe(status);
        return;
    }
    impl->now = std::move(now);
    impl->period = std::max(period, std::chrono::microseconds(1000));
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
    impl_ = std::move(impl);
}

ClockSampler::~ClockSampler() { stop(); }

bool ClockSampler::active() const { return impl_ != nullptr && impl_->thread.joinable(); }

const std::string& ClockSampler::reason() const { return reason_; }

std::vector<ClockSample> ClockSampler::stop() {
    if (!impl_ || !impl_->thread.joinable()) return {};
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->thread.join();
    return std::move(impl_->samples);
}

}  // namespace l2a
