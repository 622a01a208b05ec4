// Construction is a copy with additions: config.json keeps every field of the base and gains the
// L2A ones; every base tensor is written unchanged, each layer's attention tensors a second time
// under their `_global` names, the input norm a second time as `input_layernorm_global`, and a
// zero router. The output is one streamed model.safetensors.
#include "l2a/engine/construct.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/checkpoint.h"
#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"
#include "l2a/engine/tensor_names.h"

namespace l2a {
namespace {

// Files of a model folder besides config and weights that a user expects to keep.
constexpr const char* kSideFiles[] = {
    "tokenizer.json", "tokenizer_config.json",  "special_tokens_map.json", "vocab.json",
    "merges.txt",     "generation_config.json", "added_tokens.json",       "README.md"};

struct Output {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::string source;  // base tensor to copy; empty: zeros
};

// Writes a model folder atomically: `fill` writes into a temporary folder beside `out`, which
// then replaces `out` (an existing one only once the new one is complete).
template <typename Fill>
void write_model_folder(const std::filesystem::path& out, Fill&& fill) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
    fs::create_directories(parent, ec);
    if (ec) fail(parent.string(), "cannot create the folder: " + ec.message());
    const fs::path temp =
        parent / ("." + out.filename().string() + ".writing-" + std::to_string(::getpid()));
    fs::remove_all(temp, ec);
    fs::create_directories(temp, ec);
    if (ec) fail(temp.string(), "cannot create a temporary folder: " + ec.message());
    try {
        fill(temp);
        if (fs::exists(out)) {
            const fs::path old = parent / ("." + out.filename().string() + ".replaced-" +
                                           std::to_string(::getpid()));
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
}

void copy_side_files(const std::filesystem::path& from, const std::filesystem::path& to) {
    namespace fs = std::filesystem;
    for (const char* file : kSideFiles) {
        if (!fs::exists(from / file)) continue;
        std::error_code ec;
        fs::copy_file(from / file, to / file, fs::copy_options::overwrite_existing, ec);
        if (ec) fail((from / file).string(), "cannot copy: " + ec.message());
    }
}

void check_output_folder(const std::filesystem::path& base, const std::filesystem::path& out,
                         bool overwrite) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(out)) {
        if (fs::equivalent(out, base, ec)) fail(out.string(), "is the source model's own folder");
        if (!overwrite) fail(out.string(), "already exists (give --force to replace it)");
    }
}

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
    if (!(options.threshold > 0.0 && options.threshold < 1.0))
        fail("--threshold", "must be strictly between 0 and 1");
    check_output_folder(base, out, options.overwrite);

    ConstructSummary summary;
    summary.base_type = model_type_name(config.model_type);
    summary.l2a_type = "l2a_" + summary.base_type;
    summary.layers = config.num_hidden_layers;

    // config.json: the base's fields, verbatim, plus the L2A ones.
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(config_path));
    } catch (const nlohmann::json::exception& e) {
        fail(config_path.string(), describe_json_error(e.what()));
    }
    j["model_type"] = summary.l2a_type;
    j["architectures"] = {config.model_type == ModelType::Qwen3 ? "L2AQwen3ForCausalLM"
                                                                : "L2AQwen2ForCausalLM"};
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
        if (const std::string g = tensor_names::global_counterpart(name); !g.empty()) {
            outputs.push_back({g, view.info->dtype, view.info->shape, name});
            total_bytes += static_cast<std::int64_t>(view.size_bytes());
        }
    }
    for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
        namespace names = tensor_names;
        const std::string norm = names::layer_tensor(layer, names::kInputNorm);
        const TensorView view = checkpoint.get(norm, {config.hidden_size});
        norm_dtype = view.info->dtype;
        outputs.push_back({names::layer_tensor(layer, names::kGlobalInputNorm),
                           norm_dtype,
                           {config.hidden_size},
                           norm});
        outputs.push_back(
            {names::layer_tensor(layer, names::kRouter), norm_dtype, {1, config.hidden_size}, ""});
        total_bytes += 2 * static_cast<std::int64_t>(view.size_bytes());
        for (names::AttentionPart part :
             {names::AttentionPart::QProj, names::AttentionPart::KProj, names::AttentionPart::VProj,
              names::AttentionPart::OProj}) {
            const std::string t = names::attention_tensor(layer, names::AttentionSet::Local, part);
            if (!checkpoint.has(t))
                fail(checkpoint.file_of(norm).string(), "missing tensor '" + t + "'");
        }
    }

    // Write into a temporary folder beside the output, then move it into place.
    write_model_folder(out, [&](const fs::path& temp) {
        write_text_atomically(temp / "config.json", j.dump(2) + "\n");
        copy_side_files(base, temp);
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
    });
    return summary;
}

// ---- convert ---------------------------------------------------------------------------------

namespace {

float bf16_to_float(std::uint16_t h) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

std::uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
    if (std::isnan(f)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
    return static_cast<std::uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

float f16_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    float magnitude;
    if (exponent == 0) {
        magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    } else if (exponent == 31) {
        magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN()
                             : std::numeric_limits<float>::infinity();
    } else {
        magnitude =
            std::ldexp(static_cast<float>(mantissa | 0x400), static_cast<int>(exponent) - 25);
    }
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(magnitude) | sign);
}

std::uint16_t float_to_f16(float f) {  // round to nearest even, overflow to infinity
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
    const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
    const float a = std::fabs(f);
    if (std::isnan(f)) return static_cast<std::uint16_t>(sign | 0x7E00);
    if (a >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7C00);
    if (a < 6.103515625e-05f) {  // subnormal: multiples of 2^-24
        return static_cast<std::uint16_t>(
            sign | static_cast<std::uint16_t>(std::nearbyint(a * 16777216.0f)));
    }
    const std::uint32_t abits = std::bit_cast<std::uint32_t>(a);
    const std::uint32_t exponent = (abits >> 23) - 127 + 15;
    std::uint32_t mantissa = abits & 0x7FFFFF;
    std::uint32_t h = (exponent << 10) | (mantissa >> 13);
    const std::uint32_t rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: fine
    return static_cast<std::uint16_t>(sign | h);
}

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

}  // namespace

ConvertSummary convert_checkpoint(const std::filesystem::path& model,
                                  const std::filesystem::path& out, DType dtype, bool overwrite,
                                  const std::function<void(std::int64_t, std::int64_t)>& progress) {
    namespace fs = std::filesystem;
    if (!is_float_dtype(dtype)) fail("--dtype", "expected f32, bf16 or f16");
    const fs::path config_path = model / "config.json";
    if (!fs::exists(config_path))
        fail(model.string(), "not a model folder (it has no config.json)");
    (void)load_model_config(config_path);  // a readable configuration, or a clear error
    check_output_folder(model, out, overwrite);
    const Checkpoint checkpoint = Checkpoint::open(model);
    std::vector<std::string> names = checkpoint.tensor_names();
    std::sort(names.begin(), names.end());
    std::vector<TensorView> views;
    ConvertSummary summary;
    for (const std::string& name : names) {
        views.push_back(checkpoint.get(name));
        summary.bytes_before += static_cast<std::int64_t>(views.back().size_bytes());
    }
    write_model_folder(out, [&](const fs::path& temp) {
        // config.json as it was, but for the type it names for the weights.
        nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(config_path));
        config["torch_dtype"] = dtype == DType::BF16  ? "bfloat16"
                                : dtype == DType::F16 ? "float16"
                                                      : "float32";
        write_text_atomically(temp / "config.json", config.dump(2) + "\n");
        copy_side_files(model, temp);
        SafetensorsWriter writer(temp / "model.safetensors");
        writer.set_metadata("format", "pt");
        std::vector<DType> types;
        for (std::size_t i = 0; i < names.size(); ++i) {
            types.push_back(is_float_dtype(views[i].info->dtype) ? dtype : views[i].info->dtype);
            writer.declare(names[i], types.back(), views[i].info->shape);
        }
        std::vector<std::byte> buffer;
        std::int64_t done = 0;
        for (std::size_t i = 0; i < names.size(); ++i) {
            const TensorView& view = views[i];
            const DType from = view.info->dtype, to = types[i];
            if (from == to) {
                writer.write(view.data, view.size_bytes());
                summary.bytes_after += static_cast<std::int64_t>(view.size_bytes());
            } else {
                const std::size_t n = view.size_bytes() / dtype_size(from);
                buffer.resize(n * dtype_size(to));
                const auto* src = reinterpret_cast<const unsigned char*>(view.data);
                auto* dst = reinterpret_cast<unsigned char*>(buffer.data());
                for (std::size_t k = 0; k < n; ++k) {
                    float v;
                    if (from == DType::F32) {
                        std::memcpy(&v, src + 4 * k, 4);
                    } else {
                        std::uint16_t h;
                        std::memcpy(&h, src + 2 * k, 2);
                        v = from == DType::BF16 ? bf16_to_float(h) : f16_to_float(h);
                    }
                    if (to == DType::F32) {
                        std::memcpy(dst + 4 * k, &v, 4);
                    } else {
                        const std::uint16_t h =
                            to == DType::BF16 ? float_to_bf16(v) : float_to_f16(v);
                        std::memcpy(dst + 2 * k, &h, 2);
                    }
                }
                writer.write(buffer.data(), buffer.size());
                summary.bytes_after += static_cast<std::int64_t>(buffer.size());
                ++summary.tensors_converted;
            }
            done += static_cast<std::int64_t>(view.size_bytes());
            if (progress) progress(done, summary.bytes_before);
        }
        writer.finish();
        summary.tensors = static_cast<std::int64_t>(names.size());
    });
    return summary;
}

}  // namespace l2a
