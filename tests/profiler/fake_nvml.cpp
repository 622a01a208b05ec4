// A stand-in for NVML (libnvidia-ml.so.1) with the entry points the clock sampler loads, so that
// its running path (load, start, sample on its thread, stop) is tested without a GPU. One GPU,
// at PCI bus id 0000:42:00.0; its SM clock steps through 1400, 1500, ..., 1800 MHz, read by
// read; power 650 W; 71 C; held by the software power cap.
#include <atomic>
#include <cstring>

namespace {
int g_device = 0;  // the handle's target
std::atomic<unsigned> g_reads{0};
constexpr int kSuccess = 0;
constexpr int kInvalidArgument = 2;
constexpr int kNotFound = 6;
}  // namespace

extern "C" {

__attribute__((visibility("default"))) int nvmlInit_v2() { return kSuccess; }

__attribute__((visibility("default"))) int nvmlShutdown() { return kSuccess; }

__attribute__((visibility("default"))) const char* nvmlErrorString(int status) {
    return status == kNotFound ? "Not Found" : "Invalid Argument";
}

__attribute__((visibility("default"))) int nvmlDeviceGetHandleByPciBusId_v2(const char* id,
                                                                            void** device) {
    if (std::strcmp(id, "0000:42:00.0") != 0) return kNotFound;
    *device = &g_device;
    return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetClockInfo(void* device, int type,
                                                                  unsigned* mhz) {
    if (device != &g_device || type != 1) return kInvalidArgument;
    *mhz = 1400 + (g_reads++ % 5) * 100;
    return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetPowerUsage(void* device,
                                                                   unsigned* milliwatts) {
    if (device != &g_device) return kInvalidArgument;
    *milliwatts = 650000;
    return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetCurrentClocksEventReasons(
    void* device, unsigned long long* reasons) {
    if (device != &g_device) return kInvalidArgument;
    *reasons = 0x4;
    return kSuccess;
}

__attribute__((visibility("default"))) int nvmlDeviceGetTemperature(void* device, int sensor,
                                                                    unsigned* celsius) {
    if (device != &g_device || sensor != 0) return kInvalidArgument;
    *celsius = 71;
    return kSuccess;
}
}
