// The HTML report: one self-contained file that opens anywhere without network access or
// scripts. Charts are inline SVG; the routing map is max-pooled and run-length encoded so that a
// 128K-token document stays a few megabytes at most.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "export_support.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/profiler/export.h"

namespace l2a {
namespace {

// Past this many bytes of text the document is shown only around its most-routed passages.
constexpr std::size_t kDocumentBudgetBytes = 40000;
constexpr std::int64_t kContextTokens = 48;  // shown on each side of a highlighted token

const char* const kPhaseColors[kNumPhases] = {"#7aa6d8", "#f2b84b", "#d9534f", "#8bbf72"};

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string fixed(double value, int digits) {
    if (!std::isfinite(value)) return "n/a";
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return buffer;
}

std::string percent(double fraction) {
    return std::isfinite(fraction) ? fixed(100.0 * fraction, 1) + "%" : "n/a";
}

std::string duration(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    if (seconds >= 1.0) return fixed(seconds, 3) + " s";
    if (seconds >= 1e-3) return fixed(seconds * 1e3, 3) + " ms";
    return fixed(seconds * 1e6, 1) + " µs";
}

std::string byte_size(std::int64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (std::abs(value) >= 1024.0 && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    return unit == 0 ? std::to_string(bytes) + " B" : fixed(value, 2) + " " + units[unit];
}

// The first character boundary at or after `offset` (a byte-level token may split one).
std::size_t char_boundary(const std::string& text, std::size_t offset) {
    while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) {
        ++offset;
    }
    return std::min(offset, text.size());
}

class Html {
public:
    void raw(std::string_view text) { out_ += text; }
    void text(std::string_view text) { out_ += escape(text); }
    void row(std::string_view label, const std::string& value) {
        out_ += "<tr><th>";
        out_ += escape(label);
        out_ += "</th><td>";
        out_ += escape(value);
        out_ += "</td></tr>\n";
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

constexpr const char* kStyle = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       background: #ffffff; margin: 24px auto; max-width: 1240px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
p.sub, p.note { color: #5a6372; margin: 4px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
table.meta th { text-align: left; font-weight: 600; padding: 2px 16px 2px 0; color: #39414f; }
table.meta td { padding: 2px 0; }
table.grid th, table.grid td { border: 1px solid #d8dde6; padding: 3px 8px; text-align: right; }
table.grid th { background: #f1f3f7; }
.columns { display: flex; flex-wrap: wrap; gap: 8px 48px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #39414f; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px;
            vertical-align: -1px; }
.doc { white-space: pre-wrap; word-wrap: break-word; font: 13px/1.6 ui-monospace, monospace;
       background: #fafbfc; border: 1px solid #d8dde6; padding: 12px; }
.doc mark { border-radius: 2px; color: inherit; }
.doc mark.h1 { background: #fde9c4; } .doc mark.h2 { background: #fbd38d; }
.doc mark.h3 { background: #f6ad55; } .doc mark.h4 { background: #ed8936; }
.doc .gap { display: block; color: #8a93a3; font-style: italic; margin: 6px 0; }
.placeholder { border: 1px dashed #b7bfcc; padding: 10px; color: #5a6372; }
)";

// ---- run metadata ------------------------------------------------------------------------------

void run_section(Html& h, const Profile& p, const TimelineSummary& summary) {
    const ModelSummary& m = p.model;
    const RunOptions& o = p.options;
    const RunMetrics& metrics = p.metrics;
    h.raw("<section id=\"run\"><h2>Run</h2><div class=\"columns\"><table class=\"meta\">\n");
    h.row("model", m.path);
    h.row("type", m.model_type + (m.untrained ? " (untrained router)" : ""));
    h.row("layers", std::to_string(m.num_layers) + " (hidden " + std::to_string(m.hidden_size) +
                        ", " + std::to_string(m.num_heads) + " heads / " +
                        std::to_string(m.num_kv_heads) + " KV heads of " +
                        std::to_string(m.head_dim) + ")");
    h.row("parameters", std::to_string(m.parameter_count));
    if (m.is_l2a) h.row("sliding window", std::to_string(m.sliding_window));
    h.row("document", p.document_path);
    std::string tokens = std::to_string(p.num_tokens());
    if (p.tokens_before_truncation > p.num_tokens()) {
        tokens += " (truncated from " + std::to_string(p.tokens_before_truncation) + ")";
    }
    h.row("tokens", tokens);
    h.row("text", std::to_string(p.document_text.size()) + " bytes" +
                      (p.replaced_sequences ? ", " + std::to_string(p.replaced_sequences) +
                                                  " invalid UTF-8 sequences replaced"
                                            : std::string()));
    h.raw("</table><table class=\"meta\">\n");
    h.row("routing", o.routing.to_string() + (o.as_base ? " (run as the base model)" : ""));
    h.row("threshold", o.threshold ? export_support::number_text(*o.threshold) + " (overridden)"
                                   : export_support::number_text(m.sigmoid_threshold));
    h.row("pruned layers", o.prune.empty() ? "none" : format_pruning_plan(o.prune));
    h.row("seed", std::to_string(o.seed));
    h.row("chunk size", std::to_string(o.chunk_size));
    h.row("device",
          o.device + (p.device.empty() || p.device == o.device ? "" : " (" + p.device + ")"));
    h.row("backend", o.backend);
    if (p.peak_device_bytes > 0) h.row("peak GPU memory", byte_size(p.peak_device_bytes));
    h.row("per-token NLL", o.token_nll ? "measured" : "not measured (last row only)");
    h.raw("</table><table class=\"meta\">\n");
    h.row("mean NLL", fixed(metrics.mean_nll, 4));
    h.row("perplexity", fixed(metrics.perplexity, 3));
    h.row("global attention", percent(metrics.global_fraction_overall) + " of token-layers");
    std::string kv = byte_size(metrics.kv_bytes_total);
    if (metrics.kv_bytes_without_l2a > 0) {
        kv += " (" +
              percent(static_cast<double>(metrics.kv_bytes_total) /
                      static_cast<double>(metrics.kv_bytes_without_l2a)) +
              " of " + byte_size(metrics.kv_bytes_without_l2a) + " without L2A)";
    }
    h.row("KV cache", kv);
    h.row("wall time", duration(p.wall_seconds));
    if (p.wall_seconds > 0) {
        h.row("throughput",
              fixed(static_cast<double>(p.num_tokens()) / p.wall_seconds, 1) + " tokens/s");
    }
    h.row("timeline", !p.timeline_source.empty() ? p.timeline_source
                      : p.ranges.empty()         ? "not recorded"
                                                 : "host timers only");
    h.row("kernels", std::to_string(summary.kernels) + " (" +
                         std::to_string(summary.unattributed_kernels) + " outside any range), " +
                         std::to_string(p.memory_ops.size()) + " memory operations");
    h.row("created", p.created_at + " by l2a " + p.tool_version);
    h.raw("</table></div></section>\n");
}

// ---- charts ------------------------------------------------------------------------------------

void sparsity_section(Html& h, const Profile& p) {
    h.raw("<section id=\"sparsity\"><h2>Global attention per layer</h2>\n");
    const std::int64_t layers = p.num_layers;
    if (layers == 0) {
        h.raw("<p class=\"note\">The model has no layers.</p></section>\n");
        return;
    }
    const double width = 1180, height = 200, left = 40, top = 10;
    const double plot_w = width - left - 10, bar = plot_w / static_cast<double>(layers);
    h.raw(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"240\" "
        "viewBox=\"0 0 1200 240\" role=\"img\" aria-label=\"share of tokens with global "
        "attention per layer\">\n");
    for (int tick = 0; tick <= 4; ++tick) {
        const double y = top + height * (1.0 - tick / 4.0);
        h.raw("<line x1=\"" + fixed(left, 1) + "\" x2=\"" + fixed(width, 1) + "\" y1=\"" +
              fixed(y, 1) + "\" y2=\"" + fixed(y, 1) + "\" stroke=\"#e3e7ee\"/>");
        h.raw("<text x=\"" + fixed(left - 6, 1) + "\" y=\"" + fixed(y + 4, 1) +
              "\" text-anchor=\"end\">" + std::to_string(tick * 25) + "%</text>\n");
    }
    const std::int64_t label_every = std::max<std::int64_t>(1, layers / 16);
    for (std::int64_t layer = 0; layer < layers; ++layer) {
        const double fraction = export_support::global_fraction(p, layer);
        const double f = std::isfinite(fraction) ? std::clamp(fraction, 0.0, 1.0) : 0.0;
        const bool pruned = export_support::is_pruned(p, layer);
        const double x = left + bar * static_cast<double>(layer);
        const std::string title = "layer " + std::to_string(layer) + ": " + percent(fraction) +
                                  " of tokens global" + (pruned ? " (pruned)" : "");
        if (pruned) {
            h.raw("<rect x=\"" + fixed(x + bar * 0.1, 2) + "\" y=\"" + fixed(top, 1) +
                  "\" width=\"" + fixed(bar * 0.8, 2) + "\" height=\"" + fixed(height, 1) +
                  "\" fill=\"#eceff4\"><title>" + escape(title) + "</title></rect>");
        }
        h.raw("<rect x=\"" + fixed(x + bar * 0.1, 2) + "\" y=\"" +
              fixed(top + height * (1.0 - f), 2) + "\" width=\"" + fixed(bar * 0.8, 2) +
              "\" height=\"" + fixed(height * f, 2) + "\" fill=\"#3b6fb6\"><title>" +
              escape(title) + "</title></rect>\n");
        if (layer % label_every == 0) {
            h.raw("<text x=\"" + fixed(x + bar / 2, 2) + "\" y=\"" + fixed(top + height + 16, 1) +
                  "\" text-anchor=\"middle\">" + std::to_string(layer) + (pruned ? "P" : "") +
                  "</text>");
        }
    }
    h.raw("<text x=\"" + fixed(left + plot_w / 2, 1) +
          "\" y=\"236\" text-anchor=\"middle\">layer (P: pruned)</text>\n</svg>\n");
    h.raw(
        "<p class=\"note\">Share of tokens that ran global attention in each layer; grey: a "
        "pruned layer.</p></section>\n");
}

void routing_map_section(Html& h, const Profile& p) {
    h.raw("<section id=\"routing-map\"><h2>Routing map</h2>\n");
    const std::int64_t tokens = p.num_tokens(), layers = p.num_layers;
    if (tokens == 0 || layers == 0) {
        h.raw("<p class=\"note\">No tokens or layers to show.</p></section>\n");
        return;
    }
    const std::int64_t columns = std::min<std::int64_t>(tokens, kHtmlMapColumns);
    const std::int64_t rows = std::min<std::int64_t>(layers, kHtmlMapRows);
    const double cell_h = std::clamp(480.0 / static_cast<double>(rows), 4.0, 16.0);
    const double map_h = cell_h * static_cast<double>(rows);
    h.raw("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"" +
          fixed(map_h + 30, 0) + "\" viewBox=\"0 0 1200 " + fixed(map_h + 30, 0) +
          "\" role=\"img\" aria-label=\"token by layer routing map\" "
          "shape-rendering=\"crispEdges\">\n");
    const double left = 40, plot_w = 1150, cell_w = plot_w / static_cast<double>(columns);
    h.raw("<rect x=\"" + fixed(left, 0) + "\" y=\"0\" width=\"" + fixed(plot_w, 0) +
          "\" height=\"" + fixed(map_h, 2) + "\" fill=\"#f1f3f7\"/>\n");
    // Each cell covers a block of tokens and layers. Any routed token makes it coloured (max
    // pooling); the routed share sets its shade, in 8 steps so that runs of cells merge.
    for (std::int64_t row = 0; row < rows; ++row) {
        const std::int64_t l0 = row * layers / rows, l1 = (row + 1) * layers / rows;
        std::vector<int> level(static_cast<std::size_t>(columns), 0);
        for (std::int64_t col = 0; col < columns; ++col) {
            const std::int64_t t0 = col * tokens / columns, t1 = (col + 1) * tokens / columns;
            std::int64_t routed = 0;
            for (std::int64_t l = l0; l < l1; ++l) {
                const std::uint8_t* d = p.decisions.data() + l * tokens;
                for (std::int64_t t = t0; t < t1; ++t) routed += d[t] != 0;
            }
            if (routed == 0) continue;
            const double share =
                static_cast<double>(routed) / static_cast<double>((l1 - l0) * (t1 - t0));
            level[static_cast<std::size_t>(col)] = 1 + static_cast<int>(std::floor(share * 7.0));
        }
        const double y = cell_h * static_cast<double>(row);
        for (std::int64_t col = 0; col < columns;) {
            const int v = level[static_cast<std::size_t>(col)];
            std::int64_t end = col + 1;
            while (end < columns && level[static_cast<std::size_t>(end)] == v) ++end;
            if (v > 0) {
                h.raw("<rect x=\"" + fixed(left + cell_w * static_cast<double>(col), 2) +
                      "\" y=\"" + fixed(y, 2) + "\" width=\"" +
                      fixed(cell_w * static_cast<double>(end - col), 2) + "\" height=\"" +
                      fixed(cell_h, 2) + "\" fill=\"#c0392b\" fill-opacity=\"" +
                      fixed(0.3 + 0.7 * (v - 1) / 7.0, 2) + "\"/>");
            }
            col = end;
        }
        if (rows <= 32 || row % 4 == 0) {
            h.raw("<text x=\"" + fixed(left - 6, 0) + "\" y=\"" + fixed(y + cell_h / 2 + 4, 2) +
                  "\" text-anchor=\"end\">" + std::to_string(l0) + "</text>");
        }
        h.raw("\n");
    }
    h.raw("<text x=\"" + fixed(left, 0) + "\" y=\"" + fixed(map_h + 18, 1) +
          "\">token 0</text><text x=\"" + fixed(left + plot_w, 0) + "\" y=\"" +
          fixed(map_h + 18, 1) + "\" text-anchor=\"end\">token " + std::to_string(tokens - 1) +
          "</text>\n</svg>\n");
    std::string note =
        "Rows: layers (top: layer 0); columns: tokens. Red: tokens that ran global "
        "attention, darker where more of the cell did.";
    if (columns < tokens || rows < layers) {
        note += " Downsampled to " + std::to_string(columns) + " x " + std::to_string(rows) +
                " cells of up to " + std::to_string((tokens + columns - 1) / columns) +
                " tokens x " + std::to_string((layers + rows - 1) / rows) +
                " layers; a cell with any routed token is coloured.";
    }
    h.raw("<p class=\"note\">" + escape(note) + "</p></section>\n");
}

void timing_section(Html& h, const Profile& p, const TimelineSummary& s) {
    h.raw("<section id=\"timing\"><h2>Time per layer and phase</h2>\n");
    double most = 0.0;
    for (const LayerTiming& layer : s.layers) {
        double stacked = 0.0;
        for (const PhaseTime& phase : layer.phases) stacked += phase.seconds;
        most = std::max({most, stacked, layer.seconds});
    }
    if (p.ranges.empty() || most <= 0.0 || s.layers.empty()) {
        h.raw("<p class=\"note\">This run recorded no layer timings.</p></section>\n");
        return;
    }
    const double left = 80, top = 10, height = 200, plot_w = 1110;
    const double bar = plot_w / static_cast<double>(s.layers.size());
    h.raw(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"240\" "
        "viewBox=\"0 0 1200 240\" role=\"img\" aria-label=\"time per layer and phase\">\n");
    for (int tick = 0; tick <= 4; ++tick) {
        const double y = top + height * (1.0 - tick / 4.0);
        h.raw("<line x1=\"" + fixed(left, 0) + "\" x2=\"1190\" y1=\"" + fixed(y, 1) + "\" y2=\"" +
              fixed(y, 1) + "\" stroke=\"#e3e7ee\"/><text x=\"" + fixed(left - 6, 0) + "\" y=\"" +
              fixed(y + 4, 1) + "\" text-anchor=\"end\">" + escape(duration(most * tick / 4.0)) +
              "</text>\n");
    }
    const std::size_t label_every = std::max<std::size_t>(1, s.layers.size() / 16);
    for (std::size_t i = 0; i < s.layers.size(); ++i) {
        const LayerTiming& layer = s.layers[i];
        const double x = left + bar * static_cast<double>(i) + bar * 0.1;
        double y = top + height;
        for (int phase = 0; phase < kNumPhases; ++phase) {
            const PhaseTime& t = layer.phases[phase];
            if (t.seconds <= 0) continue;
            const double bar_h = height * t.seconds / most;
            y -= bar_h;
            h.raw("<rect x=\"" + fixed(x, 2) + "\" y=\"" + fixed(y, 2) + "\" width=\"" +
                  fixed(bar * 0.8, 2) + "\" height=\"" + fixed(bar_h, 2) + "\" fill=\"" +
                  kPhaseColors[phase] + "\"><title>" +
                  escape("layer " + std::to_string(layer.layer) + " / " + kPhaseNames[phase] +
                         ": " + duration(t.seconds) + ", " + std::to_string(t.kernels) +
                         " kernels") +
                  "</title></rect>");
        }
        if (i % label_every == 0) {
            h.raw("<text x=\"" + fixed(x + bar * 0.4, 2) + "\" y=\"" + fixed(top + height + 16, 1) +
                  "\" text-anchor=\"middle\">" + std::to_string(layer.layer) + "</text>");
        }
        h.raw("\n");
    }
    h.raw("<text x=\"" + fixed(left + plot_w / 2, 0) +
          "\" y=\"236\" text-anchor=\"middle\">layer</text>\n</svg>\n<p class=\"legend\">");
    for (int phase = 0; phase < kNumPhases; ++phase) {
        h.raw(std::string("<span><i style=\"background:") + kPhaseColors[phase] + "\"></i>" +
              kPhaseNames[phase] + "</span>");
    }
    h.raw(
        "</p>\n<table class=\"grid\"><tr><th>stage</th><th>time</th><th>share of run</th>"
        "<th>kernels</th></tr>\n");
    double layer_seconds = 0.0;
    std::int64_t layer_kernels = 0;
    for (const LayerTiming& layer : s.layers) {
        layer_seconds += layer.seconds;
        layer_kernels += layer.kernels;
    }
    auto stage_row = [&](const std::string& name, double seconds, double share, std::int64_t k) {
        h.raw("<tr><th>" + escape(name) + "</th><td>" + escape(duration(seconds)) + "</td><td>" +
              percent(share) + "</td><td>" + std::to_string(k) + "</td></tr>\n");
    };
    for (const StageTiming& stage : s.stages) {
        stage_row(stage.name, stage.seconds, stage.share, stage.kernels);
    }
    stage_row("all layers", layer_seconds, s.run_seconds > 0 ? layer_seconds / s.run_seconds : 0.0,
              layer_kernels);
    stage_row("whole run", s.run_seconds, 1.0, s.kernels);
    h.raw("</table></section>\n");
}

// ---- what-if -----------------------------------------------------------------------------------

void compare_section(Html& h, const Profile& base, const Profile* variant) {
    h.raw(
        "<!-- what-if comparison: filled by `l2a export --compare` -->\n"
        "<section id=\"what-if\"><h2>What-if comparison</h2>\n");
    if (!variant) {
        h.raw(
            "<p class=\"placeholder\">No comparison in this report. Give a second profile of the "
            "same document (for example a pruned run) with <code>--compare FILE</code> to see "
            "the change in NLL per token and in routing per layer.</p></section>\n");
        return;
    }
    const Profile& v = *variant;
    h.raw("<p class=\"sub\">Base: this report&#39;s run. Variant: ");
    h.text(v.document_path + " run with routing " + v.options.routing.to_string() +
           ", pruned layers " +
           (v.options.prune.empty() ? "none" : format_pruning_plan(v.options.prune)) +
           (v.options.threshold ? ", threshold " + export_support::number_text(*v.options.threshold)
                                : std::string()) +
           ".");
    h.raw(
        "</p>\n<table class=\"grid\"><tr><th>metric</th><th>base</th><th>variant</th>"
        "<th>change</th></tr>\n");
    auto metric = [&](const char* name, double a, double b, int digits) {
        h.raw(std::string("<tr><th>") + name + "</th><td>" + fixed(a, digits) + "</td><td>" +
              fixed(b, digits) + "</td><td>" + fixed(b - a, digits) + "</td></tr>\n");
    };
    metric("mean NLL", base.metrics.mean_nll, v.metrics.mean_nll, 4);
    metric("perplexity", base.metrics.perplexity, v.metrics.perplexity, 3);
    metric("global attention (%)", 100 * base.metrics.global_fraction_overall,
           100 * v.metrics.global_fraction_overall, 2);
    metric("KV cache (MiB)", static_cast<double>(base.metrics.kv_bytes_total) / (1 << 20),
           static_cast<double>(v.metrics.kv_bytes_total) / (1 << 20), 3);
    metric("wall time (s)", base.wall_seconds, v.wall_seconds, 4);
    h.raw("</table>\n");

    // NLL change per token, as the mean of each bin of tokens.
    const std::int64_t tokens = base.num_tokens();
    std::vector<double> delta(static_cast<std::size_t>(tokens),
                              std::numeric_limits<double>::quiet_NaN());
    double worst = 0.0;
    std::int64_t worst_at = -1, worse = 0, better = 0;
    for (std::int64_t t = 0; t < tokens; ++t) {
        const auto i = static_cast<std::size_t>(t);
        const double d = static_cast<double>(v.token_nll[i]) - base.token_nll[i];
        delta[i] = d;
        if (!std::isfinite(d)) continue;
        worse += d > 1e-6;
        better += d < -1e-6;
        if (worst_at < 0 || d > worst) {
            worst = d;
            worst_at = t;
        }
    }
    const std::int64_t columns = std::max<std::int64_t>(1, std::min<std::int64_t>(tokens, 1200));
    std::vector<double> bins(static_cast<std::size_t>(columns), 0.0);
    double scale = 0.0;
    for (std::int64_t c = 0; c < columns; ++c) {
        const std::int64_t t0 = c * tokens / columns, t1 = (c + 1) * tokens / columns;
        double sum = 0.0;
        std::int64_t n = 0;
        for (std::int64_t t = t0; t < t1; ++t) {
            const double d = delta[static_cast<std::size_t>(t)];
            if (std::isfinite(d)) {
                sum += d;
                ++n;
            }
        }
        bins[static_cast<std::size_t>(c)] = n ? sum / static_cast<double>(n) : 0.0;
        scale = std::max(scale, std::abs(bins[static_cast<std::size_t>(c)]));
    }
    h.raw("<h3>NLL change per token (variant - base)</h3>\n");
    h.raw(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"170\" "
        "viewBox=\"0 0 1200 170\" role=\"img\" aria-label=\"NLL change per token\" "
        "shape-rendering=\"crispEdges\">\n<line x1=\"80\" x2=\"1190\" y1=\"80\" y2=\"80\" "
        "stroke=\"#8a93a3\"/>\n");
    const double cell_w = 1110.0 / static_cast<double>(columns);
    for (std::int64_t c = 0; c < columns && scale > 0; ++c) {
        const double d = bins[static_cast<std::size_t>(c)];
        if (d == 0.0) continue;
        const double bar_h = 70.0 * std::abs(d) / scale;
        h.raw("<rect x=\"" + fixed(80 + cell_w * static_cast<double>(c), 2) + "\" y=\"" +
              fixed(d > 0 ? 80 - bar_h : 80, 2) + "\" width=\"" + fixed(std::max(cell_w, 0.5), 2) +
              "\" height=\"" + fixed(bar_h, 2) + "\" fill=\"" + (d > 0 ? "#c0392b" : "#2e8b57") +
              "\"/>");
    }
    h.raw("\n<text x=\"74\" y=\"14\" text-anchor=\"end\">+" + fixed(scale, 3) +
          "</text><text x=\"74\" y=\"154\" text-anchor=\"end\">-" + fixed(scale, 3) +
          "</text>\n</svg>\n");
    std::string note = std::to_string(worse) + " tokens got worse, " + std::to_string(better) +
                       " better (red: higher NLL in the variant).";
    if (worst_at >= 0 && worst > 0) {
        const auto i = static_cast<std::size_t>(worst_at);
        std::string piece;
        const std::size_t b = char_boundary(base.document_text, base.token_begin[i]);
        const std::size_t e = std::max(b, char_boundary(base.document_text, base.token_end[i]));
        sanitize_utf8(std::string_view(base.document_text).substr(b, e - b), piece);
        note += " Largest increase: +" + fixed(worst, 4) + " at token " + std::to_string(worst_at) +
                " (\"" + piece + "\").";
    }
    h.raw("<p class=\"note\">" + escape(note) + "</p>\n");

    h.raw(
        "<h3>Routing per layer</h3>\n<table class=\"grid\"><tr><th>layer</th><th>base global"
        "</th><th>variant global</th><th>change</th><th>tokens decided differently</th>"
        "<th>pruned</th></tr>\n");
    for (std::int64_t layer = 0; layer < base.num_layers; ++layer) {
        std::int64_t changed = 0;
        for (std::int64_t t = 0; t < tokens; ++t) {
            const auto i = static_cast<std::size_t>(layer * tokens + t);
            changed += (base.decisions[i] != 0) != (v.decisions[i] != 0);
        }
        const double a = export_support::global_fraction(base, layer);
        const double b = export_support::global_fraction(v, layer);
        const bool pa = export_support::is_pruned(base, layer);
        const bool pb = export_support::is_pruned(v, layer);
        h.raw("<tr><td>" + std::to_string(layer) + "</td><td>" + percent(a) + "</td><td>" +
              percent(b) + "</td><td>" + fixed(100 * (b - a), 1) + " pp</td><td>" +
              std::to_string(changed) + "</td><td>" +
              (pa == pb ? (pa ? "both" : "") : (pa ? "base only" : "variant only")) +
              "</td></tr>\n");
    }
    h.raw("</table></section>\n");
}

// ---- the document ------------------------------------------------------------------------------

void document_section(Html& h, const Profile& p) {
    h.raw("<section id=\"document\"><h2>Document</h2>\n");
    const std::string& text = p.document_text;
    const std::int64_t tokens = p.num_tokens(), layers = p.num_layers;
    if (text.empty()) {
        h.raw("<p class=\"note\">The profile holds token ids only (no text).</p></section>\n");
        return;
    }
    // Score: the layers in which a token ran global attention.
    std::vector<std::int64_t> score(static_cast<std::size_t>(tokens), 0);
    for (std::int64_t l = 0; l < layers; ++l) {
        for (std::int64_t t = 0; t < tokens; ++t) {
            score[static_cast<std::size_t>(t)] +=
                p.decisions[static_cast<std::size_t>(l * tokens + t)] != 0;
        }
    }
    // Highlighted: the top tenth of tokens by score, when that singles anything out.
    std::vector<std::int64_t> sorted = score;
    std::sort(sorted.begin(), sorted.end());
    const std::int64_t threshold = sorted.empty() ? 0 : sorted[(sorted.size() - 1) * 9 / 10];
    const bool distinctive =
        p.model.is_l2a && !p.options.as_base && threshold > 0 && sorted.front() < sorted.back();
    const std::int64_t top = sorted.empty() ? 0 : sorted.back();
    auto highlighted = [&](std::int64_t t) {
        return distinctive && score[static_cast<std::size_t>(t)] >= threshold;
    };

    // Which tokens are shown: all of them, or windows around the best passages.
    std::vector<char> shown(static_cast<std::size_t>(tokens), 1);
    bool trimmed = false;
    if (text.size() > kDocumentBudgetBytes && tokens > 0) {
        trimmed = true;
        std::fill(shown.begin(), shown.end(), 0);
        std::vector<std::int64_t> order;
        for (std::int64_t t = 0; t < tokens; ++t) {
            if (highlighted(t)) order.push_back(t);
        }
        std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
            return score[static_cast<std::size_t>(a)] > score[static_cast<std::size_t>(b)];
        });
        if (order.empty()) order.push_back(0);  // nothing stands out: show the beginning
        std::size_t used = 0;
        for (std::int64_t t : order) {
            if (used >= kDocumentBudgetBytes) break;
            const std::int64_t a = std::max<std::int64_t>(0, t - kContextTokens);
            const std::int64_t b = std::min(tokens, t + kContextTokens + 1);
            for (std::int64_t i = a; i < b; ++i) {
                auto& s = shown[static_cast<std::size_t>(i)];
                if (!s)
                    used += p.token_end[static_cast<std::size_t>(i)] -
                            p.token_begin[static_cast<std::size_t>(i)] + 1;
                s = 1;
            }
        }
    }

    std::int64_t passages = 0;
    std::size_t shown_bytes = 0;
    Html body;
    std::size_t cursor = 0;
    bool in_mark = false;
    auto close_mark = [&] {
        if (in_mark) body.raw("</mark>");
        in_mark = false;
    };
    for (std::int64_t t = 0; t < tokens;) {
        if (!shown[static_cast<std::size_t>(t)]) {
            std::int64_t end = t;
            while (end < tokens && !shown[static_cast<std::size_t>(end)]) ++end;
            close_mark();
            body.raw("<span class=\"gap\">[… " + std::to_string(end - t) +
                     " tokens omitted …]</span>");
            cursor = std::max(cursor,
                              char_boundary(text, p.token_end[static_cast<std::size_t>(end - 1)]));
            t = end;
            continue;
        }
        const auto i = static_cast<std::size_t>(t);
        const std::size_t b = std::max(cursor, char_boundary(text, p.token_begin[i]));
        const std::size_t e = std::max(b, char_boundary(text, p.token_end[i]));
        if (b > cursor) {
            close_mark();
            body.text(std::string_view(text).substr(cursor, b - cursor));
            shown_bytes += b - cursor;
        }
        if (highlighted(t) && !in_mark) {
            const std::int64_t s = score[i];
            const int level = 1 + static_cast<int>(4 * (s - threshold) / (top - threshold + 1));
            body.raw("<mark class=\"h" + std::to_string(std::clamp(level, 1, 4)) + "\" title=\"" +
                     escape("from token " + std::to_string(t) + ": global in " + std::to_string(s) +
                            " of " + std::to_string(layers) + " layers") +
                     "\">");
            in_mark = true;
            ++passages;
        } else if (!highlighted(t)) {
            close_mark();
        }
        body.text(std::string_view(text).substr(b, e - b));
        shown_bytes += e - b;
        cursor = e;
        ++t;
    }
    close_mark();
    if (!trimmed && cursor < text.size()) {
        body.text(std::string_view(text).substr(cursor));
        shown_bytes += text.size() - cursor;
    } else if (trimmed && cursor < text.size() && shown.back()) {
        body.text(std::string_view(text).substr(cursor));
        shown_bytes += text.size() - cursor;
    }

    std::string note;
    if (distinctive) {
        note = "Highlighted: the tokens that ran global attention in the most layers (at least " +
               std::to_string(threshold) + " of " + std::to_string(layers) + "; " +
               std::to_string(passages) + " passages), darker where more.";
    } else {
        note = p.model.is_l2a && !p.options.as_base
                   ? "No tokens stand out: every token ran global attention in as many layers."
                   : "A plain model (or a base run): every token runs global attention, nothing is "
                     "highlighted.";
    }
    if (trimmed) {
        note += " The document has " + std::to_string(text.size()) + " bytes; shown are " +
                std::to_string(shown_bytes) +
                " bytes around its most-routed passages, the rest "
                "is marked as omitted.";
    }
    h.raw("<p class=\"note\">" + escape(note) + "</p>\n<div class=\"doc\">");
    h.raw(body.take());
    h.raw("</div></section>\n");
}

}  // namespace

std::string profile_to_html(const Profile& p, const Profile* compare) {
    export_support::check_arrays(p, "html report");
    if (compare) {
        export_support::check_arrays(*compare, "--compare");
        if (compare->token_ids != p.token_ids) {
            fail("--compare", "the two profiles ran different tokens (" +
                                  std::to_string(p.num_tokens()) + " and " +
                                  std::to_string(compare->num_tokens()) +
                                  "): compare runs of the same document");
        }
        if (compare->num_layers != p.num_layers) {
            fail("--compare", "the two profiles have " + std::to_string(p.num_layers) + " and " +
                                  std::to_string(compare->num_layers) + " layers");
        }
    }
    const TimelineSummary summary = summarize_timeline(p);
    Html h;
    h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    h.text("L2A report: " + p.document_path);
    h.raw("</title>\n<style>");
    h.raw(kStyle);
    h.raw("</style>\n</head>\n<body>\n<h1>L2A Studio report</h1>\n<p class=\"sub\">");
    h.text(p.document_path + " through " + p.model.path + ", " + std::to_string(p.num_tokens()) +
           " tokens, " + p.created_at);
    h.raw("</p>\n");
    run_section(h, p, summary);
    sparsity_section(h, p);
    routing_map_section(h, p);
    timing_section(h, p, summary);
    compare_section(h, p, compare);
    document_section(h, p);
    h.raw("</body>\n</html>\n");
    return h.take();
}

void export_html(const Profile& profile, const std::filesystem::path& path,
                 const Profile* compare) {
    write_text_atomically(path, profile_to_html(profile, compare));
}

}  // namespace l2a
