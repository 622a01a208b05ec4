// Construction is a copy with additions: config.json keeps every field of the base and gains the
// L2A ones; every base tensor is written unchanged, each layer's attention tensors a second time
// under their `_global` names, the input norm a second time as `input_layernorm_global`, and a
// zero router. The output is one streamed model.safetensors.
#include "l2a/engine/construct.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>
#include <string>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/checkpoint.h"
#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"

namespace l2a {
namespace {

// Files of a model folder besides config and weights that a user expects to keep.
constexpr const char* kSideFiles[] = {"tokenizer.json",          "tokenizer_config.json",
                                      "special_tokens_map.json", "vocab.json",
                                      "merges.txt",              "generation_config.json",
                                      "added_tokens.json",       "README.md"};

// "model.layers.3.self_attn.q_proj.weight" -> "model.layers.3.self_attn.q_proj_global.weight";
// the attention tensors the global set copies (projections, their biases, QK norms).
std::string global_name(const std::string& name) {
    const std::string_view layers = "model.layers.";
    if (name.rfind(layers, 0) != 0) return {};
    std::size_t at = layers.size();
    const std::size_t digits = at;
    while (at < name.size() && name[at] >= '0' && name[at] <= '9') ++at;
    const std::string_view attn = ".self_attn.";
    if (at == digits || name.compare(at, attn.size(), attn) != 0) return {};
    at += attn.size();
    const std::string rest = name.substr(at);
    for (const char* part : {"q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"}) {
        for (const char* kind : {"weight", "bias"}) {
            if (rest == std::string(part) + "." + kind) {
                return name.substr(0, at) + part + "_global." + kind;
            }
        }
    }
    return {};
}

struct Output {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::string source;  // base tensor to copy; empty: zeros
};

}  // namespace

ConstructSummary construct_l2a(const std::filesystem::path& base, const std::filesystem::path& out,
                               const ConstructOptions& options,
                               const std::function<void(std::int64_t, std::int64_t)>& progress) {
    namespace fs = std::filesystem;
    const fs::path config_path = base / "config.json";
    if (!fs::exists(config_path)) fail(base.string(), "not a model folder (it has no config.json)");
    const ModelConfig config = load_model_config(config_path);
    if (config.is_l2a()) {
        fail(config_path.string(), std::string("is already an L2A model (model_type ") +
                                       model_type_name(config.model_type) + ")");
    }
    if (!(options.window >= 1)) fail("--window", "must be at least 1");
    if (!(options.temperature > 0.0) || !std::isfinite(options.temperature)) {
        fail("--temp", "must be a positive number");
    }
    if (!(options.threshold > 0.0 && options.threshold < 1.0)) fail("--threshold", "must be strictly between 0 and 1");
    std::error_code ec;
    if (fs::exists(out)) {
        if (fs::equivalent(out, base, ec)) fail(out.string(), "is the base model's own folder");
        if (!options.overwrite) fail(out.string(), "already exists (give --force to replace it)");
    }

    ConstructSummary summary;
    summary.base_type = model_type_name(config.model_type);
    summary.l2a_type = "l2a_" + summary.base_type;
    summary.layers = config.num_hidden_layers;

    // config.json: the base's fields, verbatim, plus the L2A ones.
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(config_path));
    } catch (const nlohmann::json::exception& e) {
        fail(config_path.string(), std::string("malformed JSON: ") + e.what());
    }
    j["model_type"] = summary.l2a_type;
    j["architectures"] = {config.model_type == ModelType::Qwen3 ? "L2AQwen3ForCausalLM" : "L2AQwen2ForCausalLM"};
    j["sliding_window"] = options.window;
    j["sigmoid_temp"] = options.temperature;
    j["sigmoid_threshold"] = options.threshold;
    j["sigmoid_linear"] = true;
    j["sig_input_type"] = "hidden_linearproj";
    j["l2a_initfrombase"] = true;

    // The tensors, in the base's order with each layer's additions after its own tensors.
    const Checkpoint checkpoint = Checkpoint::open(base);
    std::vector<std::string> names = checkpoint.tensor_names();
    std::sort(names.begin(), names.end());
    std::vector<Output> outputs;
    std::int64_t total_bytes = 0;
    DType norm_dtype = DType::F32;
    for (const std::string& name : names) {
        const TensorView view = checkpoint.get(name);
        outputs.push_back({name, view.info->dtype, view.info->shape, name});
        total_bytes += static_cast<std::int64_t>(view.size_bytes());
        if (const std::string g = global_name(name); !g.empty()) {
            outputs.push_back({g, view.info->dtype, view.info->shape, name});
            total_bytes += static_cast<std::int64_t>(view.size_bytes());
        }
    }
    for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
        const std::string prefix = "model.layers." + std::to_string(layer) + ".";
        const std::string norm = prefix + "input_layernorm.weight";
        const TensorView view = checkpoint.get(norm, {config.hidden_size});
        norm_dtype = view.info->dtype;
        outputs.push_back({prefix + "input_layernorm_global.weight", norm_dtype, {config.hidden_size}, norm});
        outputs.push_back({prefix + "self_attn.sigmoid_linear.weight", norm_dtype, {1, config.hidden_size}, ""});
        total_bytes += 2 * static_cast<std::int64_t>(view.size_bytes());
        for (const char* part : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"}) {
            const std::string t = prefix + "self_attn." + part;
            if (!checkpoint.has(t)) fail(checkpoint.file_of(norm).string(), "missing tensor '" + t + "'");
        }
    }

    // Write into a temporary folder beside the output, then move it into place.
    const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
    fs::create_directories(parent, ec);
    if (ec) fail(parent.string(), "cannot create the folder: " + ec.message());
    const fs::path temp = parent / ("." + out.filename().string() + ".construct-" + std::to_string(::getpid()));
    fs::remove_all(temp, ec);
    fs::create_directories(temp, ec);
    if (ec) fail(temp.string(), "cannot create a temporary folder: " + ec.message());
    try {
        write_text_atomically(temp / "config.json", j.dump(2) + "\n");
        for (const char* file : kSideFiles) {
            if (fs::exists(base / file)) {
                fs::copy_file(base / file, temp / file, fs::copy_options::overwrite_existing, ec);
                if (ec) fail((base / file).string(), "cannot copy: " + ec.message());
            }
        }
        SafetensorsWriter writer(temp / "model.safetensors");
        writer.set_metadata("format", "pt");
        writer.set_metadata("l2a.constructed_from", base.string());
        for (const Output& o : outputs) writer.declare(o.name, o.dtype, o.shape);
        std::int64_t done = 0;
        std::vector<std::byte> zeros;
        for (const Output& o : outputs) {
            if (o.source.empty()) {
                std::int64_t n = 1;
                for (std::int64_t d : o.shape) n *= d;
                zeros.assign(static_cast<std::size_t>(n) * dtype_size(o.dtype), std::byte{0});
                writer.write(zeros.data(), zeros.size());
                done += static_cast<std::int64_t>(zeros.size());
            } else {
                const TensorView view = checkpoint.get(o.source);
                writer.write(view.data, view.size_bytes());
                done += static_cast<std::int64_t>(view.size_bytes());
            }
            if (progress) progress(done, total_bytes);
        }
        writer.finish();
        summary.tensors_written = static_cast<std::int64_t>(outputs.size());
        summary.bytes_written = done;

        if (fs::exists(out)) {
            // --force: the old folder goes only once the new one is complete.
            const fs::path old = parent / ("." + out.filename().string() + ".replaced-" + std::to_string(::getpid()));
            fs::rename(out, old);
            fs::rename(temp, out);
            fs::remove_all(old, ec);
        } else {
            fs::rename(temp, out);
        }
    } catch (const fs::filesystem_error& e) {
        fs::remove_all(temp, ec);
        fail(out.string(), std::string("cannot write: ") + e.code().message());
    } catch (...) {
        fs::remove_all(temp, ec);
        throw;
    }
    return summary;
}

}  // namespace l2a
