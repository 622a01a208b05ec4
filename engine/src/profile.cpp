// The `.l2a` profile file: arrays as safetensors tensors, everything else as JSON in the
// metadata key "l2a.profile". The JSON must bring every double back bit for bit, so
// non-finite values (NaN mean NLL of a one-token run, for instance) are stored as strings: JSON
// itself has no NaN.
#include "l2a/engine/profile.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>

#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/oracle.h"
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
    j["config_hash"] = s.config_hash;
    j["weight_bytes"] = s.weight_bytes;
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
    // Absent before format version 4.
    if (j.contains("config_hash")) s.config_hash = get_as<std::string>(j, "config_hash", w);
    if (j.contains("weight_bytes")) {
        s.weight_bytes = get_as<std::int64_t>(j, "weight_bytes", w);
        if (s.weight_bytes < 0) throw FieldError{"negative model.weight_bytes"};
    }
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
    j["as_base"] = o.as_base;
    j["token_nll"] = o.token_nll;
    return j;
}

// Version 1 did not record as_base and token_nll: such runs had neither (their defaults).
RunOptions options_from_json(const json& j, std::int64_t version) {
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
    if (version >= 2) {
        o.as_base = get_as<bool>(j, "as_base", w);
        o.token_nll = get_as<bool>(j, "token_nll", w);
    }
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
        json range = {{"phase", phase_name(r.phase)},
                      {"layer", r.layer},
                      {"begin_ns", r.begin_ns},
                      {"end_ns", r.end_ns},
                      {"depth", r.depth}};
        if (r.phase == Phase::Other) range["name"] = r.other_name;
        if (r.rank != 0) range["rank"] = r.rank;
        j.push_back(std::move(range));
    }
    return j;
}

// Versions 1 and 2 named their ranges; this is the one place such a name is read. A name the
// engine wrote ("embed", "layer 7", "layer 7 / global", "lm_head") becomes its phase and layer;
// anything else is kept as an Other range of that name, so that the file loads losslessly.
TimedRange range_from_name(const std::string& name) {
    TimedRange r;
    if (const auto stage = parse_phase(name);
        stage && !is_layer_phase(*stage) && *stage != Phase::Other) {
        r.phase = *stage;
        return r;
    }
    constexpr std::string_view prefix = "layer ";
    if (std::string_view(name).substr(0, prefix.size()) == prefix) {
        const char* first = name.data() + prefix.size();
        const char* last = name.data() + name.size();
        std::int32_t layer = -1;
        const auto [rest, ec] = std::from_chars(first, last, layer);
        if (ec == std::errc() && layer >= 0) {
            const std::string_view tail(rest, static_cast<std::size_t>(last - rest));
            std::optional<Phase> phase;
            if (tail.empty()) {
                phase = Phase::Layer;
            } else if (tail.substr(0, 3) == " / ") {
                phase = parse_phase(tail.substr(3));
            }
            // Only a name written exactly as the engine writes it ("layer 07" is not).
            if (phase && is_layer_phase(*phase) && range_name(*phase, layer) == name) {
                r.phase = *phase;
                r.layer = layer;
                return r;
            }
        }
    }
    r.other_name = name;
    return r;
}

std::vector<TimedRange> ranges_from_json(const json& j, std::int64_t version) {
    if (!j.is_array()) throw FieldError{"field 'ranges' is not an array"};
    std::vector<TimedRange> ranges;
    ranges.reserve(j.size());
    for (const json& r : j) {
        TimedRange range;
        if (version < 3) {
            range = range_from_name(get_as<std::string>(r, "name", "ranges"));
        } else {
            const auto phase = get_as<std::string>(r, "phase", "ranges");
            const auto parsed = parse_phase(phase);
            if (!parsed) throw FieldError{"field 'ranges.phase' has unknown phase '" + phase + "'"};
            range.phase = *parsed;
            range.layer = get_as<std::int32_t>(r, "layer", "ranges");
            if (range.phase == Phase::Other) {
                range.other_name = get_as<std::string>(r, "name", "ranges");
            }
        }
        range.begin_ns = get_as<std::int64_t>(r, "begin_ns", "ranges");
        range.end_ns = get_as<std::int64_t>(r, "end_ns", "ranges");
        range.depth = get_as<int>(r, "depth", "ranges");
        // Version 6: absent for rank 0.
        if (version >= 6 && r.contains("rank")) {
            range.rank = get_as<std::int32_t>(r, "rank", "ranges");
        }
        ranges.push_back(std::move(range));
    }
    return ranges;
}

// The timeline's records are stored as rows of int64 tensors (a run may hold 10^5 kernels: far
// too many for JSON); kernel names, which repeat, as a table in the metadata.
constexpr std::int64_t kKernelColumns = 6;    // name index, stream, device, begin, end, range
constexpr std::int64_t kMemoryOpColumns = 7;  // kind, bytes, stream, device, begin, end, range

struct EncodedTimeline {
    std::vector<std::string> names;
    std::vector<std::int64_t> kernels;     // [K, kKernelColumns]
    std::vector<std::int64_t> memory_ops;  // [M, kMemoryOpColumns]
    // Tensor parallel: the rank of each kernel and memory operation; empty when all are rank 0's
    // (then the file holds no such tensors, as before they existed).
    std::vector<std::int32_t> kernel_ranks;     // [K]
    std::vector<std::int32_t> memory_op_ranks;  // [M]
};

EncodedTimeline encode_timeline(const Profile& p) {
    EncodedTimeline e;
    std::map<std::string_view, std::int64_t> index;
    e.kernels.reserve(p.kernels.size() * kKernelColumns);
    for (const KernelRecord& k : p.kernels) {
        auto [it, added] = index.try_emplace(k.name, static_cast<std::int64_t>(e.names.size()));
        if (added) e.names.push_back(k.name);
        e.kernels.insert(e.kernels.end(),
                         {it->second, k.stream_id, k.device_id, k.begin_ns, k.end_ns, k.range});
    }
    e.memory_ops.reserve(p.memory_ops.size() * kMemoryOpColumns);
    for (const MemoryOpRecord& m : p.memory_ops) {
        e.memory_ops.insert(e.memory_ops.end(),
                            {static_cast<std::int64_t>(m.kind), m.bytes, m.stream_id, m.device_id,
                             m.begin_ns, m.end_ns, m.range});
    }
    const bool ranked = std::any_of(p.kernels.begin(), p.kernels.end(),
                                    [](const auto& k) { return k.rank != 0; }) ||
                        std::any_of(p.memory_ops.begin(), p.memory_ops.end(),
                                    [](const auto& m) { return m.rank != 0; });
    if (ranked) {
        for (const KernelRecord& k : p.kernels) e.kernel_ranks.push_back(k.rank);
        for (const MemoryOpRecord& m : p.memory_ops) e.memory_op_ranks.push_back(m.rank);
    }
    return e;
}

// Checks what the file format cannot: times in order, range indices that exist. `prefix` says
// whether a save or a load found the problem.
void validate_timeline(const Profile& p, const std::string& origin, const std::string& prefix) {
    for (std::size_t i = 0; i < p.ranges.size(); ++i) {
        const TimedRange& r = p.ranges[i];
        const std::string which = "range " + std::to_string(i) + " ('" + range_name(r) + "')";
        if (r.end_ns < r.begin_ns) {
            fail(origin, prefix + which + " ends (" + std::to_string(r.end_ns) +
                             " ns) before it begins (" + std::to_string(r.begin_ns) + " ns)");
        }
        if (r.depth < 0) {
            fail(origin, prefix + which + " has negative depth " + std::to_string(r.depth));
        }
        if (static_cast<int>(r.phase) > static_cast<int>(Phase::AllReduce)) {
            fail(origin, prefix + "range " + std::to_string(i) + " has unknown phase " +
                             std::to_string(static_cast<int>(r.phase)));
        }
        if (r.rank < 0 || r.rank >= p.tensor_parallel) {
            fail(origin, prefix + which + " was recorded by rank " + std::to_string(r.rank) +
                             " of a run over " + std::to_string(p.tensor_parallel) + " process" +
                             (p.tensor_parallel == 1 ? "" : "es") + " (expected 0.." +
                             std::to_string(p.tensor_parallel - 1) + ")");
        }
        if (is_layer_phase(r.phase) ? r.layer < 0 : r.layer != -1) {
            fail(origin, prefix + which + " has phase " + phase_name(r.phase) + " and layer " +
                             std::to_string(r.layer) +
                             (is_layer_phase(r.phase) ? " (expected a layer index of 0 or more)"
                                                      : " (expected -1: not a layer phase)"));
        }
    }
    const auto ranges = static_cast<std::int64_t>(p.ranges.size());
    auto check = [&](const char* what, std::size_t i, std::int64_t begin, std::int64_t end,
                     std::int64_t range, std::int32_t rank) {
        const std::string which = std::string(what) + " " + std::to_string(i);
        if (end < begin) {
            fail(origin, prefix + which + " ends (" + std::to_string(end) +
                             " ns) before it begins (" + std::to_string(begin) + " ns)");
        }
        if (range < -1 || range >= ranges) {
            fail(origin, prefix + which + " names range " + std::to_string(range) + " of " +
                             std::to_string(ranges) + " (expected -1 or 0.." +
                             std::to_string(ranges - 1) + ")");
        }
        if (rank < 0 || rank >= p.tensor_parallel) {
            fail(origin, prefix + which + " was recorded by rank " + std::to_string(rank) +
                             " of a run over " + std::to_string(p.tensor_parallel) + " process" +
                             (p.tensor_parallel == 1 ? "" : "es") + " (expected 0.." +
                             std::to_string(p.tensor_parallel - 1) + ")");
        }
        if (range >= 0 && p.ranges[static_cast<std::size_t>(range)].rank != rank) {
            fail(origin, prefix + which + " of rank " + std::to_string(rank) + " names range " +
                             std::to_string(range) + ", which rank " +
                             std::to_string(p.ranges[static_cast<std::size_t>(range)].rank) +
                             " recorded");
        }
    };
    for (std::size_t i = 0; i < p.kernels.size(); ++i) {
        const KernelRecord& k = p.kernels[i];
        check("kernel", i, k.begin_ns, k.end_ns, k.range, k.rank);
    }
    for (std::size_t i = 0; i < p.memory_ops.size(); ++i) {
        const MemoryOpRecord& m = p.memory_ops[i];
        check("memory operation", i, m.begin_ns, m.end_ns, m.range, m.rank);
        if (m.bytes < 0) {
            fail(origin, prefix + "memory operation " + std::to_string(i) + " has " +
                             std::to_string(m.bytes) + " bytes");
        }
        if (static_cast<int>(m.kind) > static_cast<int>(MemoryOpKind::Set)) {
            fail(origin, prefix + "memory operation " + std::to_string(i) + " has unknown kind " +
                             std::to_string(static_cast<int>(m.kind)));
        }
    }
}

std::int32_t narrow_id(std::int64_t value, const std::string& origin, const std::string& what) {
    if (value < std::numeric_limits<std::int32_t>::min() ||
        value > std::numeric_limits<std::int32_t>::max()) {
        fail(origin, what + " (" + std::to_string(value) + ") is out of range");
    }
    return static_cast<std::int32_t>(value);
}

std::string profile_metadata(const Profile& p, const std::vector<std::string>& kernel_names) {
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
    j["tensor_parallel"] = p.tensor_parallel;
    j["timeline"] = {{"source", p.timeline_source}, {"kernel_names", kernel_names}};
    j["device"] = p.device;
    j["peak_device_bytes"] = p.peak_device_bytes;
    j["wall_seconds"] = double_to_json(p.wall_seconds);
    j["time_basis"] = p.time_basis;
    j["cpu_threads"] = p.cpu_threads;
    j["dtype"] = p.dtype;
    if (!p.distant_mass.empty()) j["oracle"] = {{"min_mass", double_to_json(p.oracle_min_mass)}};
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

// Totals per stage across layers: a layer's part by its phase ("global"), a whole layer as
// "layers", anything else by its name.
std::string stage_of_range(const TimedRange& r) {
    if (r.phase == Phase::Layer) return "layers";
    if (is_layer_part(r.phase)) return phase_name(r.phase);
    // Inside the parts that sum partial outputs (attention, MLP), as the parts are inside
    // "layers": one stage over every layer.
    if (r.phase == Phase::AllReduce) return "all-reduce";
    return range_name(r);
}

// The number of rows of a 2-D int64 tensor with `columns` columns.
std::int64_t table_rows(const SafetensorsFile& file, std::string_view name, std::int64_t columns) {
    const TensorInfo* info = file.find(name);
    const std::string origin = file.path().string();
    if (!info)
        fail(origin, "not a complete L2A profile: missing tensor '" + std::string(name) + "'");
    if (info->shape.size() != 2 || info->shape[1] != columns) {
        fail(origin, "tensor '" + std::string(name) + "' is not a table of " +
                         std::to_string(columns) + " columns");
    }
    return info->shape[0];
}

void read_timeline(const SafetensorsFile& file, const std::vector<std::string>& names, Profile& p) {
    const std::string origin = file.path().string();
    const std::int64_t kernels = table_rows(file, "kernels", kKernelColumns);
    const auto k =
        read_tensor<std::int64_t>(file, "kernels", DType::I64, {kernels, kKernelColumns});
    p.kernels.reserve(static_cast<std::size_t>(kernels));
    for (std::size_t row = 0; row < static_cast<std::size_t>(kernels); ++row) {
        const std::int64_t* c = k.data() + row * kKernelColumns;
        const std::string which = "kernel " + std::to_string(row);
        if (c[0] < 0 || c[0] >= static_cast<std::int64_t>(names.size())) {
            fail(origin, which + " names kernel " + std::to_string(c[0]) + " of the " +
                             std::to_string(names.size()) + " in timeline.kernel_names");
        }
        p.kernels.push_back({names[static_cast<std::size_t>(c[0])],
                             narrow_id(c[1], origin, which + " stream"),
                             narrow_id(c[2], origin, which + " device"), c[3], c[4], c[5]});
    }
    const std::int64_t ops = table_rows(file, "memory_ops", kMemoryOpColumns);
    const auto m =
        read_tensor<std::int64_t>(file, "memory_ops", DType::I64, {ops, kMemoryOpColumns});
    p.memory_ops.reserve(static_cast<std::size_t>(ops));
    for (std::size_t row = 0; row < static_cast<std::size_t>(ops); ++row) {
        const std::int64_t* c = m.data() + row * kMemoryOpColumns;
        const std::string which = "memory operation " + std::to_string(row);
        if (c[0] < 0 || c[0] > static_cast<std::int64_t>(MemoryOpKind::Set)) {
            fail(origin, which + " has unknown kind " + std::to_string(c[0]));
        }
        p.memory_ops.push_back({static_cast<MemoryOpKind>(c[0]), c[1],
                                narrow_id(c[2], origin, which + " stream"),
                                narrow_id(c[3], origin, which + " device"), c[4], c[5], c[6]});
    }
    // Tensor parallel: the rank of each record, when not all are rank 0's (optional: files of one
    // process, and those written before the tensors existed, have none).
    auto read_ranks = [&](std::string_view name, std::size_t rows, auto& records) {
        const TensorInfo* info = file.find(name);
        if (!info) return;
        const auto ranks =
            read_tensor<std::int32_t>(file, name, DType::I32, {static_cast<std::int64_t>(rows)});
        for (std::size_t i = 0; i < rows; ++i) records[i].rank = ranks[i];
    };
    // Written together: one without the other is a damaged file, not an older one.
    if ((file.find("kernel_ranks") != nullptr) != (file.find("memory_op_ranks") != nullptr)) {
        fail(origin, std::string("has ") +
                         (file.find("kernel_ranks") ? "kernel_ranks without memory_op_ranks"
                                                    : "memory_op_ranks without kernel_ranks") +
                         " (the two are written together)");
    }
    read_ranks("kernel_ranks", p.kernels.size(), p.kernels);
    read_ranks("memory_op_ranks", p.memory_ops.size(), p.memory_ops);
}

}  // namespace

const char* memory_op_kind_name(MemoryOpKind kind) {
    switch (kind) {
        case MemoryOpKind::CopyHostToDevice:
            return "memcpy HtoD";
        case MemoryOpKind::CopyDeviceToHost:
            return "memcpy DtoH";
        case MemoryOpKind::CopyDeviceToDevice:
            return "memcpy DtoD";
        case MemoryOpKind::CopyOther:
            return "memcpy other";
        case MemoryOpKind::Set:
            return "memset";
    }
    return "memory operation";
}

TimelineSummary summarize_timeline(const Profile& p) {
    TimelineSummary s;
    const std::int64_t num_layers = std::max<std::int64_t>(p.num_layers, 0);
    s.layers.resize(static_cast<std::size_t>(num_layers));
    for (std::int64_t i = 0; i < num_layers; ++i) s.layers[static_cast<std::size_t>(i)].layer = i;
    std::vector<bool> has_layer_range(s.layers.size(), false);

    // Where each range's time and kernels go: a layer (and phase), or a stage.
    struct Target {
        std::int64_t layer = -1;
        int phase = -1;
        std::size_t stage = 0;
        bool counted = true;  // false: another rank's range, or an all-reduce (inside a phase)
    };
    std::vector<Target> targets(p.ranges.size());
    std::map<std::string, std::size_t, std::less<>> stage_index;
    std::int64_t end_ns = 0;
    for (std::size_t i = 0; i < p.ranges.size(); ++i) {
        const TimedRange& r = p.ranges[i];
        // Nanoseconds until the end (exact in a double), so that sums carry no rounding noise.
        const auto seconds = static_cast<double>(r.end_ns - r.begin_ns);
        if (r.rank != 0) {
            targets[i].counted = false;
            continue;
        }
        end_ns = std::max(end_ns, r.end_ns);
        if (r.phase == Phase::AllReduce && r.layer >= 0 && r.layer < num_layers) {
            targets[i] = {r.layer, -1, 0, true};
            continue;
        }
        if (is_layer_phase(r.phase) && r.layer >= 0 && r.layer < num_layers) {
            LayerTiming& layer = s.layers[static_cast<std::size_t>(r.layer)];
            const int phase = is_layer_part(r.phase) ? static_cast<int>(r.phase) : -1;
            targets[i] = {r.layer, phase, 0, true};
            if (phase < 0) {
                layer.seconds += seconds;
                has_layer_range[static_cast<std::size_t>(r.layer)] = true;
            } else {
                layer.phases[phase].seconds += seconds;
            }
            continue;
        }
        const std::string name = range_name(r);
        auto [it, added] = stage_index.try_emplace(name, s.stages.size());
        if (added) s.stages.push_back({name, 0.0, 0, 0.0, 0.0});
        s.stages[it->second].seconds += seconds;
        targets[i].stage = it->second;
    }
    for (const KernelRecord& k : p.kernels) {
        if (k.rank != 0) continue;
        const auto seconds = static_cast<double>(k.end_ns - k.begin_ns);
        end_ns = std::max(end_ns, k.end_ns);
        ++s.kernels;
        s.kernel_seconds += seconds;
        if (k.range < 0 || k.range >= static_cast<std::int64_t>(targets.size())) {
            ++s.unattributed_kernels;
            continue;
        }
        const Target& t = targets[static_cast<std::size_t>(k.range)];
        if (!t.counted) continue;
        if (t.layer >= 0) {
            LayerTiming& layer = s.layers[static_cast<std::size_t>(t.layer)];
            ++layer.kernels;
            layer.kernel_seconds += seconds;
            if (t.phase >= 0) {
                ++layer.phases[t.phase].kernels;
                layer.phases[t.phase].kernel_seconds += seconds;
            }
        } else {
            ++s.stages[t.stage].kernels;
            s.stages[t.stage].kernel_seconds += seconds;
        }
    }
    for (const MemoryOpRecord& m : p.memory_ops) {
        if (m.rank == 0) end_ns = std::max(end_ns, m.end_ns);
    }

    for (std::size_t i = 0; i < s.layers.size(); ++i) {
        if (has_layer_range[i]) continue;
        for (const PhaseTime& phase : s.layers[i].phases) s.layers[i].seconds += phase.seconds;
    }
    constexpr double kSecond = 1e9;
    s.kernel_seconds /= kSecond;
    for (LayerTiming& layer : s.layers) {
        layer.seconds /= kSecond;
        layer.kernel_seconds /= kSecond;
        for (PhaseTime& phase : layer.phases) {
            phase.seconds /= kSecond;
            phase.kernel_seconds /= kSecond;
        }
    }
    for (StageTiming& stage : s.stages) {
        stage.seconds /= kSecond;
        stage.kernel_seconds /= kSecond;
    }
    s.run_seconds = static_cast<double>(end_ns) / kSecond;
    if (std::isfinite(p.wall_seconds)) s.run_seconds = std::max(s.run_seconds, p.wall_seconds);
    for (LayerTiming& layer : s.layers) {
        layer.share = s.run_seconds > 0 ? layer.seconds / s.run_seconds : 0.0;
    }
    for (StageTiming& stage : s.stages) {
        stage.share = s.run_seconds > 0 ? stage.seconds / s.run_seconds : 0.0;
    }
    return s;
}

namespace {

// The profile's tensors and metadata through `writer`; `origin` names the output in errors.
void write_profile(const Profile& profile, SafetensorsWriter& writer, const std::string& origin) {
    const std::int64_t num_tokens = profile.num_tokens();
    const std::int64_t num_layers = profile.num_layers;
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
    if (!profile.distant_mass.empty() && profile.distant_mass.size() != lt) {
        fail(origin, "cannot save: distant_mass does not match " + std::to_string(num_layers) +
                         " layers x " + std::to_string(t) + " tokens");
    }

    validate_timeline(profile, origin, "cannot save: ");

    std::vector<std::int64_t> begin(profile.token_begin.begin(), profile.token_begin.end());
    std::vector<std::int64_t> end(profile.token_end.begin(), profile.token_end.end());
    const EncodedTimeline timeline = encode_timeline(profile);

    writer.set_metadata(kMetadataKey, profile_metadata(profile, timeline.names));
    writer.add("token_ids", DType::I32, {num_tokens}, bytes_of(profile.token_ids));
    writer.add("token_begin", DType::I64, {num_tokens}, bytes_of(begin));
    writer.add("token_end", DType::I64, {num_tokens}, bytes_of(end));
    writer.add("router_logits", DType::F32, {num_layers, num_tokens},
               bytes_of(profile.router_logits));
    writer.add("decisions", DType::U8, {num_layers, num_tokens}, bytes_of(profile.decisions));
    writer.add("token_nll", DType::F32, {num_tokens}, bytes_of(profile.token_nll));
    if (!profile.distant_mass.empty()) {
        writer.add("distant_mass", DType::F32, {num_layers, num_tokens},
                   bytes_of(profile.distant_mass));
    }
    writer.add("kernels", DType::I64,
               {static_cast<std::int64_t>(profile.kernels.size()), kKernelColumns},
               bytes_of(timeline.kernels));
    writer.add("memory_ops", DType::I64,
               {static_cast<std::int64_t>(profile.memory_ops.size()), kMemoryOpColumns},
               bytes_of(timeline.memory_ops));
    if (!timeline.kernel_ranks.empty() || !timeline.memory_op_ranks.empty()) {
        writer.add("kernel_ranks", DType::I32, {static_cast<std::int64_t>(profile.kernels.size())},
                   bytes_of(timeline.kernel_ranks));
        writer.add("memory_op_ranks", DType::I32,
                   {static_cast<std::int64_t>(profile.memory_ops.size())},
                   bytes_of(timeline.memory_op_ranks));
    }
    writer.finish();
}

}  // namespace

void save_profile(const Profile& profile, const std::filesystem::path& path) {
    SafetensorsWriter writer(path);
    write_profile(profile, writer, path.string());
}

std::vector<std::byte> profile_to_bytes(const Profile& profile, const std::string& origin) {
    std::vector<std::byte> out;
    SafetensorsWriter writer(out, origin);
    write_profile(profile, writer, origin);
    return out;
}

namespace {

// A safetensors file starts with the 8-byte length of its JSON header, then the header's '{'.
// Anything else given as a profile (a text file, a document) is named as such, rather than by
// what its first bytes would mean as a header length.
void require_safetensors_start(const std::filesystem::path& path, const std::string& origin) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) return;  // open() says what is wrong
    std::ifstream in(path, std::ios::binary);
    if (!in.is_open()) return;  // unreadable: open() names the reason
    char start[9] = {};
    in.read(start, sizeof start);
    if (in.gcount() == 0) fail(origin, "not an .l2a profile (the file is empty)");
    if (in.gcount() < static_cast<std::streamsize>(sizeof start) || start[8] != '{') {
        fail(origin, "not an .l2a profile (no safetensors header)");
    }
}

// A profile out of an opened safetensors file; `origin` names it in errors.
Profile load_from(const SafetensorsFile& file, const std::string& origin) {
    const std::filesystem::path path = origin;
    auto meta = file.metadata().find(kMetadataKey);
    if (meta == file.metadata().end()) {
        fail(origin, "not an L2A profile (safetensors file without 'l2a.profile' metadata)");
    }
    json j;
    try {
        j = json::parse(meta->second);
    } catch (const json::exception& e) {
        fail(origin, "profile metadata: " + describe_json_error(e.what()));
    }

    Profile p;
    std::int64_t version = 0;
    std::vector<std::string> kernel_names;
    try {
        if (!j.is_object()) throw FieldError{"profile metadata is not a JSON object"};
        const json& stated_version = field(j, "format_version", "profile");
        if (!stated_version.is_number_integer()) {
            throw FieldError{"format_version is not an integer"};
        }
        const auto v = stated_version.get<std::int64_t>();
        if (v > kProfileFormatVersion) {
            fail(origin, "profile format version " + std::to_string(v) +
                             " is newer than this l2a understands (" +
                             std::to_string(kProfileFormatVersion) + "); update l2a to open it");
        }
        if (v < 1) throw FieldError{"invalid format_version " + std::to_string(v)};
        version = v;

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
        p.options = options_from_json(field(j, "options", "profile"), version);
        p.metrics = metrics_from_json(field(j, "metrics", "profile"));
        p.ranges = ranges_from_json(field(j, "ranges", "profile"), version);
        if (version >= 6) {
            const auto world = get_as<std::int64_t>(j, "tensor_parallel", "profile");
            if (world < 1 || world > kMaxTensorParallel) {
                throw FieldError{"invalid tensor_parallel " + std::to_string(world) +
                                 " (expected 1.." + std::to_string(kMaxTensorParallel) + ")"};
            }
            p.tensor_parallel = static_cast<std::int32_t>(world);
        }
        p.wall_seconds = get_double(j, "wall_seconds", "profile");
        // Absent in profiles written before they were recorded.
        if (j.contains("time_basis"))
            p.time_basis = get_as<std::string>(j, "time_basis", "profile");
        if (j.contains("cpu_threads")) {
            p.cpu_threads = get_as<std::int64_t>(j, "cpu_threads", "profile");
            if (p.cpu_threads < 0 || p.cpu_threads > 1 << 20) {
                throw FieldError{"invalid cpu_threads " + std::to_string(p.cpu_threads)};
            }
        }
        if (j.contains("dtype")) p.dtype = get_as<std::string>(j, "dtype", "profile");
        if (j.contains("oracle")) {
            p.oracle_min_mass = get_double(field(j, "oracle", "profile"), "min_mass", "oracle");
            if (!(p.oracle_min_mass >= 0.0 && p.oracle_min_mass <= 1.0)) {
                throw FieldError{"oracle.min_mass is not between 0 and 1"};
            }
        }
        if (version >= 2) {
            const json& timeline = field(j, "timeline", "profile");
            p.timeline_source = get_as<std::string>(timeline, "source", "timeline");
            kernel_names = get_as<std::vector<std::string>>(timeline, "kernel_names", "timeline");
            p.device = get_as<std::string>(j, "device", "profile");
            p.peak_device_bytes = get_as<std::int64_t>(j, "peak_device_bytes", "profile");
            if (p.peak_device_bytes < 0) throw FieldError{"negative peak_device_bytes"};
        } else {
            p.timeline_source = "host timers only: profile format version 1 has no kernel timeline";
        }
    } catch (const FieldError& e) {
        fail(origin, "invalid profile metadata: " + e.message);
    }

    const TensorInfo* ids = file.find("token_ids");
    if (!ids) fail(origin, "not a complete L2A profile: missing tensor 'token_ids'");
    if (ids->shape.size() != 1) fail(origin, "tensor 'token_ids' is not one-dimensional");
    const std::int64_t num_tokens = ids->shape[0];
    const std::int64_t num_layers = p.num_layers;
    if (num_layers < 0) fail(origin, "invalid profile metadata: negative num_layers");
    // Checked before anything is sized by them: with no tokens, the arrays hold no bytes, so
    // the tensors' sizes cannot bound the layer count.
    if (num_layers > kMaxProfileLayers) {
        fail(origin, "invalid profile metadata: num_layers = " + std::to_string(num_layers) +
                         " is more than any model has (at most " +
                         std::to_string(kMaxProfileLayers) + ")");
    }
    if (p.model.num_layers < 0 || p.model.num_layers > kMaxProfileLayers) {
        fail(origin,
             "invalid profile metadata: model.num_layers = " + std::to_string(p.model.num_layers) +
                 " is outside 0.." + std::to_string(kMaxProfileLayers));
    }
    if (p.options.kv_bytes_per_element < 1 || p.options.kv_bytes_per_element > 8) {
        fail(origin, "invalid profile metadata: options.kv_bytes_per_element = " +
                         std::to_string(p.options.kv_bytes_per_element) + " (expected 1..8)");
    }
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
    if (file.find("distant_mass") != nullptr) {
        p.distant_mass =
            read_tensor<float>(file, "distant_mass", DType::F32, {num_layers, num_tokens});
    }
    if (version >= 2) read_timeline(file, kernel_names, p);
    validate_timeline(p, origin, "");

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

}  // namespace

Profile load_profile(const std::filesystem::path& path) {
    const std::string origin = path.string();
    require_safetensors_start(path, origin);
    return load_from(SafetensorsFile::open(path), origin);
}

Profile load_profile_from_bytes(std::vector<std::byte> bytes, const std::string& origin) {
    return load_from(SafetensorsFile::from_bytes(std::move(bytes), origin), origin);
}

std::string profile_to_json(const Profile& p, int indent, JsonDetail detail) {
    const ModelSummary& m = p.model;
    const RunMetrics& metrics = p.metrics;
    const bool full = detail == JsonDetail::Full;
    // Plain JSON for other tools: non-finite numbers become null.
    auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    // A float as the shortest decimal that reads back as the same float ("0.1", not the
    // double "0.10000000149011612").
    auto float_number = [](float v) {
        if (!std::isfinite(v)) return json(nullptr);
        char buffer[32];
        const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
        double shortest = 0.0;
        std::from_chars(buffer, result.ptr, shortest);
        return json(shortest);
    };
    const std::int64_t num_tokens = p.num_tokens();
    const bool arrays_fit =
        p.num_layers >= 0 &&
        p.router_logits.size() == static_cast<std::size_t>(p.num_layers * num_tokens) &&
        p.decisions.size() == p.router_logits.size() &&
        p.token_nll.size() == static_cast<std::size_t>(num_tokens) &&
        p.token_begin.size() == p.token_nll.size() && p.token_end.size() == p.token_nll.size();
    if (full && !arrays_fit) {
        fail("json", "the profile's arrays do not match its " + std::to_string(num_tokens) +
                         " tokens and " + std::to_string(p.num_layers) + " layers");
    }

    json j;
    j["format"] = "l2a-profile";
    j["format_version"] = kProfileFormatVersion;
    j["detail"] = full ? "full" : "summary";
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
    run["as_base"] = p.options.as_base;
    run["token_nll"] = p.options.token_nll;
    run["device_name"] = p.device;
    run["dtype"] = p.dtype;
    run["cpu_threads"] = p.cpu_threads;
    run["tensor_parallel"] = p.tensor_parallel;
    run["peak_device_bytes"] = p.peak_device_bytes;
    j["run"] = std::move(run);

    const TimelineSummary summary = summarize_timeline(p);

    const std::vector<LayerOracle> oracle =
        p.distant_mass.empty() ? std::vector<LayerOracle>{}
                               : score_layers(p.distant_mass, p.router_logits, p.decisions,
                                              p.num_layers, num_tokens, p.oracle_min_mass);
    json layers = json::array();
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        const auto i = static_cast<std::size_t>(layer);
        const LayerKv kv = i < metrics.kv.size() ? metrics.kv[i] : LayerKv{};
        const bool pruned = std::find(p.options.prune.begin(), p.options.prune.end(),
                                      static_cast<int>(layer)) != p.options.prune.end();
        const LayerTiming& timing = summary.layers[i];
        json phases = json::object();
        for (Phase phase : kLayerPhases) {
            phases[phase_name(phase)] = number(timing.phases[static_cast<int>(phase)].seconds);
        }
        layers.push_back({
            {"index", layer},
            {"global_fraction", i < metrics.global_fraction.size()
                                    ? number(metrics.global_fraction[i])
                                    : json(nullptr)},
            {"kv_bytes", kv.local_bytes + kv.global_bytes},
            {"kv_local_bytes", kv.local_bytes},
            {"kv_global_bytes", kv.global_bytes},
            {"pruned", pruned},
            {"seconds", number(timing.seconds)},
            {"phase_seconds", std::move(phases)},
            {"kernels", timing.kernels},
            {"kernel_seconds", number(timing.kernel_seconds)},
            {"share_of_run", number(timing.share)},
        });
        if (!oracle.empty()) {
            const LayerOracle& o = oracle[i];
            layers.back()["oracle"] = {
                {"min_mass", number(p.oracle_min_mass)},
                {"auc", number(o.auc)},
                {"precision", number(o.precision)},
                {"recall", number(o.recall)},
                {"mean_distant_mass_routed", number(o.mean_distant_mass_routed)},
                {"mean_distant_mass_local", number(o.mean_distant_mass_local)},
                {"ratio", number(o.ratio)},
                {"ceiling_ratio", number(o.ceiling_ratio)},
                {"positives", o.positives},
                {"missed", o.missed},
            };
        }
        if (full) {
            json decisions = json::array(), logits = json::array();
            for (std::int64_t t = 0; t < num_tokens; ++t) {
                const auto at = static_cast<std::size_t>(layer * num_tokens + t);
                decisions.push_back(p.decisions[at] != 0 ? 1 : 0);
                logits.push_back(float_number(p.router_logits[at]));
            }
            layers.back()["decisions"] = std::move(decisions);
            layers.back()["router_logits"] = std::move(logits);
            if (!p.distant_mass.empty()) {
                json mass = json::array();
                for (std::int64_t t = 0; t < num_tokens; ++t) {
                    mass.push_back(float_number(
                        p.distant_mass[static_cast<std::size_t>(layer * num_tokens + t)]));
                }
                layers.back()["distant_mass"] = std::move(mass);
            }
        }
    }
    j["layers"] = std::move(layers);
    if (full) {
        // Each token's own bytes, as valid UTF-8 (a byte-level token may hold part of a
        // character: that part reads U+FFFD; byte_begin/byte_end stay exact).
        json tokens = json::array();
        for (std::int64_t t = 0; t < num_tokens; ++t) {
            const auto i = static_cast<std::size_t>(t);
            const std::size_t b = std::min<std::size_t>(p.token_begin[i], p.document_text.size());
            const std::size_t e =
                std::clamp<std::size_t>(p.token_end[i], b, p.document_text.size());
            std::string text;
            sanitize_utf8(std::string_view(p.document_text).substr(b, e - b), text);
            tokens.push_back({{"index", t},
                              {"id", p.token_ids[i]},
                              {"text", std::move(text)},
                              {"byte_begin", p.token_begin[i]},
                              {"byte_end", p.token_end[i]},
                              {"nll", float_number(p.token_nll[i])}});
        }
        j["tokens"] = std::move(tokens);
    }

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
        if (r.rank != 0) continue;  // the others' ranges ran at the same time
        const double seconds = static_cast<double>(r.end_ns - r.begin_ns) * 1e-9;
        for (auto [table, key] :
             {std::pair{&by_name, range_name(r)}, std::pair{&by_stage, stage_of_range(r)}}) {
            json& entry = (*table)[key];
            if (entry.is_null()) entry = {{"count", 0}, {"seconds", 0.0}};
            entry["count"] = entry["count"].get<std::int64_t>() + 1;
            entry["seconds"] = entry["seconds"].get<double>() + seconds;
        }
    }
    j["timing"] = {
        {"wall_seconds", number(p.wall_seconds)},
        {"time_basis", p.time_basis.empty() ? "one full run, measured" : p.time_basis},
        {"tokens_per_second", p.wall_seconds > 0
                                  ? number(static_cast<double>(p.num_tokens()) / p.wall_seconds)
                                  : json(nullptr)},
        {"stages", std::move(by_stage)},
        {"ranges", std::move(by_name)},
        {"timeline_source", p.timeline_source},
        {"kernels", summary.kernels},
        {"unattributed_kernels", summary.unattributed_kernels},
        {"kernel_seconds", number(summary.kernel_seconds)},
        // Rank 0's, as the kernels (a tensor-parallel profile holds every rank's).
        {"memory_ops", std::count_if(p.memory_ops.begin(), p.memory_ops.end(),
                                     [](const MemoryOpRecord& m) { return m.rank == 0; })},
    };
    return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace l2a
