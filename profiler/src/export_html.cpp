// The HTML report: one self-contained file that opens anywhere without network access or
// scripts. Charts are inline SVG; the routing map is max-pooled and run-length encoded so that a
// 128K-token document stays a few megabytes at most. What it shows comes from report_model.h,
// which the PDF report shares.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/profiler/export.h"
#include "report_model.h"

namespace l2a {
namespace {

// Past this many bytes of text the document is shown only around its most-routed passages.
constexpr std::size_t kDocumentBudgetBytes = 40000;
constexpr std::int64_t kContextTokens = 48;  // shown on each side of a highlighted token
constexpr std::size_t kMissedTokens = 8;     // the routing oracle's missed tokens shown

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
p.warn, td.warn { color: #8a4b00; }
p.warn { margin: 4px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
table.meta th { text-align: left; font-weight: 600; padding: 2px 16px 2px 0; color: #39414f; }
table.meta td { padding: 2px 0; }
table.grid th, table.grid td { border: 1px solid #d8dde6; padding: 3px 8px; text-align: right; }
table.grid th { background: #f1f3f7; }
table.grid td.text { text-align: left; font-family: ui-monospace, monospace; }
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
    h.raw("<section id=\"run\"><h2>Run</h2><div class=\"columns\">");
    for (const report::Rows& table : report::run_tables(p, summary)) {
        h.raw("<table class=\"meta\">\n");
        for (const auto& [label, value] : table) h.row(label, value);
        h.raw("</table>");
    }
    h.raw("</div></section>\n");
}

// ---- charts ------------------------------------------------------------------------------------

void sparsity_section(Html& h, const Profile& p) {
    h.raw("<section id=\"sparsity\"><h2>Global attention per layer</h2>\n");
    const std::vector<report::LayerBar> bars = report::layer_bars(p);
    if (bars.empty()) {
        h.raw("<p class=\"note\">The model has no layers.</p></section>\n");
        return;
    }
    const auto layers = static_cast<std::int64_t>(bars.size());
    const double width = 1180, height = 200, left = 40, top = 10;
    const double plot_w = width - left - 10, bar = plot_w / static_cast<double>(layers);
    h.raw(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"240\" "
        "viewBox=\"0 0 1200 240\" role=\"img\" aria-label=\"share of tokens with global "
        "attention per layer\">\n");
    const double axis = report::bar_axis_max(bars);
    for (int tick = 0; tick <= 4; ++tick) {
        const double y = top + height * (1.0 - tick / 4.0);
        h.raw("<line x1=\"" + format_fixed(left, 1) + "\" x2=\"" + format_fixed(width, 1) +
              "\" y1=\"" + format_fixed(y, 1) + "\" y2=\"" + format_fixed(y, 1) +
              "\" stroke=\"#e3e7ee\"/>");
        h.raw("<text x=\"" + format_fixed(left - 6, 1) + "\" y=\"" + format_fixed(y + 4, 1) +
              "\" text-anchor=\"end\">" + report::axis_label(axis, tick) + "</text>\n");
    }
    const std::int64_t label_every = std::max<std::int64_t>(1, layers / 16);
    for (const report::LayerBar& b : bars) {
        const double f = std::isfinite(b.fraction) ? std::clamp(b.fraction / axis, 0.0, 1.0) : 0.0;
        const double x = left + bar * static_cast<double>(b.layer);
        if (b.pruned) {
            h.raw("<rect x=\"" + format_fixed(x + bar * 0.1, 2) + "\" y=\"" + format_fixed(top, 1) +
                  "\" width=\"" + format_fixed(bar * 0.8, 2) + "\" height=\"" +
                  format_fixed(height, 1) + "\" fill=\"#eceff4\"><title>" + escape(b.title) +
                  "</title></rect>");
        }
        h.raw("<rect x=\"" + format_fixed(x + bar * 0.1, 2) + "\" y=\"" +
              format_fixed(top + height * (1.0 - f), 2) + "\" width=\"" +
              format_fixed(bar * 0.8, 2) + "\" height=\"" + format_fixed(height * f, 2) +
              "\" fill=\"#3b6fb6\"><title>" + escape(b.title) + "</title></rect>\n");
        if (b.layer % label_every == 0) {
            h.raw("<text x=\"" + format_fixed(x + bar / 2, 2) + "\" y=\"" +
                  format_fixed(top + height + 16, 1) + "\" text-anchor=\"middle\">" +
                  std::to_string(b.layer) + (b.pruned ? "P" : "") + "</text>");
        }
    }
    h.raw("<text x=\"" + format_fixed(left + plot_w / 2, 1) +
          "\" y=\"236\" text-anchor=\"middle\">layer (P: pruned)</text>\n</svg>\n");
    h.raw(
        "<p class=\"note\">Share of tokens that ran global attention in each layer; grey: a "
        "pruned layer.</p></section>\n");
}

void routing_map_section(Html& h, const Profile& p) {
    h.raw("<section id=\"routing-map\"><h2>Routing map</h2>\n");
    const report::RoutingGrid grid = report::routing_grid(p, kHtmlMapColumns, kHtmlMapRows);
    if (grid.columns == 0 || grid.rows == 0) {
        h.raw("<p class=\"note\">No tokens or layers to show.</p></section>\n");
        return;
    }
    const std::int64_t columns = grid.columns, rows = grid.rows;
    const double cell_h = std::clamp(480.0 / static_cast<double>(rows), 4.0, 16.0);
    const double map_h = cell_h * static_cast<double>(rows);
    h.raw("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"" +
          format_fixed(map_h + 30, 0) + "\" viewBox=\"0 0 1200 " + format_fixed(map_h + 30, 0) +
          "\" role=\"img\" aria-label=\"token by layer routing map\" "
          "shape-rendering=\"crispEdges\">\n");
    const double left = 40, plot_w = 1150, cell_w = plot_w / static_cast<double>(columns);
    h.raw("<rect x=\"" + format_fixed(left, 0) + "\" y=\"0\" width=\"" + format_fixed(plot_w, 0) +
          "\" height=\"" + format_fixed(map_h, 2) + "\" fill=\"#f1f3f7\"/>\n");
    // Runs of equal cells merge into one rectangle.
    for (std::int64_t row = 0; row < rows; ++row) {
        const std::uint8_t* level = grid.level.data() + row * columns;
        const double y = cell_h * static_cast<double>(row);
        for (std::int64_t col = 0; col < columns;) {
            const int v = level[col];
            std::int64_t end = col + 1;
            while (end < columns && level[end] == v) ++end;
            if (v > 0) {
                h.raw("<rect x=\"" + format_fixed(left + cell_w * static_cast<double>(col), 2) +
                      "\" y=\"" + format_fixed(y, 2) + "\" width=\"" +
                      format_fixed(cell_w * static_cast<double>(end - col), 2) + "\" height=\"" +
                      format_fixed(cell_h, 2) + "\" fill=\"#c0392b\" fill-opacity=\"" +
                      format_fixed(report::level_opacity(v), 2) + "\"/>");
            }
            col = end;
        }
        if (rows <= 32 || row % 4 == 0) {
            h.raw("<text x=\"" + format_fixed(left - 6, 0) + "\" y=\"" +
                  format_fixed(y + cell_h / 2 + 4, 2) + "\" text-anchor=\"end\">" +
                  std::to_string(grid.first_layer[static_cast<std::size_t>(row)]) + "</text>");
        }
        h.raw("\n");
    }
    h.raw("<text x=\"" + format_fixed(left, 0) + "\" y=\"" + format_fixed(map_h + 18, 1) +
          "\">token 0</text><text x=\"" + format_fixed(left + plot_w, 0) + "\" y=\"" +
          format_fixed(map_h + 18, 1) + "\" text-anchor=\"end\">token " +
          std::to_string(p.num_tokens() - 1) + "</text>\n</svg>\n");
    h.raw("<p class=\"note\">" + escape(grid.note) + "</p></section>\n");
}

// ---- routing oracle ----------------------------------------------------------------------------

void grid_table(Html& h, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, std::size_t text_column) {
    h.raw("<table class=\"grid\"><tr>");
    for (const std::string& name : header) h.raw("<th>" + escape(name) + "</th>");
    h.raw("</tr>\n");
    for (const std::vector<std::string>& row : rows) {
        h.raw("<tr>");
        for (std::size_t c = 0; c < row.size(); ++c) {
            h.raw(c == text_column ? "<td class=\"text\">" : "<td>");
            h.text(row[c]);
            h.raw("</td>");
        }
        h.raw("</tr>\n");
    }
    h.raw("</table>\n");
}

// One run's scores: the per-layer table and the missed tokens.
void oracle_tables(Html& h, const report::Oracle& o, const std::string& missed_title) {
    std::vector<std::vector<std::string>> rows;
    for (const report::OracleLayer& layer : o.layers) rows.push_back(report::oracle_cells(layer));
    grid_table(h, report::oracle_header(), rows, std::string::npos);
    h.raw("<h3>" + escape(missed_title) + "</h3>\n<p class=\"note\">" + escape(o.missed_note) +
          "</p>\n");
    if (o.missed.empty()) return;
    rows.clear();
    for (const report::MissedToken& token : o.missed) rows.push_back(report::missed_cells(token));
    grid_table(h, report::missed_header(), rows, 3);
}

// Only for a profile with distant masses (`l2a oracle`); the variant's scores follow when it
// has them too.
void oracle_section(Html& h, const Profile& p, const Profile* variant) {
    const report::Oracle o = report::oracle(p, kMissedTokens);
    if (!o.present) return;
    h.raw("<section id=\"oracle\"><h2>Routing oracle</h2>\n<p class=\"note\">" +
          escape(o.explanation) + "</p>\n");
    const report::Oracle v = variant ? report::oracle(*variant, kMissedTokens) : report::Oracle{};
    if (variant) {
        h.raw("<p class=\"note\">" + escape(report::oracle_scope(o, variant, v)) + "</p>\n");
    }
    oracle_tables(h, o, "Missed tokens");
    if (v.present) {
        h.raw("<h3>Variant: routing oracle</h3>\n");
        oracle_tables(h, v, "Variant: missed tokens");
    }
    h.raw("</section>\n");
}

void timing_section(Html& h, const Profile& p, const TimelineSummary& s) {
    h.raw("<section id=\"timing\"><h2>Time per layer and phase</h2>\n");
    const double most = report::timing_scale(s);
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
        h.raw("<line x1=\"" + format_fixed(left, 0) + "\" x2=\"1190\" y1=\"" + format_fixed(y, 1) +
              "\" y2=\"" + format_fixed(y, 1) + "\" stroke=\"#e3e7ee\"/><text x=\"" +
              format_fixed(left - 6, 0) + "\" y=\"" + format_fixed(y + 4, 1) +
              "\" text-anchor=\"end\">" + escape(report::timing_tick(most, tick)) + "</text>\n");
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
            h.raw("<rect x=\"" + format_fixed(x, 2) + "\" y=\"" + format_fixed(y, 2) +
                  "\" width=\"" + format_fixed(bar * 0.8, 2) + "\" height=\"" +
                  format_fixed(bar_h, 2) + "\" fill=\"" + kPhaseColors[phase] + "\"><title>" +
                  escape(report::phase_title(layer, phase)) + "</title></rect>");
        }
        if (i % label_every == 0) {
            h.raw("<text x=\"" + format_fixed(x + bar * 0.4, 2) + "\" y=\"" +
                  format_fixed(top + height + 16, 1) + "\" text-anchor=\"middle\">" +
                  std::to_string(layer.layer) + "</text>");
        }
        h.raw("\n");
    }
    h.raw("<text x=\"" + format_fixed(left + plot_w / 2, 0) +
          "\" y=\"236\" text-anchor=\"middle\">layer</text>\n</svg>\n<p class=\"legend\">");
    for (int phase = 0; phase < kNumPhases; ++phase) {
        h.raw(std::string("<span><i style=\"background:") + kPhaseColors[phase] + "\"></i>" +
              phase_name(kLayerPhases[phase]) + "</span>");
    }
    h.raw(
        "</p>\n<table class=\"grid\"><tr><th>stage</th><th>time</th><th>share of run</th>"
        "<th>kernels</th></tr>\n");
    for (const report::StageRow& row : report::stage_rows(s)) {
        h.raw("<tr><th>" + escape(row.name) + "</th><td>" + escape(format_duration(row.seconds)) +
              "</td><td>" + escape(format_percent(row.share)) + "</td><td>" +
              std::to_string(row.kernels) + "</td></tr>\n");
    }
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
    const report::Comparison c = report::comparison(base, *variant, 1200);
    h.raw("<p class=\"sub\">Base: this report&#39;s run. Variant: ");
    h.text(c.variant_description);
    h.raw("</p>\n");
    if (!c.not_comparable.empty()) {
        std::string why;
        for (const std::string& d : c.not_comparable) why += (why.empty() ? "" : "; ") + d;
        h.raw("<p class=\"warn\">⚠ The two runs ran differently (" + escape(why) +
              "): their times are shown side by side, not as a change.</p>\n");
    }
    h.raw(
        "<table class=\"grid\"><tr><th>metric</th><th>base</th><th>variant</th>"
        "<th>change</th></tr>\n");
    for (const report::MetricRow& m : c.metrics) {
        h.raw("<tr><th>" + escape(m.name) + "</th><td>" + format_fixed(m.base, m.digits) +
              "</td><td>" + format_fixed(m.variant, m.digits) + "</td>" +
              (m.not_comparable.empty()
                   ? "<td>" + format_fixed(m.variant - m.base, m.digits) + "</td>"
                   : "<td class=\"warn\">⚠ " + escape(m.not_comparable) + "</td>") +
              "</tr>\n");
    }
    h.raw("</table>\n");

    // Bars: mean change per bin between y 10 and 150 around the zero line at 80; bins holding a
    // token beyond the scale get a mark in the margin above or below.
    h.raw("<h3>NLL change per token (variant - base)</h3>\n");
    h.raw(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"190\" "
        "viewBox=\"0 0 1200 190\" role=\"img\" aria-label=\"NLL change per token\" "
        "shape-rendering=\"crispEdges\">\n<line x1=\"80\" x2=\"1190\" y1=\"80\" y2=\"80\" "
        "stroke=\"#8a93a3\"/>\n");
    const double cell_w = 1110.0 / static_cast<double>(c.nll_bins.size());
    for (std::size_t col = 0; col < c.nll_bins.size() && c.nll_scale > 0; ++col) {
        const double d = c.nll_bins[col];
        const double x = 80 + cell_w * static_cast<double>(col);
        const double w = std::max(cell_w, 0.5);
        if (c.nll_beyond[col] & report::kBeyondAbove) {
            h.raw("<rect class=\"beyond\" x=\"" + format_fixed(x, 2) + "\" y=\"3\" width=\"" +
                  format_fixed(std::max(w, 2.0), 2) + "\" height=\"5\" fill=\"#7b241c\"/>");
        }
        if (c.nll_beyond[col] & report::kBeyondBelow) {
            h.raw("<rect class=\"beyond\" x=\"" + format_fixed(x, 2) + "\" y=\"152\" width=\"" +
                  format_fixed(std::max(w, 2.0), 2) + "\" height=\"5\" fill=\"#1e5c3a\"/>");
        }
        if (d == 0.0) continue;
        const double bar_h = 70.0 * std::abs(d) / c.nll_scale;
        h.raw("<rect x=\"" + format_fixed(x, 2) + "\" y=\"" +
              format_fixed(d > 0 ? 80 - bar_h : 80, 2) + "\" width=\"" + format_fixed(w, 2) +
              "\" height=\"" + format_fixed(bar_h, 2) + "\" fill=\"" +
              (d > 0 ? "#c0392b" : "#2e8b57") + "\"/>");
    }
    h.raw("\n<text x=\"74\" y=\"14\" text-anchor=\"end\">+" + format_fixed(c.nll_scale, 3) +
          "</text><text x=\"74\" y=\"154\" text-anchor=\"end\">-" + format_fixed(c.nll_scale, 3) +
          "</text>\n<text x=\"635\" y=\"178\" text-anchor=\"middle\">" + escape(c.nll_axis) +
          (c.nll_beyond_bins ? " (clipped at ±" + format_fixed(c.nll_scale, 3) + ")"
                             : std::string()) +
          "</text>\n</svg>\n");
    if (!c.nll_clip_note.empty()) {
        h.raw("<p class=\"warn\">" + escape(c.nll_clip_note) + "</p>\n");
    }
    h.raw("<p class=\"note\">" + escape(c.nll_note) + "</p>\n");

    h.raw(
        "<h3>Routing per layer</h3>\n<table class=\"grid\"><tr><th>layer</th><th>base global"
        "</th><th>variant global</th><th>change</th><th>tokens decided differently</th>"
        "<th>pruned</th></tr>\n");
    for (const report::LayerChange& row : c.layers) {
        h.raw("<tr><td>" + std::to_string(row.layer) + "</td><td>" +
              escape(format_percent(row.base)) + "</td><td>" + escape(format_percent(row.variant)) +
              "</td><td>" + escape(format_points(row.variant - row.base)) + "</td><td>" +
              std::to_string(row.changed) + "</td><td>" + row.pruned + "</td></tr>\n");
    }
    h.raw("</table></section>\n");
}

// ---- the document ------------------------------------------------------------------------------

void document_section(Html& h, const Profile& p) {
    h.raw("<section id=\"document\"><h2>Document</h2>\n");
    const report::DocumentExcerpt doc =
        report::document_excerpt(p, kDocumentBudgetBytes, kContextTokens);
    if (!doc.has_text) {
        h.raw("<p class=\"note\">The profile holds token ids only (no text).</p></section>\n");
        return;
    }
    h.raw("<p class=\"note\">" + escape(doc.note) + "</p>\n<div class=\"doc\">");
    for (const report::DocumentPiece& piece : doc.pieces) {
        switch (piece.kind) {
            case report::DocumentPiece::Kind::Text:
                h.text(piece.text);
                break;
            case report::DocumentPiece::Kind::Mark:
                h.raw("<mark class=\"h" + std::to_string(piece.level) + "\" title=\"" +
                      escape(piece.title) + "\">");
                h.text(piece.text);
                h.raw("</mark>");
                break;
            case report::DocumentPiece::Kind::Gap:
                h.raw("<span class=\"gap\">");
                h.text(piece.text);
                h.raw("</span>");
                break;
        }
    }
    h.raw("</div></section>\n");
}

}  // namespace

std::string profile_to_html(const Profile& p, const Profile* compare) {
    report::check_reportable(p, compare);
    const TimelineSummary summary = summarize_timeline(p);
    Html h;
    h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    h.text("L2A report: " + p.document_path);
    h.raw("</title>\n<style>");
    h.raw(kStyle);
    h.raw("</style>\n</head>\n<body>\n<h1>L2A Studio report</h1>\n<p class=\"sub\">");
    h.text(report::subtitle(p));
    h.raw("</p>\n");
    run_section(h, p, summary);
    sparsity_section(h, p);
    routing_map_section(h, p);
    oracle_section(h, p, compare);
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
