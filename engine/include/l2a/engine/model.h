// A loaded Qwen2/Qwen3 or L2A model. Header free of LibTorch: the weights live behind pimpl.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/tokenizer.h"

namespace l2a {

struct ModelSummary {
    std::string path;
    std::string model_type;  // config's model_type
    std::int64_t num_layers = 0;
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_heads = 0;
    std::int64_t num_kv_heads = 0;
    std::int64_t head_dim = 0;
    std::int64_t vocab_size = 0;
    std::int64_t parameter_count = 0;
    bool is_l2a = false;
    bool untrained = false;
    std::int64_t sliding_window = 0;  // 0 for plain models
    double sigmoid_temp = 1.0;
    double sigmoid_threshold = 0.5;
    std::string router_input;  // "hidden_linearproj", ...
    // Identity beyond the shape, so that a what-if on a saved profile can tell whether the folder
    // still holds the same model: 16 hex digits of FNV-1a 64 over config.json's bytes, and the
    // bytes of the weight files. "" and 0 for random models and profiles that did not record
    // them.
    std::string config_hash;
    std::int64_t weight_bytes = 0;
};

// The summary of a model of this configuration: `path` names it, `parameter_count` is the
// number of weights when known (0 when only config.json was read). Model::summary() is this
// for the loaded weights.
ModelSummary summarize_config(const ModelConfig& config, std::string path,
                              std::int64_t parameter_count = 0);

// Where a model's weights live and in which precision.
struct Placement {
    std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
    // "auto" (fp32 on the CPU, bf16 on CUDA), "fp32", "bf16" or "fp16" (WeightDtype in
    // run_choices.h). The CPU engine runs fp32 only; CUDA runs bf16 or fp16 (fp32 on CUDA for
    // tests).
    std::string dtype = "auto";
    // Weights that hold NaN or Inf (as stored, or after conversion to the dtype) are refused at
    // load, naming the tensor; true loads them anyway with a warning (warnings()).
    bool allow_nonfinite_weights = false;
    bool operator==(const Placement&) const = default;
};

class Model {
public:
    // Reads config.json, the weights (sharded or not; every expected tensor present with the
    // right shape), and tokenizer.json when the folder has one, and places the weights as asked.
    // Throws l2a::Error naming the file and the problem (out of GPU memory included).
    static Model load(const std::filesystem::path& model_dir, const Placement& placement = {});

    // A model of the given shape with random weights (seeded, deterministic for a seed on one
    // device), made directly on the device: benchmarks of real published shapes need no download.
    // Linear weights ~ N(0, 0.02), norms 1, router weights ~ N(0, 0.02).
    static Model random(const ModelConfig& config, std::uint64_t seed,
                        const Placement& placement = {});

    // The placement actually used ("auto" resolved).
    const Placement& placement() const;

    const ModelConfig& config() const;
    const ModelSummary& summary() const;
    // nullptr when the folder has no tokenizer.json.
    const Tokenizer* tokenizer() const;
    // What load() found questionable but not fatal, one line each ("model.safetensors: 12
    // tensors of layers 6-7 are not used by config.json (num_hidden_layers = 6)"), for the
    // caller to show.
    const std::vector<std::string>& warnings() const;

    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    friend Model shard_for_rank(const Model& model, int rank, int world);
    friend Model load_model_shard(const std::filesystem::path& model_dir,
                                  const Placement& placement, int rank, int world);
    friend Model random_model_shard(const ModelConfig& config, std::uint64_t seed,
                                    const Placement& placement, int rank, int world);
    explicit Model(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

}  // namespace l2a
