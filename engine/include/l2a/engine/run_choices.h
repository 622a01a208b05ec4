// What a run is computed with: the attention backend, the weights' dtype and the device. Each is
// an enum, parsed from and named by its command-line spelling here and nowhere else; options and
// settings keep the spelling, and code that acts on it parses it with these functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace l2a {

// --backend: "reference" (blocked LibTorch ops, CPU and CUDA), "sdpa" (CUDA: PyTorch's fused
// attention), "kernels" (CUDA: the project's kernels/).
enum class Backend : std::uint8_t { Reference, Sdpa, Kernels };
inline constexpr Backend kBackends[] = {Backend::Reference, Backend::Sdpa, Backend::Kernels};
// How messages list them.
inline constexpr const char* kBackendChoices = "reference, sdpa or kernels";
const char* backend_name(Backend backend);
std::optional<Backend> parse_backend(std::string_view name);

// --dtype of the placed weights: "auto" (fp32 on the CPU, bf16 on CUDA), "fp32", "bf16", "fp16".
enum class WeightDtype : std::uint8_t { Auto, Fp32, Bf16, Fp16 };
inline constexpr const char* kWeightDtypeChoices = "auto, bf16, fp16 or fp32";
const char* weight_dtype_name(WeightDtype dtype);
std::optional<WeightDtype> parse_weight_dtype(std::string_view name);

// --device: "cpu", "cuda" (device 0) or "cuda:N" (N of at most four digits).
struct Device {
    enum class Kind : std::uint8_t { Cpu, Cuda };
    Kind kind = Kind::Cpu;
    int index = 0;  // CUDA only
    bool is_cpu() const { return kind == Kind::Cpu; }
    bool is_cuda() const { return kind == Kind::Cuda; }
    bool operator==(const Device&) const = default;
};
inline constexpr const char* kDeviceChoices = "cpu, cuda or cuda:N";
std::optional<Device> parse_device(std::string_view name);
// The canonical spelling: "cpu" or "cuda:N".
std::string device_name(const Device& device);
// Whether a --device spelling means the CPU (checks that do not need a valid device).
bool is_cpu_device(std::string_view name);

}  // namespace l2a
