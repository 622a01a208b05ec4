// The `.l2a` profile file: arrays as safetensors tensors, everything else as JSON in the
// metadata key "l2a.profile". The JSON must bring every double back bit for bit, so
// non-finite values (NaN mean NLL of a one-token run, for instance) are stored as strings: JSON
// itself has no NaN.
#include "l2a/engine/profile.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>

#include "l2a/engine/error.h"
#include "l2a/engine/safetensors.h"

namespace l2a {
namespace {

using json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "l2a.profile";

json double_to_json(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    return value;
}

// Thrown inside the decoder and turned into an l2a::Error that names the file.
struct FieldError {
    std::string message;
};

double json_to_double(const json& value, std::string_view field) {
    if (value.is_number()) return value.get<double>();
    if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
    if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
        if (text == "inf") return std::numeric_limits<double>::infinity();
        if (text == "-inf") return -std::numeric_limits<double>::infinity();
    }
    throw FieldError{std::string(field) + " is not a number"};
}

const json& field(const json& object, std::string_view name, std::string_view where) {
    if (!object.is_object()) throw FieldError{std::string(where) + " is not an object"};
    auto it = object.find(std::string(name));
    if (it == object.end()) {
        throw FieldError{"missing field '" + std::string(where) + "." + std::string(name) + "'"};
    }
    return *it;
}

template <typename T>
T get_as(const json& object, std::string_view name, std::string_view where) {
    const json& value = field(object, name, where);
    try {
        return value.get<T>();
    } catch (const json::exception&) {
        throw FieldError{"field '" + std::string(where) + "." + std::string(name) +
                         "' has the wrong type"};
    }
}

double get_double(const json& object, std::string_view name, std::string_view where) {
    return json_to_double(field(object, name, where),
                          "field '" + std::string(where) + "." + std::string(name) + "'");
}

json summary_to_json(const ModelSummary& s) {
    json j;
    j["path"] = s.path;
    j["model_type"] = s.model_type;
    j["num_layers"] = s.num_layers;
    j["hidden_size"] = s.hidden_size;
    j["intermediate_size"] = s.intermediate_size;
    j["num_heads"] = s.num_heads;
    j["num_kv_heads"] = s.num_kv_heads;
    j["head_dim"] = s.head_dim;
    j["vocab_size"] = s.vocab_size;
    j["parameter_count"] = s.parameter_count;
    j["is_l2a"] = s.is_l2a;
    j["untrained"] = s.untrained;
    j["sliding_window"] = s.sliding_window;
    j["sigmoid_temp"] = double_to_json(s.sigmoid_temp);
    j["sigmoid_threshold"] = double_to_json(s.sigmoid_threshold);
    j["router_input"] = s.router_input;
    return j;
}

ModelSummary summary_from_json(const json& j) {
    constexpr std::string_view w = "model";
    ModelSummary s;
    s.path = get_as<std::string>(j, "path", w);
    s.model_type = get_as<std::string>(j, "model_type", w);
    s.num_layers = get_as<std::int64_t>(j, "num_layers", w);
    s.hidden_size = get_as<std::int64_t>(j, "hidden_size", w);
    s.intermediate_size = get_as<std::int64_t>(j, "intermediate_size", w);
    s.num_heads = get_as<std::int64_t>(j, "num_heads", w);
    s.num_kv_heads = get_as<std::int64_t>(j, "num_kv_heads", w);
    s.head_dim = get_as<std::int64_t>(j, "head_dim", w);
    s.vocab_size = get_as<std::int64_t>(j, "vocab_size", w);
    s.parameter_count = get_as<std::int64_t>(j, "parameter_count", w);
    s.is_l2a = get_as<bool>(j, "is_l2a", w);
    s.untrained = get_as<bool>(j, "untrained", w);
    s.sliding_window = get_as<std::int64_t>(j, "sliding_window", w);
    s.sigmoid_temp = get_double(j, "sigmoid_temp", w);
    s.sigmoid_threshold = get_double(j, "sigmoid_threshold", w);
    s.router_input = get_as<std::string>(j, "router_input", w);
    return s;
}

json options_to_json(const RunOptions& o) {
    json j;
    // to_string writes the shortest text that parses back to the same fraction: lossless.
    j["routing"] = o.routing.to_string();
    j["threshold"] = o.threshold ? double_to_json(*o.threshold) : json(nullptr);
    j["prune"] = o.prune;
    j["seed"] = o.seed;
    j["max_tokens"] = o.max_tokens;
    j["chunk_size"] = o.chunk_size;
    j["device"] = o.device;
    j["backend"] = o.backend;
    j["kv_bytes_per_element"] = o.kv_bytes_per_element;
    return j;
}

RunOptions options_from_json(const json& j) {
    constexpr std::string_view w = "options";
    RunOptions o;
    try {
        o.routing = RoutingPolicy::parse(get_as<std::string>(j, "routing", w));
    } catch (const Error& e) {
        throw FieldError{std::string("field 'options.routing': ") + e.what()};
    }
    const json& threshold = field(j, "threshold", w);
    if (!threshold.is_null()) o.threshold = json_to_double(threshold, "field 'options.threshold'");
    o.prune = get_as<std::vector<int>>(j, "prune", w);
    o.seed = get_as<std::uint64_t>(j, "seed", w);
    o.max_tokens = get_as<std::int64_t>(j, "max_tokens", w);
    o.chunk_size = get_as<std::int64_t>(j, "chunk_size", w);
    o.device = get_as<std::string>(j, "device", w);
    o.backend = get_as<std::string>(j, "backend", w);
    o.kv_bytes_per_element = get_as<int>(j, "kv_bytes_per_element", w);
    return o;
}

json metrics_to_json(const RunMetrics& m) {
    json j;
    j["mean_nll"] = double_to_json(m.mean_nll);
    j["perplexity"] = double_to_json(m.perplexity);
    json fractions = json::array();
    for (double f : m.global_fraction) fractions.push_back(double_to_json(f));
    j["global_fraction"] = std::move(fractions);
    j["global_fraction_overall"] = double_to_json(m.global_fraction_overall);
    json kv = json::array();
    for (const LayerKv& layer : m.kv) {
        kv.push_back({{"local_bytes", layer.local_bytes}, {"global_bytes", layer.global_bytes}});
    }
    j["kv"] = std::move(kv);
    j["kv_bytes_total"] = m.kv_bytes_total;
    j["kv_bytes_without_l2a"] = m.kv_bytes_without_l2a;
    return j;
}

RunMetrics metrics_from_json(const json& j) {
    constexpr std::string_view w = "metrics";
    RunMetrics m;
    m.mean_nll = get_double(j, "mean_nll", w);
    m.perplexity = get_double(j, "perplexity", w);
    const json& fractions = field(j, "global_fraction", w);
    if (!fractions.is_array()) throw FieldError{"field 'metrics.global_fraction' is not an array"};
    for (const json& f : fractions) {
        m.global_fraction.push_back(json_to_double(f, "field 'metrics.global_fraction'"));
    }
    m.global_fraction_overall = get_double(j, "global_fraction_overall", w);
    const json& kv = field(j, "kv", w);
    if (!kv.is_array()) throw FieldError{"field 'metrics.kv' is not an array"};
    for (const json& layer : kv) {
        m.kv.push_back({get_as<std::int64_t>(layer, "local_bytes", "metrics.kv"),
                        get_as<std::int64_t>(layer, "global_bytes", "metrics.kv")});
    }
    m.kv_bytes_total = get_as<std::int64_t>(j, "kv_bytes_total", w);
    m.kv_bytes_without_l2a = get_as<std::int64_t>(j, "kv_bytes_without_l2a", w);
    return m;
}

json ranges_to_json(const std::vector<TimedRange>& ranges) {
    json j = json::array();
    for (const TimedRange& r : ranges) {
        j.push_back(
            {{"name", r.name}, {"begin_ns", r.begin_ns}, {"end_ns", r.end_ns}, {"depth", r.depth}});
    }
    return j;
}

std::vector<TimedRange> ranges_from_json(const json& j) {
    if (!j.is_array()) throw FieldError{"field 'ranges' is not an array"};
    std::vector<TimedRange> ranges;
    ranges.reserve(j.size());
    for (const json& r : j) {
        ranges.push_back({get_as<std::string>(r, "name", "ranges"),
                          get_as<std::int64_t>(r, "begin_ns", "ranges"),
                          get_as<std::int64_t>(r, "end_ns", "ranges"),
                          get_as<int>(r, "depth", "ranges")});
    }
    return ranges;
}

std::string profile_metadata(const Profile& p) {
    json j;
    j["format_version"] = kProfileFormatVersion;
    j["tool_version"] = p.tool_version;
    j["created_at"] = p.created_at;
    j["model"] = summary_to_json(p.model);
    j["document"] = {{"path", p.document_path},
                     {"text", p.document_text},
                     {"replaced_sequences", p.replaced_sequences},
                     {"tokens_before_truncation", p.tokens_before_truncation}};
    j["num_tokens"] = p.num_tokens();
    j["num_layers"] = p.num_layers;
    j["options"] = options_to_json(p.options);
    j["metrics"] = metrics_to_json(p.metrics);
    j["ranges"] = ranges_to_json(p.ranges);
    j["wall_seconds"] = double_to_json(p.wall_seconds);
    // The text is valid UTF-8 by construction (document.h); a path need not be, and a run
    // should not be lost over how its file name is displayed.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
    return std::as_bytes(std::span<const T>(values));
}

void check_size(const std::filesystem::path& path, std::string_view what, std::size_t size,
                std::size_t expected) {
    if (size != expected) {
        fail(path.string(), std::string(what) + " has " + std::to_string(size) +
                                " entries, expected " + std::to_string(expected));
    }
}

// Checks dtype and shape of one tensor and copies it out (the mapping need not be aligned).
template <typename T>
std::vector<T> read_tensor(const SafetensorsFile& file, std::string_view name, DType dtype,
                           const std::vector<std::int64_t>& shape) {
    const TensorInfo* info = file.find(name);
    const std::string origin = file.path().string();
    if (!info)
        fail(origin, "not a complete L2A profile: missing tensor '" + std::string(name) + "'");
    if (info->dtype != dtype) {
        fail(origin, "tensor '" + std::string(name) + "' has dtype " + dtype_name(info->dtype) +
                         ", expected " + dtype_name(dtype));
    }
    if (info->shape != shape) {
        auto show = [](const std::vector<std::int64_t>& s) {
            std::string out = "[";
            for (std::size_t i = 0; i < s.size(); ++i)
                out += (i ? ", " : "") + std::to_string(s[i]);
            return out + "]";
        };
        fail(origin, "tensor '" + std::string(name) + "' has shape " + show(info->shape) +
                         ", expected " + show(shape));
    }
    TensorView view = file.view(*info);
    std::vector<T> values(view.size_bytes() / sizeof(T));
    if (!values.empty()) std::memcpy(values.data(), view.data, values.size() * sizeof(T));
    return values;
}

// token_begin/token_end are written as I64; I32 is accepted too (smaller files from other tools).
std::vector<std::uint32_t> read_offsets(const SafetensorsFile& file, std::string_view name,
                                        std::int64_t num_tokens, std::size_t text_bytes) {
    const TensorInfo* info = file.find(name);
    const std::string origin = file.path().string();
    if (!info)
        fail(origin, "not a complete L2A profile: missing tensor '" + std::string(name) + "'");
    std::vector<std::int64_t> wide;
    if (info->dtype == DType::I32) {
        for (std::int32_t v : read_tensor<std::int32_t>(file, name, DType::I32, {num_tokens})) {
            wide.push_back(v);
        }
    } else {
        wide = read_tensor<std::int64_t>(file, name, DType::I64, {num_tokens});
    }
    std::vector<std::uint32_t> offsets(wide.size());
    for (std::size_t i = 0; i < wide.size(); ++i) {
        if (wide[i] < 0 || static_cast<std::uint64_t>(wide[i]) > text_bytes) {
            fail(origin, "tensor '" + std::string(name) + "' entry " + std::to_string(i) + " (" +
                             std::to_string(wide[i]) + ") lies outside the document text (" +
                             std::to_string(text_bytes) + " bytes)");
        }
        offsets[i] = static_cast<std::uint32_t>(wide[i]);
    }
    return offsets;
}

std::string stage_of_range(std::string_view name) {
    // "layer 7 / global" -> "global" and "layer 7" -> "layers": totals per stage across layers.
    if (name.substr(0, 6) != "layer ") return std::string(name);
    const auto slash = name.rfind(" / ");
    return slash == std::string_view::npos ? "layers" : std::string(name.substr(slash + 3));
}

}  // namespace

void save_profile(const Profile& profile, const std::filesystem::path& path) {
    const std::int64_t num_tokens = profile.num_tokens();
    const std::int64_t num_layers = profile.num_layers;
    const std::string origin = path.string();
    const auto t = static_cast<std::size_t>(num_tokens);
    const auto lt = static_cast<std::size_t>(num_layers) * t;
    if (num_layers < 0) fail(origin, "cannot save a profile with a negative layer count");
    if (profile.token_begin.size() != t || profile.token_end.size() != t) {
        fail(origin,
             "cannot save: token offsets do not match the " + std::to_string(t) + " tokens");
    }
    if (profile.router_logits.size() != lt || profile.decisions.size() != lt) {
        fail(origin, "cannot save: routing arrays do not match " + std::to_string(num_layers) +
                         " layers x " + std::to_string(t) + " tokens");
    }
    if (profile.token_nll.size() != t) {
        fail(origin, "cannot save: token_nll does not match the " + std::to_string(t) + " tokens");
    }

    std::vector<std::int64_t> begin(profile.token_begin.begin(), profile.token_begin.end());
    std::vector<std::int64_t> end(profile.token_end.begin(), profile.token_end.end());

    SafetensorsWriter writer(path);
    writer.set_metadata(kMetadataKey, profile_metadata(profile));
    writer.add("token_ids", DType::I32, {num_tokens}, bytes_of(profile.token_ids));
    writer.add("token_begin", DType::I64, {num_tokens}, bytes_of(begin));
    writer.add("token_end", DType::I64, {num_tokens}, bytes_of(end));
    writer.add("router_logits", DType::F32, {num_layers, num_tokens},
               bytes_of(profile.router_logits));
    writer.add("decisions", DType::U8, {num_layers, num_tokens}, bytes_of(profile.decisions));
    writer.add("token_nll", DType::F32, {num_tokens}, bytes_of(profile.token_nll));
    writer.finish();
}

Profile load_profile(const std::filesystem::path& path) {
    const std::string origin = path.string();
    SafetensorsFile file = SafetensorsFile::open(path);
    auto meta = file.metadata().find(kMetadataKey);
    if (meta == file.metadata().end()) {
        fail(origin, "not an L2A profile (safetensors file without 'l2a.profile' metadata)");
    }
    json j;
    try {
        j = json::parse(meta->second);
    } catch (const json::parse_error& e) {
        fail(origin, std::string("malformed profile metadata: ") + e.what());
    }

    Profile p;
    try {
        if (!j.is_object()) throw FieldError{"profile metadata is not a JSON object"};
        const json& version = field(j, "format_version", "profile");
        if (!version.is_number_integer()) throw FieldError{"format_version is not an integer"};
        const auto v = version.get<std::int64_t>();
        if (v > kProfileFormatVersion) {
            fail(origin, "profile format version " + std::to_string(v) +
                             " is newer than this l2a understands (" +
                             std::to_string(kProfileFormatVersion) + "); update l2a to open it");
        }
        if (v < 1) throw FieldError{"invalid format_version " + std::to_string(v)};

        p.tool_version = get_as<std::string>(j, "tool_version", "profile");
        p.created_at = get_as<std::string>(j, "created_at", "profile");
        p.model = summary_from_json(field(j, "model", "profile"));
        const json& doc = field(j, "document", "profile");
        p.document_path = get_as<std::string>(doc, "path", "document");
        p.document_text = get_as<std::string>(doc, "text", "document");
        p.replaced_sequences = get_as<std::size_t>(doc, "replaced_sequences", "document");
        p.tokens_before_truncation =
            get_as<std::int64_t>(doc, "tokens_before_truncation", "document");
        p.num_layers = get_as<std::int64_t>(j, "num_layers", "profile");
        p.options = options_from_json(field(j, "options", "profile"));
        p.metrics = metrics_from_json(field(j, "metrics", "profile"));
        p.ranges = ranges_from_json(field(j, "ranges", "profile"));
        p.wall_seconds = get_double(j, "wall_seconds", "profile");
    } catch (const FieldError& e) {
        fail(origin, "invalid profile metadata: " + e.message);
    }

    const TensorInfo* ids = file.find("token_ids");
    if (!ids) fail(origin, "not a complete L2A profile: missing tensor 'token_ids'");
    if (ids->shape.size() != 1) fail(origin, "tensor 'token_ids' is not one-dimensional");
    const std::int64_t num_tokens = ids->shape[0];
    const std::int64_t num_layers = p.num_layers;
    if (num_layers < 0) fail(origin, "invalid profile metadata: negative num_layers");
    const json& stated_tokens = j["num_tokens"];
    if (!stated_tokens.is_number_integer() || stated_tokens.get<std::int64_t>() != num_tokens) {
        fail(origin, "metadata num_tokens (" + stated_tokens.dump() +
                         ") does not match tensor 'token_ids' (" + std::to_string(num_tokens) +
                         ")");
    }

    p.token_ids = read_tensor<std::int32_t>(file, "token_ids", DType::I32, {num_tokens});
    p.token_begin = read_offsets(file, "token_begin", num_tokens, p.document_text.size());
    p.token_end = read_offsets(file, "token_end", num_tokens, p.document_text.size());
    for (std::size_t i = 0; i < p.token_begin.size(); ++i) {
        if (p.token_begin[i] > p.token_end[i]) {
            fail(origin, "token " + std::to_string(i) + " ends before it begins");
        }
    }
    p.router_logits =
        read_tensor<float>(file, "router_logits", DType::F32, {num_layers, num_tokens});
    p.decisions = read_tensor<std::uint8_t>(file, "decisions", DType::U8, {num_layers, num_tokens});
    p.token_nll = read_tensor<float>(file, "token_nll", DType::F32, {num_tokens});

    const auto layers = static_cast<std::size_t>(num_layers);
    if (!p.metrics.global_fraction.empty()) {
        check_size(path, "metrics.global_fraction", p.metrics.global_fraction.size(), layers);
    }
    if (!p.metrics.kv.empty()) check_size(path, "metrics.kv", p.metrics.kv.size(), layers);
    for (int layer : p.options.prune) {
        if (layer < 0 || layer >= num_layers) {
            fail(origin, "options.prune names layer " + std::to_string(layer) + " of " +
                             std::to_string(num_layers));
        }
    }
    return p;
}

std::string profile_to_json(const Profile& p, int indent) {
    const ModelSummary& m = p.model;
    const RunMetrics& metrics = p.metrics;
    // Plain JSON for other tools: non-finite numbers become null.
    auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };

    json j;
    j["format"] = "l2a-profile";
    j["format_version"] = kProfileFormatVersion;
    j["tool_version"] = p.tool_version;
    j["created_at"] = p.created_at;

    json model = summary_to_json(m);
    model["sigmoid_temp"] = number(m.sigmoid_temp);
    model["sigmoid_threshold"] = number(m.sigmoid_threshold);
    j["model"] = std::move(model);

    j["document"] = {
        {"path", p.document_path},
        {"num_tokens", p.num_tokens()},
        {"num_bytes", p.document_text.size()},
        {"replaced_sequences", p.replaced_sequences},
        {"tokens_before_truncation", std::max(p.tokens_before_truncation, p.num_tokens())},
        {"truncated", p.tokens_before_truncation > p.num_tokens()},
    };

    json run;
    run["routing"] = p.options.routing.to_string();
    run["threshold"] =
        m.is_l2a ? number(p.options.threshold.value_or(m.sigmoid_threshold)) : json(nullptr);
    run["threshold_overridden"] = p.options.threshold.has_value();
    run["prune"] = p.options.prune;
    run["seed"] = p.options.seed;
    run["max_tokens"] = p.options.max_tokens;
    run["chunk_size"] = p.options.chunk_size;
    run["device"] = p.options.device;
    run["backend"] = p.options.backend;
    run["kv_bytes_per_element"] = p.options.kv_bytes_per_element;
    j["run"] = std::move(run);

    json layers = json::array();
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        const auto i = static_cast<std::size_t>(layer);
        const LayerKv kv = i < metrics.kv.size() ? metrics.kv[i] : LayerKv{};
        const bool pruned = std::find(p.options.prune.begin(), p.options.prune.end(),
                                      static_cast<int>(layer)) != p.options.prune.end();
        layers.push_back({
            {"index", layer},
            {"global_fraction", i < metrics.global_fraction.size()
                                    ? number(metrics.global_fraction[i])
                                    : json(nullptr)},
            {"kv_bytes", kv.local_bytes + kv.global_bytes},
            {"kv_local_bytes", kv.local_bytes},
            {"kv_global_bytes", kv.global_bytes},
            {"pruned", pruned},
        });
    }
    j["layers"] = std::move(layers);

    j["metrics"] = {
        {"mean_nll", number(metrics.mean_nll)},
        {"perplexity", number(metrics.perplexity)},
        {"global_fraction", number(metrics.global_fraction_overall)},
        {"kv_bytes_total", metrics.kv_bytes_total},
        {"kv_bytes_without_l2a", metrics.kv_bytes_without_l2a},
    };

    // Totals per range name, and per stage summed over layers, in order of first appearance.
    json by_name = json::object();
    json by_stage = json::object();
    for (const TimedRange& r : p.ranges) {
        const double seconds = static_cast<double>(r.end_ns - r.begin_ns) * 1e-9;
        for (auto [table, key] :
             {std::pair{&by_name, r.name}, std::pair{&by_stage, stage_of_range(r.name)}}) {
            json& entry = (*table)[key];
            if (entry.is_null()) entry = {{"count", 0}, {"seconds", 0.0}};
            entry["count"] = entry["count"].get<std::int64_t>() + 1;
            entry["seconds"] = entry["seconds"].get<double>() + seconds;
        }
    }
    j["timing"] = {
        {"wall_seconds", number(p.wall_seconds)},
        {"tokens_per_second", p.wall_seconds > 0
                                  ? number(static_cast<double>(p.num_tokens()) / p.wall_seconds)
                                  : json(nullptr)},
        {"stages", std::move(by_stage)},
        {"ranges", std::move(by_name)},
    };
    return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace l2a
