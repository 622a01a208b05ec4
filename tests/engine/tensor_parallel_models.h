// The models and input that test_tensor_parallel and tensor_parallel_peer both run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/model.h"
#include "l2a/engine/tensor_parallel.h"

namespace l2a::test {

// More tokens than the demo model's window (256), so local attention is windowed.
constexpr std::size_t kTensorParallelTokens = 300;

inline std::vector<std::int32_t> tensor_parallel_tokens() {
    std::vector<std::int32_t> tokens(kTensorParallelTokens);
    for (std::size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
    return tokens;
}

// The demo model's shape with 6 query and 6 KV heads and an intermediate size of 768, which 2
// and 3 ranks divide (the demo model's 4 query / 2 KV heads and 704 do not split over 3).
inline ModelConfig six_head_config(const std::filesystem::path& demo_dir) {
    ModelConfig c = load_model_config(demo_dir / "config.json");
    c.num_attention_heads = 6;
    c.num_key_value_heads = 6;
    c.intermediate_size = 768;
    return c;
}

// `name`: a model folder, or "random-six-heads:<demo folder>" for Model::random of
// six_head_config (seeded: the same weights in every process on the CPU).
inline Model tensor_parallel_model(const std::string& name) {
    const std::string prefix = "random-six-heads:";
    if (name.rfind(prefix, 0) == 0) {
        return Model::random(six_head_config(name.substr(prefix.size())), 1234);
    }
    return Model::load(name);
}

// The rank's shard of tensor_parallel_model(name), read slice by slice (load_model_shard,
// random_model_shard) as `l2a --tensor-parallel` ranks do.
inline Model tensor_parallel_shard(const std::string& name, int rank, int world) {
    const std::string prefix = "random-six-heads:";
    if (name.rfind(prefix, 0) == 0) {
        return random_model_shard(six_head_config(name.substr(prefix.size())), 1234, {}, rank,
                                  world);
    }
    return load_model_shard(name, {}, rank, world);
}

}  // namespace l2a::test
