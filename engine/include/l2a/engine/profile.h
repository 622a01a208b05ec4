// The Profile: everything one run produced, shared by views, exporters and what-if. Stored as a
// `.l2a` file: a safetensors container whose tensors hold the arrays and whose metadata holds
// the rest as JSON (key "l2a.profile"). Loads back losslessly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_options.h"

namespace l2a {

inline constexpr int kProfileFormatVersion = 1;

struct Profile {
    ModelSummary model;

    std::string document_path;
    std::string document_text;
    std::size_t replaced_sequences = 0;   // invalid UTF-8 sequences replaced when loading
    std::int64_t tokens_before_truncation = 0;  // > num_tokens when --max-tokens cut the input

    std::vector<std::int32_t> token_ids;        // [T]
    std::vector<std::uint32_t> token_begin;     // [T] byte offsets into document_text
    std::vector<std::uint32_t> token_end;       // [T]

    std::int64_t num_layers = 0;
    std::vector<float> router_logits;           // [L, T]
    std::vector<std::uint8_t> decisions;        // [L, T]
    std::vector<float> token_nll;               // [T]

    RunOptions options;
    RunMetrics metrics;
    std::vector<TimedRange> ranges;
    double wall_seconds = 0.0;
    std::string created_at;  // ISO 8601 UTC
    std::string tool_version;

    std::int64_t num_tokens() const { return static_cast<std::int64_t>(token_ids.size()); }
};

// Atomic write. Throws l2a::Error naming the file.
void save_profile(const Profile& profile, const std::filesystem::path& path);
// Validates (format version, array sizes consistent with T and L); errors name the file.
Profile load_profile(const std::filesystem::path& path);

// The `l2a export --format json` document (model, document, run, layers, metrics, ...).
std::string profile_to_json(const Profile& profile, int indent = 2);

}  // namespace l2a
