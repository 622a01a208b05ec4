#include "l2a/engine/run_choices.h"

namespace l2a {

const char* backend_name(Backend backend) {
    switch (backend) {
        case Backend::Reference:
            return "reference";
        case Backend::Sdpa:
            return "sdpa";
        case Backend::Kernels:
            return "kernels";
    }
    return "reference";
}

std::optional<Backend> parse_backend(std::string_view name) {
    for (Backend backend : kBackends) {
        if (name == backend_name(backend)) return backend;
    }
    return std::nullopt;
}

const char* weight_dtype_name(WeightDtype dtype) {
    switch (dtype) {
        case WeightDtype::Auto:
            return "auto";
        case WeightDtype::Fp32:
            return "fp32";
        case WeightDtype::Bf16:
            return "bf16";
        case WeightDtype::Fp16:
            return "fp16";
    }
    return "auto";
}

std::optional<WeightDtype> parse_weight_dtype(std::string_view name) {
    for (WeightDtype dtype :
         {WeightDtype::Auto, WeightDtype::Fp32, WeightDtype::Bf16, WeightDtype::Fp16}) {
        if (name == weight_dtype_name(dtype)) return dtype;
    }
    return std::nullopt;
}

std::optional<Device> parse_device(std::string_view name) {
    if (name == "cpu") return Device{};
    if (name == "cuda") return Device{Device::Kind::Cuda, 0};
    constexpr std::string_view prefix = "cuda:";
    if (name.substr(0, prefix.size()) != prefix || name.size() == prefix.size() ||
        name.size() > prefix.size() + 4) {
        return std::nullopt;
    }
    int index = 0;
    for (char ch : name.substr(prefix.size())) {
        if (ch < '0' || ch > '9') return std::nullopt;
        index = index * 10 + (ch - '0');
    }
    return Device{Device::Kind::Cuda, index};
}

std::string device_name(const Device& device) {
    return device.is_cpu() ? "cpu" : "cuda:" + std::to_string(device.index);
}

bool is_cpu_device(std::string_view name) { return name == "cpu"; }

}  // namespace l2a
