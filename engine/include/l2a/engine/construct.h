// Turning a Qwen2/Qwen3 checkpoint into an L2A checkpoint, as the reference recipe does: both
// attention sets (local and global) start as copies of the base attention, the global input norm
// as a copy of the input norm, and the router at zero (every token routes globally at the
// default threshold until training teaches it otherwise).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "l2a/engine/safetensors.h"

namespace l2a {

struct ConstructOptions {
    std::int64_t window = 4095;  // sliding_window W: keys t-W+1 .. t
    double temperature = 0.1;    // sigmoid_temp tau
    double threshold = 0.5;      // sigmoid_threshold theta
    bool overwrite = false;      // replace an existing output folder
};

struct ConstructSummary {
    std::string base_type;  // "qwen3" or "qwen2"
    std::string l2a_type;   // "l2a_qwen3" or "l2a_qwen2"
    std::int64_t layers = 0;
    std::int64_t tensors_written = 0;
    std::int64_t bytes_written = 0;
};

// Writes `out` (config.json, model.safetensors, and the base's tokenizer and generation files)
// atomically: into a temporary folder beside it, renamed at the end. Streams the weights (memory
// stays small). Throws l2a::Error naming the file: not a Qwen2/Qwen3 checkpoint, already an L2A
// one, a missing or misshapen tensor, an output that exists (without `overwrite`) or is the base.
// `progress` (may be empty) gets (bytes done, bytes in all).
ConstructSummary construct_l2a(
    const std::filesystem::path& base, const std::filesystem::path& out,
    const ConstructOptions& options,
    const std::function<void(std::int64_t, std::int64_t)>& progress = {});

struct ConvertSummary {
    std::int64_t tensors = 0;
    std::int64_t tensors_converted = 0;
    std::int64_t bytes_before = 0;
    std::int64_t bytes_after = 0;
};

// Writes a copy of the model folder whose floating-point tensors are stored as `dtype` (F32,
// BF16 or F16; rounding to nearest even), e.g. to ship an fp32 training checkpoint at half the
// size. Other tensors, config.json and the tokenizer files are copied unchanged; the weights go
// into one model.safetensors. Atomic as construct_l2a; the same errors.
ConvertSummary convert_checkpoint(
    const std::filesystem::path& model, const std::filesystem::path& out, DType dtype,
    bool overwrite, const std::function<void(std::int64_t, std::int64_t)>& progress = {});

}  // namespace l2a
