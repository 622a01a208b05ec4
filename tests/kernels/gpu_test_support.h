// Host-side helpers shared by the GPU kernel tests: 16-bit float conversions (round to nearest
// even), poison values, device buffers and streams with checked CUDA calls, per-case seeds, and
// a parameterized fixture that skips without a CUDA device.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "l2a/kernels/attention.h"  // ElementType

namespace l2a::kernels::test_support {

// ---- host-side 16-bit floats (round to nearest even) --------------------------------------

inline uint16_t float_to_bf16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(bits >> 16);
}

inline float bf16_to_float(uint16_t half) {
    const uint32_t bits = uint32_t(half) << 16;
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

inline uint16_t float_to_fp16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    bits &= 0x7fffffffu;
    if (bits > 0x7f800000u) return sign | 0x7e00;
    if (bits >= 0x477ff000u) return sign | 0x7c00;  // rounds past 65504: infinity
    if (bits < 0x38800000u) {                       // below 2^-14: subnormal
        float magnitude;
        std::memcpy(&magnitude, &bits, sizeof(magnitude));
        return sign | static_cast<uint16_t>(std::nearbyint(magnitude * 16777216.0f));
    }
    bits += 0xc8000fffu + ((bits >> 13) & 1u);  // rebias the exponent, round to nearest even
    return sign | static_cast<uint16_t>(bits >> 13);
}

inline float fp16_to_float(uint16_t half) {
    const int exponent = (half >> 10) & 0x1f;
    const int mantissa = half & 0x3ff;
    float magnitude;
    if (exponent == 0) {
        magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    } else if (exponent == 31) {
        magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                                  : std::numeric_limits<float>::quiet_NaN();
    } else {
        magnitude = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
    }
    return (half & 0x8000) ? -magnitude : magnitude;
}

inline uint16_t to_bits(ElementType type, float value) {
    return type == ElementType::bf16 ? float_to_bf16(value) : float_to_fp16(value);
}

inline float from_bits(ElementType type, uint16_t bits) {
    return type == ElementType::bf16 ? bf16_to_float(bits) : fp16_to_float(bits);
}

inline constexpr uint16_t kPoison16 = 0xffff;
inline constexpr uint32_t kPoison32 = 0xffffffffu;

// ---- device plumbing ------------------------------------------------------------------------

inline void cuda_ok(cudaError_t status, const std::string& what) {
    if (status != cudaSuccess) {
        throw std::runtime_error(what + ": " + cudaGetErrorString(status));
    }
}

inline bool has_cuda_device() {
    static const bool present = [] {
        int devices = 0;
        const cudaError_t status = cudaGetDeviceCount(&devices);
        if (status != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        return devices > 0;
    }();
    return present;
}

class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
        if (bytes_ > 0) cuda_ok(cudaMalloc(&data_, bytes_), "cudaMalloc");
    }
    template <typename T>
    explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
        upload(host);
    }
    ~DeviceBuffer() {
        if (data_ != nullptr) cudaFree(data_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <typename T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    template <typename T>
    void upload(const std::vector<T>& host) {
        if (host.size() * sizeof(T) != bytes_) throw std::runtime_error("upload size mismatch");
        if (bytes_ > 0)
            cuda_ok(cudaMemcpy(data_, host.data(), bytes_, cudaMemcpyHostToDevice), "upload");
    }
    template <typename T>
    std::vector<T> download() const {
        std::vector<T> host(bytes_ / sizeof(T));
        if (bytes_ > 0) {
            cuda_ok(cudaMemcpy(host.data(), data_, bytes_, cudaMemcpyDeviceToHost), "download");
        }
        return host;
    }

private:
    void* data_ = nullptr;
    size_t bytes_ = 0;
};

class Stream {
public:
    Stream() { cuda_ok(cudaStreamCreate(&stream_), "cudaStreamCreate"); }
    ~Stream() { cudaStreamDestroy(stream_); }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return stream_; }
    // Waits for the stream's work; a kernel that has not finished after the limit (a stalled
    // barrier never returns) ends the process with a line naming the test, since nothing can
    // stop it from the host. L2A_KERNEL_TEST_LIMIT_S sets the limit (default 120 s; the
    // sanitizers run kernels many times slower).
    void finish() const {
        const auto deadline = std::chrono::steady_clock::now() + finish_limit();
        cudaError_t status = cudaStreamQuery(stream_);
        while (status == cudaErrorNotReady) {
            if (std::chrono::steady_clock::now() > deadline) report_stall();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            status = cudaStreamQuery(stream_);
        }
        cuda_ok(status, "the stream's kernels");
        cuda_ok(cudaGetLastError(), "after the kernels");
    }

private:
    static std::chrono::seconds finish_limit() {
        const char* text = std::getenv("L2A_KERNEL_TEST_LIMIT_S");
        const long seconds = text != nullptr ? std::strtol(text, nullptr, 10) : 0;
        return std::chrono::seconds(seconds > 0 ? seconds : 120);
    }
    [[noreturn]] static void report_stall() {
        const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
        std::fprintf(stderr, "kernel stall: %s%s%s did not finish within %lld s; stopping\n",
                     test != nullptr ? test->test_suite_name() : "a kernel",
                     test != nullptr ? "." : "", test != nullptr ? test->name() : "",
                     static_cast<long long>(finish_limit().count()));
        std::fflush(stderr);
        std::_Exit(3);
    }

    cudaStream_t stream_ = nullptr;
};

inline std::mt19937 seeded_random(const std::string& case_name) {
    return std::mt19937(static_cast<uint32_t>(std::hash<std::string>{}(case_name)));
}

// Parameterized GPU tests skip, rather than fail, on machines without a CUDA device.
template <typename Case>
class GpuTest : public testing::TestWithParam<Case> {
protected:
    void SetUp() override {
        if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    }
};

}  // namespace l2a::kernels::test_support
