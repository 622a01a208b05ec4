#include "l2a/engine/checkpoint.h"

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"

namespace l2a {

namespace {

using nlohmann::json;

constexpr const char* single_file_name = "model.safetensors";
constexpr const char* index_file_name = "model.safetensors.index.json";

std::string in_quotes(std::string_view name) { return "'" + std::string(name) + "'"; }

std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        text += (i == 0 ? "" : ", ") + std::to_string(shape[i]);
    }
    return text + "]";
}

// Shards are plain files of the model folder; a name that climbs out of it is a broken or
// hostile index, not a shard.
bool stays_inside_folder(const std::filesystem::path& relative) {
    if (relative.empty() || relative.is_absolute() || relative.has_root_name()) {
        return false;
    }
    for (const auto& part : relative) {
        if (part == "..") {
            return false;
        }
    }
    return true;
}

}  // namespace

struct Checkpoint::Impl {
    std::filesystem::path dir;
    // The file named in errors about tensors the checkpoint does not have.
    std::filesystem::path weights_file;
    std::vector<SafetensorsFile> files;
    std::map<std::string, std::size_t, std::less<>> file_of_tensor;

    const SafetensorsFile* holder(std::string_view name) const {
        const auto it = file_of_tensor.find(name);
        return it == file_of_tensor.end() ? nullptr : &files[it->second];
    }

    void open_single(const std::filesystem::path& path) {
        weights_file = path;
        files.push_back(SafetensorsFile::open(path));
        for (const TensorInfo& info : files.back().tensors()) {
            file_of_tensor.emplace(info.name, 0);
        }
    }

    void open_sharded(const std::filesystem::path& index_path) {
        weights_file = index_path;
        const std::string origin = index_path.string();
        json index;
        try {
            index = json::parse(read_text_file(index_path));
        } catch (const json::exception& e) {
            fail(origin, describe_json_error(e.what()));
        }
        if (!index.is_object()) {
            fail(origin, std::string("expected a JSON object, found ") + index.type_name());
        }
        if (index.contains("metadata") && !index["metadata"].is_object() &&
            !index["metadata"].is_null()) {
            fail(origin, "\"metadata\" must be an object");
        }
        const auto weight_map = index.find("weight_map");
        if (weight_map == index.end() || !weight_map->is_object()) {
            fail(origin, "missing \"weight_map\" object {tensor name: shard file}");
        }
        if (weight_map->empty()) {
            fail(origin, "\"weight_map\" lists no tensors");
        }

        std::map<std::string, std::size_t> shard_index;  // shard file name -> files[i]
        for (const auto& [tensor, shard] : weight_map->items()) {
            if (!shard.is_string()) {
                fail(origin, "weight_map: tensor " + in_quotes(tensor) +
                                 " must map to a shard file name, found " + shard.type_name());
            }
            const std::string& shard_name = shard.get_ref<const std::string&>();
            if (!stays_inside_folder(shard_name)) {
                fail(origin, "weight_map: shard " + in_quotes(shard_name) + " (for tensor " +
                                 in_quotes(tensor) + ") is not a file inside the model folder");
            }
            auto known = shard_index.find(shard_name);
            if (known == shard_index.end()) {
                const std::filesystem::path shard_path = dir / shard_name;
                std::error_code error;
                if (!std::filesystem::exists(shard_path, error)) {
                    fail(origin, "shard " + in_quotes(shard_name) + " (listed for tensor " +
                                     in_quotes(tensor) +
                                     ") does not exist: " + shard_path.string());
                }
                files.push_back(SafetensorsFile::open(shard_path));
                known = shard_index.emplace(shard_name, files.size() - 1).first;
            }
            const SafetensorsFile& file = files[known->second];
            if (file.find(tensor) == nullptr) {
                fail(origin, "tensor " + in_quotes(tensor) + " is listed in shard " +
                                 in_quotes(shard_name) + " but that file does not contain it");
            }
            file_of_tensor.emplace(tensor, known->second);
        }
    }
};

Checkpoint Checkpoint::open(const std::filesystem::path& model_dir) {
    auto impl = std::make_unique<Impl>();
    impl->dir = model_dir;
    const std::string origin = model_dir.string();
    std::error_code error;
    const auto status = std::filesystem::status(model_dir, error);
    if (!std::filesystem::exists(status)) {
        fail(origin, "model folder does not exist");
    }
    if (!std::filesystem::is_directory(status)) {
        fail(origin, "is not a folder (expected a model folder with model.safetensors)");
    }
    // HuggingFace prefers the single file when both are present; so do we.
    const auto single = model_dir / single_file_name;
    const auto index = model_dir / index_file_name;
    if (std::filesystem::exists(single, error)) {
        impl->open_single(single);
    } else if (std::filesystem::exists(index, error)) {
        impl->open_sharded(index);
    } else {
        fail(origin, "no model.safetensors or model.safetensors.index.json");
    }
    return Checkpoint(std::move(impl));
}

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

bool Checkpoint::has(std::string_view name) const { return impl_->holder(name) != nullptr; }

TensorView Checkpoint::get(std::string_view name) const {
    const SafetensorsFile* file = impl_->holder(name);
    if (file == nullptr) {
        fail(impl_->weights_file.string(), "missing tensor " + in_quotes(name));
    }
    return file->view(name);
}

TensorView Checkpoint::get(std::string_view name,
                           const std::vector<std::int64_t>& expected_shape) const {
    const TensorView view = get(name);
    if (view.info->shape != expected_shape) {
        fail(file_of(name).string(), "tensor " + in_quotes(name) + " has shape " +
                                         shape_text(view.info->shape) + ", expected " +
                                         shape_text(expected_shape));
    }
    return view;
}

std::filesystem::path Checkpoint::file_of(std::string_view name) const {
    const SafetensorsFile* file = impl_->holder(name);
    return file == nullptr ? impl_->weights_file : file->path();
}

std::vector<std::string> Checkpoint::tensor_names() const {
    std::vector<std::string> names;
    names.reserve(impl_->file_of_tensor.size());
    for (const auto& entry : impl_->file_of_tensor) {
        names.push_back(entry.first);
    }
    return names;
}

const std::filesystem::path& Checkpoint::dir() const { return impl_->dir; }

}  // namespace l2a
