#include "l2a/engine/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "l2a/engine/error.h"

namespace l2a {

namespace {

using nlohmann::json;

// Qwen3Config declares head_dim with a class default, so a qwen3 config.json without it still
// gets 128 in transformers rather than hidden_size / num_attention_heads.
constexpr std::int64_t kQwen3DefaultHeadDim = 128;
constexpr double kDefaultRopeTheta = 10000.0;  // PreTrainedConfig.default_theta
// Far above any real model (vocabularies reach ~10^6 entries, widths ~10^5), low enough that
// products of a few sizes fit in int64.
constexpr std::int64_t kMaxModelDimension = std::int64_t{1} << 24;
constexpr std::int64_t kMaxPositions = std::numeric_limits<std::int32_t>::max();

// Text from the file as it should appear in an error message: at most a few dozen bytes.
std::string clip(std::string text, std::size_t max_bytes = 40) {
    if (text.size() > max_bytes) {
        std::size_t cut = max_bytes;
        // Keep whole UTF-8 sequences so that the message stays valid text.
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        text = text.substr(0, cut) + "...";
    }
    return text;
}

std::string single_quoted(const std::string& text) { return "'" + clip(text) + "'"; }

// A JSON value as it should appear in an error message: short, and never a whole container.
std::string describe(const json& value) {
    switch (value.type()) {
        case json::value_t::object:
            return "an object";
        case json::value_t::array:
            return "an array";
        case json::value_t::null:
            return "null";
        case json::value_t::string:
            return "string \"" + clip(value.get<std::string>()) + "\"";
        case json::value_t::boolean:
            return std::string("boolean ") + (value.get<bool>() ? "true" : "false");
        default:
            return "number " + value.dump();
    }
}

std::string format_number(double value) { return json(value).dump(); }

// Reads typed fields out of one JSON object, naming `origin` and the field on every error.
// JSON null counts as absent, as None does for the HuggingFace config classes.
class FieldReader {
public:
    FieldReader(std::string_view origin, const json& object, std::string prefix = {})
        : origin_(origin), object_(object), prefix_(std::move(prefix)) {}

    [[noreturn]] void error(const std::string& message) const { fail(origin_, message); }

    std::string name(std::string_view key) const { return prefix_ + std::string(key); }

    const json* find(std::string_view key) const {
        auto it = object_.find(key);
        if (it == object_.end() || it->is_null()) {
            return nullptr;
        }
        return &*it;
    }

    // A reader for an object inside this one; its fields are named "prefix.field".
    FieldReader nested(const json& object, const std::string& path) const {
        return FieldReader(origin_, object, path + ".");
    }

    std::optional<std::int64_t> integer(std::string_view key) const {
        const json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        return integer_value(*value, name(key));
    }

    std::optional<double> number(std::string_view key) const {
        const json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_number()) {
            error(name(key) + " must be a number, got " + describe(*value));
        }
        double number = value->get<double>();
        if (!std::isfinite(number)) {
            error(name(key) + " must be a finite number, got " + value->dump());
        }
        return number;
    }

    std::optional<bool> boolean(std::string_view key) const {
        const json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_boolean()) {
            error(name(key) + " must be true or false, got " + describe(*value));
        }
        return value->get<bool>();
    }

    std::optional<std::string> string(std::string_view key) const {
        const json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_string()) {
            error(name(key) + " must be a string, got " + describe(*value));
        }
        return value->get<std::string>();
    }

    std::int64_t required_positive(std::string_view key) const {
        std::optional<std::int64_t> value = integer(key);
        if (!value) {
            error("missing required field " + name(key));
        }
        return positive(key, *value);
    }

    // Positive and small enough that products of sizes cannot overflow downstream.
    std::int64_t positive(std::string_view key, std::int64_t value,
                          std::int64_t limit = kMaxModelDimension) const {
        if (value <= 0) {
            error(name(key) + " must be positive, got " + std::to_string(value));
        }
        if (value > limit) {
            error(name(key) + " (" + std::to_string(value) + ") is larger than the limit of " +
                  std::to_string(limit));
        }
        return value;
    }

    double positive(std::string_view key, double value) const {
        if (!(value > 0.0)) {
            error(name(key) + " must be positive, got " + format_number(value));
        }
        return value;
    }

    // A token id: one integer, or the first of a list (HF allows several eos ids).
    std::optional<std::int64_t> token_id(std::string_view key) const {
        const json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        const json* first = value;
        if (value->is_array()) {
            if (value->empty()) {
                return std::nullopt;
            }
            first = &value->front();
        }
        std::int64_t id = integer_value(*first, name(key));
        if (id < 0) {
            error(name(key) + " must not be negative, got " + std::to_string(id));
        }
        return id;
    }

private:
    std::int64_t integer_value(const json& value, const std::string& field) const {
        if (value.is_number_unsigned()) {
            auto number = value.get<std::uint64_t>();
            if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                error(field + " is too large: " + value.dump());
            }
            return static_cast<std::int64_t>(number);
        }
        if (value.is_number_integer()) {
            return value.get<std::int64_t>();
        }
        error(field + " must be an integer, got " + describe(value));
    }

    std::string_view origin_;
    const json& object_;
    std::string prefix_;
};

ModelType parse_model_type(const FieldReader& root) {
    std::optional<std::string> name = root.string("model_type");
    if (!name) {
        root.error("missing required field model_type");
    }
    for (ModelType type :
         {ModelType::Qwen2, ModelType::Qwen3, ModelType::L2AQwen2, ModelType::L2AQwen3}) {
        if (*name == model_type_name(type)) {
            return type;
        }
    }
    root.error("unsupported model_type " + single_quoted(*name) +
               " (supported: qwen2, qwen3, l2a_qwen2, l2a_qwen3)");
}

void parse_head_geometry(const FieldReader& root, ModelConfig& config) {
    config.num_key_value_heads =
        root.positive("num_key_value_heads",
                      root.integer("num_key_value_heads").value_or(config.num_attention_heads));
    if (config.num_attention_heads % config.num_key_value_heads != 0) {
        root.error("num_attention_heads (" + std::to_string(config.num_attention_heads) +
                   ") is not a multiple of num_key_value_heads (" +
                   std::to_string(config.num_key_value_heads) + ")");
    }
    if (std::optional<std::int64_t> head_dim = root.integer("head_dim")) {
        config.head_dim = root.positive("head_dim", *head_dim);
    } else if (config.model_type == ModelType::Qwen3 || config.model_type == ModelType::L2AQwen3) {
        config.head_dim = kQwen3DefaultHeadDim;
    } else {
        if (config.hidden_size % config.num_attention_heads != 0) {
            root.error("hidden_size (" + std::to_string(config.hidden_size) +
                       ") is not a multiple of num_attention_heads (" +
                       std::to_string(config.num_attention_heads) + ") and there is no head_dim");
        }
        config.head_dim = config.hidden_size / config.num_attention_heads;
    }
    if (config.head_dim % 2 != 0) {
        root.error("head_dim (" + std::to_string(config.head_dim) +
                   ") must be even for rotary embeddings");
    }
}

double parse_scaling_factor(const FieldReader& rope, const std::string& type_name) {
    std::optional<double> factor = rope.number("factor");
    if (!factor) {
        rope.error("missing " + rope.name("factor") + " for rope type " + type_name);
    }
    if (*factor < 1.0) {
        rope.error(rope.name("factor") + " must be >= 1 for rope type " + type_name + ", got " +
                   format_number(*factor));
    }
    return *factor;
}

RopeScaling parse_yarn(const FieldReader& root, const FieldReader& rope, const json& dict,
                       const ModelConfig& config) {
    RopeScaling scaling;
    scaling.type = RopeScalingType::Yarn;
    // A top-level original_max_position_embeddings (Phi-3 style) overrides the dict's:
    // transformers re-standardizes the rope dict with it before computing YaRN.
    std::int64_t original = config.max_position_embeddings;
    if (std::optional<std::int64_t> top = root.integer("original_max_position_embeddings")) {
        original = root.positive("original_max_position_embeddings", *top, kMaxPositions);
    } else if (std::optional<std::int64_t> inner =
                   rope.integer("original_max_position_embeddings")) {
        original = rope.positive("original_max_position_embeddings", *inner, kMaxPositions);
    }
    scaling.original_max_position_embeddings = original;

    // An explicit null factor means "the ratio of the context lengths", as in DeepSeek-V3.
    auto factor = dict.find("factor");
    if (factor != dict.end() && factor->is_null()) {
        scaling.factor =
            static_cast<double>(config.max_position_embeddings) / static_cast<double>(original);
        if (scaling.factor < 1.0) {
            rope.error(rope.name("factor") +
                       " is null and max_position_embeddings / "
                       "original_max_position_embeddings (" +
                       format_number(scaling.factor) + ") is below 1");
        }
    } else {
        scaling.factor = parse_scaling_factor(rope, "yarn");
    }

    // HF reads these with `or`: an explicit 0 falls back to the default too.
    if (std::optional<double> beta_fast = rope.number("beta_fast"); beta_fast && *beta_fast != 0) {
        scaling.beta_fast = *beta_fast;
    }
    if (std::optional<double> beta_slow = rope.number("beta_slow"); beta_slow && *beta_slow != 0) {
        scaling.beta_slow = *beta_slow;
    }
    if (std::optional<double> attention_factor = rope.number("attention_factor")) {
        scaling.attention_factor = rope.positive("attention_factor", *attention_factor);
    }
    scaling.mscale = rope.number("mscale");
    scaling.mscale_all_dim = rope.number("mscale_all_dim");
    scaling.truncate = rope.boolean("truncate").value_or(true);
    return scaling;
}

// transformers 5 keeps RoPE settings in `rope_parameters` (rope_theta inside it); older configs
// put `rope_theta` next to a `rope_scaling` dict. Precedence follows transformers'
// RotaryEmbeddingConfigMixin: a non-empty rope_scaling wins over rope_parameters, values inside
// the dict win over top-level ones, and `rope_type` wins over the legacy `type`.
void parse_rope(const FieldReader& root, ModelConfig& config) {
    static const json kEmpty = json::object();
    const json* dict = &kEmpty;
    std::string dict_name = "rope_parameters";
    if (const json* scaling = root.find("rope_scaling")) {
        if (!scaling->is_object()) {
            root.error("rope_scaling must be an object, got " + describe(*scaling));
        }
        if (!scaling->empty()) {
            dict = scaling;
            dict_name = "rope_scaling";
        }
    }
    if (dict == &kEmpty) {
        if (const json* parameters = root.find("rope_parameters")) {
            if (!parameters->is_object()) {
                root.error("rope_parameters must be an object, got " + describe(*parameters));
            }
            dict = parameters;
        }
    }
    // Parameters nested by layer type; every Qwen layer is a "full_attention" layer.
    if (auto nested = dict->find("full_attention"); nested != dict->end()) {
        if (!nested->is_object()) {
            root.error(dict_name + ".full_attention must be an object, got " + describe(*nested));
        }
        dict = &*nested;
        dict_name += ".full_attention";
    }
    const FieldReader rope = root.nested(*dict, dict_name);

    if (std::optional<double> theta = rope.number("rope_theta")) {
        config.rope_theta = rope.positive("rope_theta", *theta);
    } else if (std::optional<double> top_theta = root.number("rope_theta")) {
        config.rope_theta = root.positive("rope_theta", *top_theta);
    } else {
        config.rope_theta = kDefaultRopeTheta;
    }
    for (const FieldReader* reader : {&root, &rope}) {
        if (std::optional<double> partial = reader->number("partial_rotary_factor");
            partial && *partial != 1.0) {
            reader->error(reader->name("partial_rotary_factor") + " " + format_number(*partial) +
                          " is not supported (Qwen models rotate the whole head)");
        }
    }

    std::string type_name = "default";
    if (std::optional<std::string> rope_type = rope.string("rope_type")) {
        type_name = *rope_type;
    } else if (std::optional<std::string> legacy_type = rope.string("type")) {
        type_name = *legacy_type;
    }
    RopeScaling scaling;
    if (type_name == "default") {
        scaling.type = RopeScalingType::None;
    } else if (type_name == "linear") {
        scaling.type = RopeScalingType::Linear;
        scaling.factor = parse_scaling_factor(rope, type_name);
    } else if (type_name == "dynamic") {
        scaling.type = RopeScalingType::Dynamic;
        scaling.factor = parse_scaling_factor(rope, type_name);
    } else if (type_name == "yarn") {
        scaling = parse_yarn(root, rope, *dict, config);
    } else {
        rope.error("unsupported rope type " + single_quoted(type_name) + " in " + dict_name +
                   " (supported: default, linear, dynamic, yarn)");
    }
    config.rope_scaling = scaling;
}

void parse_l2a(const FieldReader& root, L2AConfig& l2a) {
    if (std::optional<std::int64_t> window = root.integer("sliding_window")) {
        if (*window < 1) {
            root.error("sliding_window must be at least 1, got " + std::to_string(*window));
        }
        l2a.sliding_window = root.positive("sliding_window", *window, kMaxPositions);
    }
    if (std::optional<double> temp = root.number("sigmoid_temp")) {
        l2a.sigmoid_temp = root.positive("sigmoid_temp", *temp);
    }
    if (std::optional<double> threshold = root.number("sigmoid_threshold")) {
        if (!(*threshold > 0.0 && *threshold < 1.0)) {
            root.error("sigmoid_threshold must be strictly between 0 and 1, got " +
                       format_number(*threshold));
        }
        l2a.sigmoid_threshold = *threshold;
    }
    l2a.sigmoid_linear = root.boolean("sigmoid_linear").value_or(l2a.sigmoid_linear);
    l2a.sig_input_type = root.string("sig_input_type").value_or(l2a.sig_input_type);
    l2a.initfrombase = root.boolean("l2a_initfrombase").value_or(l2a.initfrombase);

    RouterInput projected = RouterInput::HiddenLinearProj;
    if (l2a.sig_input_type == "hidden_linearproj") {
        projected = RouterInput::HiddenLinearProj;
    } else if (l2a.sig_input_type == "hidden_firstdim") {
        projected = RouterInput::HiddenFirstDim;
    } else {
        root.error("unsupported sig_input_type " + single_quoted(l2a.sig_input_type) +
                   " (supported: hidden_linearproj, hidden_firstdim)");
    }
    l2a.router_input = l2a.sigmoid_linear ? projected : RouterInput::HiddenMean;
}

std::string parse_dtype(const FieldReader& root) {
    // transformers 5 writes "dtype", older versions "torch_dtype"; "dtype" wins when both exist.
    std::optional<std::string> dtype = root.string("dtype");
    const char* key = "dtype";
    if (!dtype) {
        dtype = root.string("torch_dtype");
        key = "torch_dtype";
    }
    if (!dtype) {
        return ModelConfig{}.torch_dtype;
    }
    if (*dtype != "bfloat16" && *dtype != "float16" && *dtype != "float32") {
        root.error(std::string("unsupported ") + key + " " + single_quoted(*dtype) +
                   " (supported: bfloat16, float16, float32)");
    }
    return *dtype;
}

}  // namespace

double decision_cut(const L2AConfig& l2a, std::optional<double> threshold) {
    const double theta = threshold.value_or(l2a.sigmoid_threshold);
    return l2a.sigmoid_temp * std::log(theta / (1.0 - theta));
}

const char* router_input_name(RouterInput input) {
    switch (input) {
        case RouterInput::HiddenLinearProj:
            return "hidden_linearproj";
        case RouterInput::HiddenFirstDim:
            return "hidden_firstdim";
        case RouterInput::HiddenMean:
            return "hidden_mean";
    }
    return "?";
}

const char* model_type_name(ModelType type) {
    switch (type) {
        case ModelType::Qwen2:
            return "qwen2";
        case ModelType::Qwen3:
            return "qwen3";
        case ModelType::L2AQwen2:
            return "l2a_qwen2";
        case ModelType::L2AQwen3:
            return "l2a_qwen3";
    }
    return "unknown";
}

ModelConfig parse_model_config(std::string_view json_text, std::string_view origin) {
    json root_json;
    try {
        root_json = json::parse(json_text.begin(), json_text.end());
    } catch (const json::exception& e) {
        // Line, column and reason; what the parser last read is clipped (it can be most of a
        // malformed file).
        fail(origin, describe_json_error(e.what()));
    }
    if (!root_json.is_object()) {
        fail(origin, "config must be a JSON object, got " + describe(root_json));
    }
    const FieldReader root(origin, root_json);

    ModelConfig config;
    config.model_type = parse_model_type(root);
    config.vocab_size = root.required_positive("vocab_size");
    config.hidden_size = root.required_positive("hidden_size");
    config.intermediate_size = root.required_positive("intermediate_size");
    config.num_hidden_layers = root.required_positive("num_hidden_layers");
    config.num_attention_heads = root.required_positive("num_attention_heads");
    parse_head_geometry(root, config);
    if (std::optional<std::int64_t> positions = root.integer("max_position_embeddings")) {
        config.max_position_embeddings =
            root.positive("max_position_embeddings", *positions, kMaxPositions);
    }
    parse_rope(root, config);
    if (std::optional<double> eps = root.number("rms_norm_eps")) {
        config.rms_norm_eps = root.positive("rms_norm_eps", *eps);
    }

    const bool qwen2_family =
        config.model_type == ModelType::Qwen2 || config.model_type == ModelType::L2AQwen2;
    // Qwen2Attention builds q/k/v with bias=True whatever the config says; Qwen3 asks the config.
    config.attention_bias = qwen2_family || root.boolean("attention_bias").value_or(false);
    config.tie_word_embeddings = root.boolean("tie_word_embeddings").value_or(false);

    std::string act = root.string("hidden_act").value_or("silu");
    if (act != "silu" && act != "swish") {
        root.error("unsupported hidden_act " + single_quoted(act) + " (supported: silu)");
    }
    config.hidden_act = "silu";
    config.torch_dtype = parse_dtype(root);
    config.bos_token_id = root.token_id("bos_token_id");
    config.eos_token_id = root.token_id("eos_token_id");
    config.untrained = root.boolean("l2a_untrained").value_or(false);

    if (config.is_l2a()) {
        parse_l2a(root, config.l2a);
    } else if (root.boolean("use_sliding_window").value_or(false)) {
        // The plain models run full attention in every layer; a sliding-window Qwen2 would
        // silently compute something else.
        root.error("use_sliding_window: true is not supported for " +
                   std::string(model_type_name(config.model_type)));
    }
    return config;
}

ModelConfig load_model_config(const std::filesystem::path& config_json) {
    std::ifstream in(config_json, std::ios::binary);
    if (!in) {
        // Said of the model folder where that is what is wrong.
        std::error_code error;
        const std::filesystem::path folder = config_json.parent_path();
        if (config_json.filename() == "config.json" && !folder.empty() &&
            !std::filesystem::exists(config_json, error)) {
            if (!std::filesystem::exists(folder, error))
                fail(folder.string(), "no such model folder");
            if (!std::filesystem::is_directory(folder, error)) {
                fail(folder.string(),
                     "not a folder (a model is a folder with config.json and weights)");
            }
            fail(folder.string(), "not a model folder (it has no config.json)");
        }
        fail(config_json.string(), "cannot open file");
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        fail(config_json.string(), "read error");
    }
    return parse_model_config(text.str(), config_json.string());
}

std::string model_config_to_json(const ModelConfig& config) {
    json out = json::object();
    out["model_type"] = model_type_name(config.model_type);
    switch (config.model_type) {
        case ModelType::Qwen2:
            out["architectures"] = json::array({"Qwen2ForCausalLM"});
            break;
        case ModelType::Qwen3:
            out["architectures"] = json::array({"Qwen3ForCausalLM"});
            break;
        default:
            break;
    }
    out["vocab_size"] = config.vocab_size;
    out["hidden_size"] = config.hidden_size;
    out["intermediate_size"] = config.intermediate_size;
    out["num_hidden_layers"] = config.num_hidden_layers;
    out["num_attention_heads"] = config.num_attention_heads;
    out["num_key_value_heads"] = config.num_key_value_heads;
    out["head_dim"] = config.head_dim;
    out["max_position_embeddings"] = config.max_position_embeddings;
    out["rms_norm_eps"] = config.rms_norm_eps;
    out["attention_bias"] = config.attention_bias;
    out["tie_word_embeddings"] = config.tie_word_embeddings;
    out["hidden_act"] = config.hidden_act;
    out["torch_dtype"] = config.torch_dtype;
    out["bos_token_id"] = config.bos_token_id ? json(*config.bos_token_id) : json(nullptr);
    out["eos_token_id"] = config.eos_token_id ? json(*config.eos_token_id) : json(nullptr);
    out["use_sliding_window"] = false;

    // The legacy spelling: transformers 4 and 5 both read it.
    out["rope_theta"] = config.rope_theta;
    const RopeScaling& rope = config.rope_scaling;
    if (rope.type == RopeScalingType::None) {
        out["rope_scaling"] = nullptr;
    } else {
        json scaling = json::object();
        scaling["factor"] = rope.factor;
        switch (rope.type) {
            case RopeScalingType::Linear:
                scaling["rope_type"] = "linear";
                break;
            case RopeScalingType::Dynamic:
                scaling["rope_type"] = "dynamic";
                break;
            default:
                scaling["rope_type"] = "yarn";
                scaling["beta_fast"] = rope.beta_fast;
                scaling["beta_slow"] = rope.beta_slow;
                if (rope.original_max_position_embeddings) {
                    scaling["original_max_position_embeddings"] =
                        *rope.original_max_position_embeddings;
                }
                if (rope.attention_factor) {
                    scaling["attention_factor"] = *rope.attention_factor;
                }
                if (rope.mscale) {
                    scaling["mscale"] = *rope.mscale;
                }
                if (rope.mscale_all_dim) {
                    scaling["mscale_all_dim"] = *rope.mscale_all_dim;
                }
                if (!rope.truncate) {
                    scaling["truncate"] = false;
                }
                break;
        }
        out["rope_scaling"] = std::move(scaling);
    }

    if (config.is_l2a()) {
        const L2AConfig& l2a = config.l2a;
        out["sliding_window"] = l2a.sliding_window;
        out["sigmoid_temp"] = l2a.sigmoid_temp;
        out["sigmoid_threshold"] = l2a.sigmoid_threshold;
        out["sigmoid_linear"] = l2a.sigmoid_linear;
        out["sig_input_type"] = l2a.sig_input_type;
        out["l2a_initfrombase"] = l2a.initfrombase;
    }
    if (config.untrained) {
        out["l2a_untrained"] = true;
    }
    return out.dump(2) + "\n";
}

}  // namespace l2a
