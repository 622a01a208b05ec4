// A loaded Qwen2/Qwen3 or L2A model. Header free of LibTorch: the weights live behind pimpl.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

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
};

class Model {
public:
    // Reads config.json, the weights (sharded or not; every expected tensor present with the
    // right shape), and tokenizer.json when the folder has one. Weights are converted to fp32
    // for the CPU engine. Throws l2a::Error naming the file and the problem.
    static Model load(const std::filesystem::path& model_dir);

    const ModelConfig& config() const;
    const ModelSummary& summary() const;
    // nullptr when the folder has no tokenizer.json.
    const Tokenizer* tokenizer() const;

    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    explicit Model(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

}  // namespace l2a
