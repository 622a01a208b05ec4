// The Profile: everything one run produced, shared by views, exporters and what-if. Stored as a
// `.l2a` file: a safetensors container whose tensors hold the arrays and whose metadata holds
// the rest as JSON (key "l2a.profile"). Loads back losslessly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_options.h"

namespace l2a {

// 6: tensor parallel: the world size, the rank of each range, and all-reduce ranges.
// 5: the routing oracle's distant mass of every token and layer (optional).
// 4: the weights' dtype and the model's identity (config.json hash, weight bytes).
// 3: ranges are typed (phase and layer) instead of named.
// 2: the kernel timeline, memory operations, the device and its peak memory, every run option.
// Versions 1 to 5 still load, as runs of one process (world size 1, every range rank 0); version
// 1 with an empty timeline; the ranges of versions 1 and 2 get their phase and layer from their
// names.
inline constexpr int kProfileFormatVersion = 6;
// The most ranks a tensor-parallel profile may claim.
inline constexpr std::int64_t kMaxTensorParallel = 4096;
// The most layers a profile may claim. Real models have at most a few hundred; a profile with
// no tokens holds no bytes per layer, so this limit is what keeps a damaged count from costing
// memory.
inline constexpr std::int64_t kMaxProfileLayers = 4096;

// One GPU kernel of the run. Times are nanoseconds since the start of the run, on the same clock
// base as the host ranges, so a kernel lies inside the range that launched it (give or take the
// launch latency).
struct KernelRecord {
    std::string name;
    std::int32_t stream_id = 0;
    std::int32_t device_id = 0;
    std::int64_t begin_ns = 0;
    std::int64_t end_ns = 0;
    std::int64_t range = -1;  // index into Profile::ranges of the range that launched it; -1: none
    // The rank whose process launched it (tensor parallel: each rank on a GPU of its own); 0 in
    // a run of one process.
    std::int32_t rank = 0;
    bool operator==(const KernelRecord&) const = default;
};

enum class MemoryOpKind : std::uint8_t {
    CopyHostToDevice,
    CopyDeviceToHost,
    CopyDeviceToDevice,
    CopyOther,  // host to host, peer to peer, arrays
    Set,
};

// "memcpy HtoD", "memcpy DtoH", "memcpy DtoD", "memcpy other", "memset".
const char* memory_op_kind_name(MemoryOpKind kind);

// One memcpy or memset on a GPU stream.
struct MemoryOpRecord {
    MemoryOpKind kind = MemoryOpKind::CopyHostToDevice;
    std::int64_t bytes = 0;
    std::int32_t stream_id = 0;
    std::int32_t device_id = 0;
    std::int64_t begin_ns = 0;  // as KernelRecord
    std::int64_t end_ns = 0;
    std::int64_t range = -1;
    std::int32_t rank = 0;  // as KernelRecord
    bool operator==(const MemoryOpRecord&) const = default;
};

struct Profile {
    ModelSummary model;

    std::string document_path;
    std::string document_text;
    std::size_t replaced_sequences = 0;         // invalid UTF-8 sequences replaced when loading
    std::int64_t tokens_before_truncation = 0;  // > num_tokens when --max-tokens cut the input

    std::vector<std::int32_t> token_ids;     // [T]
    std::vector<std::uint32_t> token_begin;  // [T] byte offsets into document_text
    std::vector<std::uint32_t> token_end;    // [T]

    std::int64_t num_layers = 0;
    std::vector<float> router_logits;     // [L, T]
    std::vector<std::uint8_t> decisions;  // [L, T]
    std::vector<float> token_nll;         // [T]
    // The routing oracle (`l2a oracle`, lens.h): the share of each token's global attention on
    // keys older than the window, mean over heads, [L, T]; empty when not computed. Scores
    // (AUC, precision, recall) are derived from it with oracle_min_mass (oracle.h).
    std::vector<float> distant_mass;
    double oracle_min_mass = 0.5;

    RunOptions options;
    RunMetrics metrics;
    // Host ranges of every rank (TimedRange::rank); the run's timing is rank 0's.
    std::vector<TimedRange> ranges;
    // Processes the run was split across (tensor parallel); 1 for a single-process run. Every
    // range's rank is below it.
    std::int32_t tensor_parallel = 1;
    // The GPU timeline (empty on the CPU, or when the tracer could not run); in a tensor-parallel
    // run every rank's (KernelRecord::rank), rank 0's first.
    std::vector<KernelRecord> kernels;
    std::vector<MemoryOpRecord> memory_ops;
    // "cupti", or "host timers only: <why>" (CPU run, CUPTI missing or owned by another tool).
    std::string timeline_source;
    std::string device;  // "cpu" or the GPU's name; "" when not recorded (v1)
    // The weights' dtype as placed ("fp32", "bf16", "fp16"); "" when not recorded (before v4).
    // A what-if on the saved profile loads the model in it.
    std::string dtype;
    std::int64_t peak_device_bytes = 0;  // GPU: peak bytes allocated during the run
    // Wall time of the run. A full run measures it (including the per-token loss pass, so it is
    // more than the time to first token); a what-if variant composes it (time_basis says so).
    double wall_seconds = 0.0;
    // How wall_seconds was obtained: "" for one full run measured end to end, else a sentence
    // (a what-if variant: "base layers 0-4 reused (1.2 s) + re-run from layer 5 (0.3 s)").
    // Times of different bases, devices, backends or thread counts are not comparable.
    std::string time_basis;
    std::int64_t cpu_threads = 0;  // host threads the run used; 0 when not recorded
    std::string created_at;        // ISO 8601 UTC
    std::string tool_version;

    std::int64_t num_tokens() const { return static_cast<std::int64_t>(token_ids.size()); }
};

// Atomic write. Throws l2a::Error naming the file.
void save_profile(const Profile& profile, const std::filesystem::path& path);
// The bytes save_profile would write, in memory (what the remote engine sends); `origin` names
// the profile in errors.
std::vector<std::byte> profile_to_bytes(const Profile& profile, const std::string& origin);
// Validates (format version, array sizes consistent with T and L, timeline records: end before
// begin, range index out of bounds, a phase and layer that do not go together); errors name the
// file. Version 1 files load with an empty timeline, timeline_source "host timers only: ..." and
// the run options they did not record at their defaults. The named ranges of version 1 and 2
// files get their phase and layer from their names (a name the engine never wrote: Other).
Profile load_profile(const std::filesystem::path& path);
// The same for the bytes of a profile file (fuzzing, tests); `origin` names it in errors.
Profile load_profile_from_bytes(std::vector<std::byte> bytes, const std::string& origin);

// Where a run's time went, per layer, from the host ranges and the kernels.
struct PhaseTime {
    double seconds = 0.0;         // host ranges of the phase (Local..Mlp) of the layer
    std::int64_t kernels = 0;     // kernels launched inside them
    double kernel_seconds = 0.0;  // their summed GPU time
};

struct LayerTiming {
    std::int64_t layer = 0;
    double seconds = 0.0;          // the Phase::Layer range (the sum of its phases if it has none)
    PhaseTime phases[kNumPhases];  // indexed by Phase (Local..Mlp), as kLayerPhases
    std::int64_t kernels = 0;      // kernels launched anywhere in the layer
    double kernel_seconds = 0.0;
    double share = 0.0;  // seconds / TimelineSummary::run_seconds
};

// Time outside the layers ("embed", "lm_head", ...), by range_name in order of appearance.
struct StageTiming {
    std::string name;
    double seconds = 0.0;
    std::int64_t kernels = 0;
    double kernel_seconds = 0.0;
    double share = 0.0;
};

struct TimelineSummary {
    // The whole run: wall_seconds, or the end of the last range or kernel if that is later.
    double run_seconds = 0.0;
    std::vector<LayerTiming> layers;  // one per model layer, in order
    std::vector<StageTiming> stages;
    std::int64_t kernels = 0;
    std::int64_t unattributed_kernels = 0;  // range -1
    double kernel_seconds = 0.0;
};

// Ranges of a layer the profile does not have ("layer 99" of a 4-layer run) count as stages.
// Only rank 0's ranges and kernels count (in a tensor-parallel run the other ranks ran the same
// layers at the same time); all-reduce ranges lie inside the layer parts they belong to and add no
// time.
TimelineSummary summarize_timeline(const Profile& profile);

// How much of a profile the JSON export holds: Full adds the per-token and per-layer arrays
// (`tokens`: index, id, text, byte_begin, byte_end, nll; each layer's `decisions` and
// `router_logits`, in token order); Summary leaves them out.
enum class JsonDetail { Full, Summary };

// The `l2a export --format json` document (model, document, run, layers, metrics, timing,
// and with Full detail the tokens). Non-finite numbers are null.
std::string profile_to_json(const Profile& profile, int indent = 2,
                            JsonDetail detail = JsonDetail::Full);

}  // namespace l2a
