// A HuggingFace model folder's weights: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/safetensors.h"

namespace l2a {

class Checkpoint {
public:
    // Throws l2a::Error naming the folder or file: no weights file, malformed index, a shard
    // that is missing or invalid, a tensor listed in the index but absent from its shard.
    static Checkpoint open(const std::filesystem::path& model_dir);

    Checkpoint(Checkpoint&&) noexcept;
    Checkpoint& operator=(Checkpoint&&) noexcept;
    ~Checkpoint();

    bool has(std::string_view name) const;
    // Throws l2a::Error "<file>: missing tensor '<name>'" when absent.
    TensorView get(std::string_view name) const;
    // As get(), and also checks the shape: "<file>: tensor '<name>' has shape [a, b], expected
    // [c, d]".
    TensorView get(std::string_view name, const std::vector<std::int64_t>& expected_shape) const;
    // The file that holds `name` (for error messages).
    std::filesystem::path file_of(std::string_view name) const;
    std::vector<std::string> tensor_names() const;
    const std::filesystem::path& dir() const;

private:
    struct Impl;
    explicit Checkpoint(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace l2a
