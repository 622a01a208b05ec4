// CSV tables of a profile, RFC 4180: records end in CRLF; a field holding a comma, a quote or a
// line break is quoted, with its quotes doubled.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "export_support.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/document.h"
#include "l2a/profiler/export.h"

namespace l2a {
namespace {

using export_support::number_text;

std::string csv_field(std::string_view text) {
    if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
    std::string quoted = "\"";
    for (char c : text) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

void append_record(std::string& out, const std::vector<std::string>& fields) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ',';
        out += csv_field(fields[i]);
    }
    out += "\r\n";
}

// A time only where the run recorded one: an empty field reads as "not measured", 0 would not.
std::string seconds_text(double seconds, bool recorded) {
    return recorded ? number_text(seconds) : std::string();
}

}  // namespace

std::string profile_layers_csv(const Profile& p) {
    export_support::check_arrays(p, "csv");
    const TimelineSummary summary = summarize_timeline(p);
    const bool timed = !p.ranges.empty();
    const std::int64_t layers = p.num_layers;
    const std::int64_t without_l2a =
        layers > 0 ? p.metrics.kv_bytes_without_l2a / layers : 0;  // every layer the same

    std::string out;
    append_record(out,
                  {"layer", "global_fraction", "routed_tokens", "tokens", "pruned", "kv_bytes",
                   "kv_bytes_without_l2a", "seconds", "local_seconds", "router_seconds",
                   "global_seconds", "mlp_seconds", "kernels", "kernel_seconds", "share_of_run"});
    for (std::int64_t layer = 0; layer < layers; ++layer) {
        const auto i = static_cast<std::size_t>(layer);
        const LayerKv kv = i < p.metrics.kv.size() ? p.metrics.kv[i] : LayerKv{};
        const LayerTiming& t = summary.layers[i];
        append_record(out, {
                               std::to_string(layer),
                               number_text(export_support::global_fraction(p, layer)),
                               std::to_string(export_support::routed_tokens(p, layer)),
                               std::to_string(p.num_tokens()),
                               export_support::is_pruned(p, layer) ? "true" : "false",
                               std::to_string(kv.local_bytes + kv.global_bytes),
                               std::to_string(without_l2a),
                               seconds_text(t.seconds, timed),
                               seconds_text(t.phases[0].seconds, timed),
                               seconds_text(t.phases[1].seconds, timed),
                               seconds_text(t.phases[2].seconds, timed),
                               seconds_text(t.phases[3].seconds, timed),
                               std::to_string(t.kernels),
                               seconds_text(t.kernel_seconds, !p.kernels.empty()),
                               seconds_text(t.share, timed),
                           });
    }
    return out;
}

std::string profile_tokens_csv(const Profile& p) {
    export_support::check_arrays(p, "csv");
    const std::int64_t tokens = p.num_tokens();
    std::string out;
    append_record(out, {"position", "token_id", "byte_begin", "byte_end", "text", "nll",
                        "routed_layers", "first_routed_layer", "last_routed_layer"});
    for (std::int64_t t = 0; t < tokens; ++t) {
        const auto i = static_cast<std::size_t>(t);
        std::int64_t routed = 0, first = -1, last = -1;
        for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
            if (!p.decisions[static_cast<std::size_t>(layer * tokens + t)]) continue;
            ++routed;
            if (first < 0) first = layer;
            last = layer;
        }
        // A byte-level token may hold part of a character: its piece is shown as U+FFFD so that
        // the file stays valid UTF-8.
        std::string text;
        sanitize_utf8(std::string_view(p.document_text)
                          .substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]),
                      text);
        append_record(
            out, {std::to_string(t), std::to_string(p.token_ids[i]),
                  std::to_string(p.token_begin[i]), std::to_string(p.token_end[i]), text,
                  number_text(p.token_nll[i]), std::to_string(routed),
                  first < 0 ? "" : std::to_string(first), last < 0 ? "" : std::to_string(last)});
    }
    return out;
}

namespace {

// The routing table record by record, to `emit` in pieces of about a megabyte: a long document
// through a deep model has millions of records.
template <typename Emit>
void routing_records(const Profile& p, Emit&& emit) {
    const std::int64_t tokens = p.num_tokens(), layers = p.num_layers;
    const double tau = p.model.sigmoid_temp;
    std::string out = std::string(kRoutingCsvHeader) + "\r\n";
    char buffer[32];
    auto float_text = [&](float value) {
        if (!std::isfinite(value)) return std::string();
        const auto r = std::to_chars(buffer, buffer + sizeof buffer, value);
        return std::string(buffer, r.ptr);
    };
    for (std::int64_t t = 0; t < tokens; ++t) {
        for (std::int64_t l = 0; l < layers; ++l) {
            const auto i = static_cast<std::size_t>(l * tokens + t);
            const float z = p.router_logits[i];
            std::string probability;
            if (std::isfinite(z) && std::isfinite(tau) && tau > 0) {
                probability = number_text(1.0 / (1.0 + std::exp(-static_cast<double>(z) / tau)));
            }
            out += std::to_string(t);
            out += ',';
            out += std::to_string(l);
            out += ',';
            out += float_text(z);
            out += ',';
            out += probability;
            out += p.decisions[i] != 0 ? ",1," : ",0,";
            // Empty where the routing oracle was not run (l2a oracle).
            if (!p.distant_mass.empty()) out += float_text(p.distant_mass[i]);
            out += "\r\n";
        }
        if (out.size() >= (1u << 20)) {
            emit(out);
            out.clear();
        }
    }
    emit(out);
}

}  // namespace

std::string profile_routing_csv(const Profile& p) {
    export_support::check_arrays(p, "csv");
    std::string text;
    routing_records(p, [&](const std::string& piece) { text += piece; });
    return text;
}

CsvPaths csv_paths(const std::filesystem::path& out) {
    std::filesystem::path stem = out;
    if (stem.extension() == ".csv") stem.replace_extension();
    return {stem.string() + ".layers.csv", stem.string() + ".tokens.csv",
            stem.string() + ".routing.csv"};
}

CsvPaths export_csv(const Profile& profile, const std::filesystem::path& out) {
    const CsvPaths paths = csv_paths(out);
    // The small tables are built (and the profile checked) before any file is written: a bad
    // profile leaves no partial set. The routing table, the large one, streams to its file.
    const std::string layers = profile_layers_csv(profile);
    const std::string tokens = profile_tokens_csv(profile);
    // Nor does a table whose file name is taken by a folder.
    for (const std::filesystem::path& path : {paths.layers, paths.tokens, paths.routing}) {
        std::error_code error;
        if (std::filesystem::is_directory(path, error)) {
            fail(path.string(), "is a folder; none of the three tables was written");
        }
    }
    write_file_atomically(paths.routing, [&](std::FILE* f) {
        routing_records(profile, [&](const std::string& piece) {
            if (std::fwrite(piece.data(), 1, piece.size(), f) != piece.size()) {
                fail(paths.routing.string(), "short write");
            }
        });
    });
    write_text_atomically(paths.layers, layers);
    write_text_atomically(paths.tokens, tokens);
    return paths;
}

}  // namespace l2a
