#include "report_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

#include "export_support.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"

namespace l2a::report {
namespace {

// The first character boundary at or after `offset` (a byte-level token may split one).
std::size_t char_boundary(const std::string& text, std::size_t offset) {
    while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) {
        ++offset;
    }
    return std::min(offset, text.size());
}

// The oracle's label threshold as a share: "50%", "35.5%".
std::string mass_share(double min_mass) { return format_setting_percent(min_mass); }

// A token's text for a table cell: valid UTF-8 on one line, line breaks and tabs shown as
// symbols, long tokens cut.
std::string token_line(const Profile& p, std::int64_t t) {
    constexpr std::size_t kMaxBytes = 40;
    const auto i = static_cast<std::size_t>(t);
    std::string_view raw = std::string_view(p.document_text)
                               .substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]);
    const bool cut = raw.size() > kMaxBytes;
    if (cut) {
        std::size_t n = kMaxBytes;
        while (n > 0 && (static_cast<unsigned char>(raw[n]) & 0xC0) == 0x80) --n;
        raw = raw.substr(0, n);
    }
    std::string valid;
    sanitize_utf8(raw, valid);
    std::string out;
    for (std::size_t k = 0; k < valid.size(); ++k) {
        const char c = valid[k];
        if (c == '\n' || (c == '\r' && (k + 1 == valid.size() || valid[k + 1] != '\n'))) {
            out += "↵";
        } else if (c == '\t') {
            out += "→";
        } else if (static_cast<unsigned char>(c) >= 0x20) {
            out += c;
        }
    }
    return cut ? out + "…" : out;
}

}  // namespace

void check_reportable(const Profile& p, const Profile* compare) {
    export_support::check_arrays(p, "report");
    if (!compare) return;
    export_support::check_arrays(*compare, "--compare");
    if (compare->token_ids != p.token_ids) {
        fail("--compare",
             "the two profiles ran different tokens (" + std::to_string(p.num_tokens()) + " and " +
                 std::to_string(compare->num_tokens()) + "): compare runs of the same document");
    }
    if (compare->num_layers != p.num_layers) {
        fail("--compare", "the two profiles have " + std::to_string(p.num_layers) + " and " +
                              std::to_string(compare->num_layers) + " layers");
    }
}

std::string subtitle(const Profile& p) {
    return p.document_path + " through " + p.model.path + ", " + std::to_string(p.num_tokens()) +
           " tokens, " + p.created_at;
}

std::vector<Rows> run_tables(const Profile& p, const TimelineSummary& summary) {
    const ModelSummary& m = p.model;
    const RunOptions& o = p.options;
    const RunMetrics& metrics = p.metrics;
    std::vector<Rows> tables(3);
    Rows& model = tables[0];
    model.emplace_back("model", m.path);
    model.emplace_back("type", m.model_type + (m.untrained ? " (untrained router)" : ""));
    model.emplace_back("layers", std::to_string(m.num_layers) + " (hidden " +
                                     std::to_string(m.hidden_size) + ", " +
                                     std::to_string(m.num_heads) + " heads / " +
                                     std::to_string(m.num_kv_heads) + " KV heads of " +
                                     std::to_string(m.head_dim) + ")");
    model.emplace_back("parameters", std::to_string(m.parameter_count));
    if (m.is_l2a) model.emplace_back("sliding window", std::to_string(m.sliding_window));
    model.emplace_back("document", p.document_path);
    std::string tokens = std::to_string(p.num_tokens());
    if (p.tokens_before_truncation > p.num_tokens()) {
        tokens += " (truncated from " + std::to_string(p.tokens_before_truncation) + ")";
    }
    model.emplace_back("tokens", tokens);
    model.emplace_back("text",
                       std::to_string(p.document_text.size()) + " bytes" +
                           (p.replaced_sequences ? ", " + std::to_string(p.replaced_sequences) +
                                                       " invalid UTF-8 sequences replaced"
                                                 : std::string()));

    Rows& run = tables[1];
    run.emplace_back("routing",
                     o.routing.to_string() + (o.as_base ? " (run as the base model)" : ""));
    run.emplace_back("threshold", o.threshold
                                      ? export_support::number_text(*o.threshold) + " (overridden)"
                                      : export_support::number_text(m.sigmoid_threshold));
    run.emplace_back("pruned layers", o.prune.empty() ? "none" : format_pruning_plan(o.prune));
    run.emplace_back("seed", std::to_string(o.seed));
    run.emplace_back("chunk size", std::to_string(o.chunk_size));
    run.emplace_back(
        "device",
        o.device + (p.device.empty() || p.device == o.device ? "" : " (" + p.device + ")"));
    run.emplace_back("backend", o.backend);
    run.emplace_back("weights", p.dtype.empty() ? "not recorded" : p.dtype);
    run.emplace_back("CPU threads",
                     p.cpu_threads > 0 ? std::to_string(p.cpu_threads) : "not recorded");
    if (p.peak_device_bytes > 0)
        run.emplace_back("peak GPU memory", format_bytes(p.peak_device_bytes));
    run.emplace_back("per-token NLL", o.token_nll ? "measured" : "not measured (last row only)");

    Rows& results = tables[2];
    results.emplace_back("mean NLL", format_fixed(metrics.mean_nll, 4));
    results.emplace_back("perplexity", format_fixed(metrics.perplexity, 3));
    results.emplace_back("global attention",
                         format_percent(metrics.global_fraction_overall) + " of token-layers");
    std::string kv = format_bytes(metrics.kv_bytes_total) + " in " +
                     kv_element_text(p.options.kv_bytes_per_element);
    if (metrics.kv_bytes_without_l2a > 0) {
        kv += " (" +
              format_percent(static_cast<double>(metrics.kv_bytes_total) /
                             static_cast<double>(metrics.kv_bytes_without_l2a)) +
              " of " + format_bytes(metrics.kv_bytes_without_l2a) + " without L2A)";
    }
    results.emplace_back("KV cache", kv);
    // The run's wall time, not a time to first token: it covers the whole prefill and, when
    // one ran, the per-token NLL pass over every row's logits.
    results.emplace_back(
        "wall time of the run",
        format_duration(p.wall_seconds) +
            (!p.time_basis.empty() ? " (" + p.time_basis + ")"
             : p.options.token_nll ? " (one run measured end to end, per-token NLL pass included)"
                                   : " (one run measured end to end)"));
    if (p.wall_seconds > 0) {
        results.emplace_back("throughput",
                             format_fixed(static_cast<double>(p.num_tokens()) / p.wall_seconds, 1) +
                                 " tokens/s over the whole run");
    }
    results.emplace_back("timeline", !p.timeline_source.empty() ? p.timeline_source
                                     : p.ranges.empty()         ? "not recorded"
                                                                : "host timers only");
    results.emplace_back(
        "kernels",
        std::to_string(summary.kernels) + " (" + std::to_string(summary.unattributed_kernels) +
            " outside any range), " +
            std::to_string(std::count_if(p.memory_ops.begin(), p.memory_ops.end(),
                                         [](const MemoryOpRecord& m) { return m.rank == 0; })) +
            " memory operations");
    results.emplace_back("created", p.created_at + " by l2a " + p.tool_version);
    return tables;
}

std::vector<LayerBar> layer_bars(const Profile& p) {
    std::vector<LayerBar> bars;
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        LayerBar bar;
        bar.layer = layer;
        bar.fraction = export_support::global_fraction(p, layer);
        bar.pruned = export_support::is_pruned(p, layer);
        bar.title = "layer " + std::to_string(layer) + ": " + format_percent(bar.fraction) +
                    " of tokens global" + (bar.pruned ? " (pruned)" : "");
        bars.push_back(std::move(bar));
    }
    return bars;
}

double bar_axis_max(const std::vector<LayerBar>& bars) {
    double most = 0.0;
    for (const LayerBar& b : bars) {
        if (std::isfinite(b.fraction)) most = std::max(most, b.fraction);
    }
    for (double top : {0.01, 0.02, 0.04, 0.1, 0.2, 0.4}) {
        if (most <= top) return top;
    }
    return 1.0;
}

std::string axis_label(double axis_max, int tick) {
    // In hundredths of a percent, so that 0.25% and 7.5% print exactly.
    const auto basis = static_cast<std::int64_t>(std::llround(axis_max * 10000.0 * tick / 4.0));
    std::string text = std::to_string(basis / 100);
    if (basis % 100 != 0) {
        text += "." + std::to_string(basis % 100 / 10);
        if (basis % 10 != 0) text += std::to_string(basis % 10);
    }
    return text + "%";
}

RoutingGrid routing_grid(const Profile& p, std::int64_t max_columns, std::int64_t max_rows) {
    RoutingGrid grid;
    const std::int64_t tokens = p.num_tokens(), layers = p.num_layers;
    if (tokens == 0 || layers == 0) return grid;
    grid.columns = std::min<std::int64_t>(tokens, max_columns);
    grid.rows = std::min<std::int64_t>(layers, max_rows);
    grid.level.assign(static_cast<std::size_t>(grid.columns * grid.rows), 0);
    for (std::int64_t row = 0; row < grid.rows; ++row) {
        const std::int64_t l0 = row * layers / grid.rows, l1 = (row + 1) * layers / grid.rows;
        grid.first_layer.push_back(l0);
        for (std::int64_t col = 0; col < grid.columns; ++col) {
            const std::int64_t t0 = col * tokens / grid.columns;
            const std::int64_t t1 = (col + 1) * tokens / grid.columns;
            std::int64_t routed = 0;
            for (std::int64_t l = l0; l < l1; ++l) {
                const std::uint8_t* d = p.decisions.data() + l * tokens;
                for (std::int64_t t = t0; t < t1; ++t) routed += d[t] != 0;
            }
            if (routed == 0) continue;
            const double share =
                static_cast<double>(routed) / static_cast<double>((l1 - l0) * (t1 - t0));
            grid.level[static_cast<std::size_t>(row * grid.columns + col)] =
                static_cast<std::uint8_t>(1 + static_cast<int>(std::floor(share * 7.0)));
        }
    }
    grid.note =
        "Rows: layers (top: layer 0); columns: tokens. Red: tokens that ran global "
        "attention, darker where more of the cell did.";
    if (grid.columns < tokens || grid.rows < layers) {
        grid.note += " Downsampled to " + std::to_string(grid.columns) + " x " +
                     std::to_string(grid.rows) + " cells of up to " +
                     std::to_string((tokens + grid.columns - 1) / grid.columns) + " tokens x " +
                     std::to_string((layers + grid.rows - 1) / grid.rows) +
                     " layers; a cell with any routed token is coloured.";
    }
    return grid;
}

double level_opacity(int level) { return 0.3 + 0.7 * (level - 1) / 7.0; }

Oracle oracle(const Profile& p, std::size_t max_missed) {
    Oracle o;
    if (p.distant_mass.empty()) return o;
    o.present = true;
    o.min_mass = p.oracle_min_mass;
    const std::string share = mass_share(o.min_mass);
    o.explanation =
        "A token needs global attention when at least " + share +
        " of its global query's attention (mean over heads) falls on tokens older than the "
        "local window" +
        (p.model.sliding_window > 0 ? " of " + std::to_string(p.model.sliding_window) + " tokens"
                                    : std::string()) +
        "; AUC: how well the router logit ranks those tokens above the others (0.5 is chance, "
        "1 a perfect ranking); precision and recall: of the router's decisions for them; "
        "distant mass: that share of attention, averaged over the routed and the local tokens; "
        "ratio: routed over local; ceiling: the ratio of the best choice of as many tokens (near "
        "1: the layer looks far for every token alike, and no router could do better); "
        "positives: the tokens that need global attention.";
    const auto T = static_cast<std::size_t>(p.num_tokens());
    std::int64_t local_positives = 0;
    bool any_pruned = false;
    for (std::int64_t layer = 0; layer < p.num_layers; ++layer) {
        const std::size_t row = static_cast<std::size_t>(layer) * T;
        OracleLayer r;
        r.layer = layer;
        r.routed = export_support::global_fraction(p, layer);
        r.pruned = export_support::is_pruned(p, layer);
        r.scores = score_layer({p.distant_mass.data() + row, T}, {p.router_logits.data() + row, T},
                               {p.decisions.data() + row, T}, o.min_mass, max_missed);
        // A pruned layer runs no global attention by the user's choice, not the router's.
        any_pruned = any_pruned || r.pruned;
        if (!r.pruned) {
            for (std::size_t t = 0; t < T; ++t) {
                local_positives +=
                    p.decisions[row + t] == 0 && p.distant_mass[row + t] >= o.min_mass;
            }
            for (const std::int64_t t : r.scores.missed) {
                o.missed.push_back({layer, t, p.distant_mass[row + static_cast<std::size_t>(t)],
                                    token_line(p, t)});
            }
        }
        o.layers.push_back(std::move(r));
    }
    std::stable_sort(
        o.missed.begin(), o.missed.end(),
        [](const MissedToken& a, const MissedToken& b) { return a.distant_mass > b.distant_mass; });
    if (o.missed.size() > max_missed) o.missed.resize(max_missed);
    const std::string where = any_pruned ? " (pruned layers aside)" : "";
    if (o.missed.empty()) {
        o.missed_note = "No token that ran local attention reached a distant mass of " + share +
                        where + ": the router missed none.";
    } else {
        o.missed_note = group_digits(local_positives) +
                        (local_positives == 1 ? " token-layer" : " token-layers") +
                        " ran local attention though at least " + share +
                        " of the token's global attention falls past the window" + where +
                        "; the " + std::to_string(o.missed.size()) +
                        " with the highest distant mass:";
    }
    return o;
}

std::string oracle_scope(const Oracle& base, const Profile* variant, const Oracle& scored) {
    if (!variant || !base.present) return {};
    if (!scored.present) {
        return "This report's run only: the variant (--compare) has no routing oracle.";
    }
    return "This report's run first, then the variant's (--compare)" +
           (scored.min_mass != base.min_mass
                ? std::string(", whose tokens need global attention from a distant mass of ") +
                      mass_share(scored.min_mass)
                : std::string()) +
           ".";
}

std::vector<std::string> oracle_header() {
    return {"layer",
            "routed",
            "AUC",
            "precision",
            "recall",
            "distant mass routed",
            "distant mass local",
            "ratio",
            "ceiling",
            "positives"};
}

std::vector<std::string> oracle_cells(const OracleLayer& row) {
    const LayerOracle& s = row.scores;
    return {std::to_string(row.layer) + (row.pruned ? " (pruned)" : ""),
            format_percent(row.routed),
            format_fixed(s.auc, 3),
            format_fixed(s.precision, 3),
            format_fixed(s.recall, 3),
            format_fixed(s.mean_distant_mass_routed, 3),
            format_fixed(s.mean_distant_mass_local, 3),
            format_fixed(s.ratio, 2),
            format_fixed(s.ceiling_ratio, 2),
            group_digits(s.positives)};
}

std::vector<std::string> missed_header() { return {"layer", "token", "distant mass", "text"}; }

std::vector<std::string> missed_cells(const MissedToken& token) {
    return {std::to_string(token.layer), std::to_string(token.token),
            format_fixed(token.distant_mass, 3), "\"" + token.text + "\""};
}

double timing_scale(const TimelineSummary& s) {
    double most = 0.0;
    for (const LayerTiming& layer : s.layers) {
        double stacked = 0.0;
        for (const PhaseTime& phase : layer.phases) stacked += phase.seconds;
        most = std::max({most, stacked, layer.seconds});
    }
    if (!(most > 0.0) || !std::isfinite(most)) return 0.0;
    // The smallest round step of which four reach the tallest bar.
    return 4.0 * round_step(most / 4.0);
}

std::string timing_tick(double scale, int tick) {
    if (tick == 0) return "0";
    const double seconds = scale * tick / 4.0;
    // In each unit the fewest decimals that show the value exactly; format_duration picks the
    // unit.
    const double magnitude = std::abs(seconds);
    return format_duration(seconds,
                           {exact_decimals(magnitude, 3), exact_decimals(magnitude * 1e3, 3),
                            exact_decimals(magnitude * 1e6, 3)});
}

std::vector<StageRow> stage_rows(const TimelineSummary& s) {
    std::vector<StageRow> rows;
    for (const StageTiming& stage : s.stages) {
        rows.push_back({stage.name, stage.seconds, stage.share, stage.kernels});
    }
    double layer_seconds = 0.0;
    std::int64_t layer_kernels = 0;
    for (const LayerTiming& layer : s.layers) {
        layer_seconds += layer.seconds;
        layer_kernels += layer.kernels;
    }
    rows.push_back({"all layers", layer_seconds,
                    s.run_seconds > 0 ? layer_seconds / s.run_seconds : 0.0, layer_kernels});
    rows.push_back({"whole run", s.run_seconds, 1.0, s.kernels});
    return rows;
}

std::string phase_title(const LayerTiming& layer, int phase) {
    const PhaseTime& t = layer.phases[phase];
    return range_name(kLayerPhases[phase], static_cast<std::int32_t>(layer.layer)) + ": " +
           format_duration(t.seconds) + ", " + std::to_string(t.kernels) + " kernels";
}

std::vector<std::string> timing_differences(const Profile& base, const Profile& v) {
    std::vector<std::string> out;
    const RunOptions &a = base.options, &b = v.options;
    if (a.device != b.device) {
        out.push_back("device " + a.device + " vs " + b.device);
    } else if (!base.device.empty() && !v.device.empty() && base.device != v.device) {
        out.push_back("device " + base.device + " vs " + v.device);
    }
    if (a.backend != b.backend) out.push_back("backend " + a.backend + " vs " + b.backend);
    // Weights in another precision run other kernels; "" in profiles written before format 4.
    if (!base.dtype.empty() && !v.dtype.empty() && base.dtype != v.dtype) {
        out.push_back("weights " + base.dtype + " vs " + v.dtype);
    }
    // Threads matter on the CPU; a profile written before they were recorded says 0.
    if (base.cpu_threads != v.cpu_threads && (base.cpu_threads > 0 || v.cpu_threads > 0)) {
        auto threads = [](std::int64_t n) {
            return n > 0 ? std::to_string(n) : std::string("unrecorded");
        };
        out.push_back(threads(base.cpu_threads) + " vs " + threads(v.cpu_threads) + " CPU threads");
    }
    // A what-if variant's time is composed (base layers reused from another run of the base +
    // a re-run): not the same measurement as one run timed end to end.
    if (base.time_basis != v.time_basis) {
        auto basis = [](const Profile& p) {
            return p.time_basis.empty() ? std::string("one run measured end to end") : p.time_basis;
        };
        out.push_back("time of " + basis(base) + " vs " + basis(v));
    }
    if (a.token_nll != b.token_nll) {
        out.push_back(std::string("per-token NLL pass ") + (a.token_nll ? "run" : "not run") +
                      " vs " + (b.token_nll ? "run" : "not run"));
    }
    return out;
}

Comparison comparison(const Profile& base, const Profile& v, std::int64_t max_bins) {
    Comparison c;
    c.not_comparable = timing_differences(base, v);
    c.variant_description =
        v.document_path + " run with routing " + v.options.routing.to_string() +
        ", pruned layers " +
        (v.options.prune.empty() ? "none" : format_pruning_plan(v.options.prune)) +
        (v.options.threshold ? ", threshold " + export_support::number_text(*v.options.threshold)
                             : std::string()) +
        ".";
    c.metrics = {
        {"mean NLL", base.metrics.mean_nll, v.metrics.mean_nll, 4, {}},
        {"perplexity", base.metrics.perplexity, v.metrics.perplexity, 3, {}},
        {"global attention (%)",
         100 * base.metrics.global_fraction_overall,
         100 * v.metrics.global_fraction_overall,
         2,
         {}},
        {"KV cache (MiB)",
         static_cast<double>(base.metrics.kv_bytes_total) / (1 << 20),
         static_cast<double>(v.metrics.kv_bytes_total) / (1 << 20),
         3,
         {}},
        {"wall time of the run (s)", base.wall_seconds, v.wall_seconds, 4, {}},
    };
    // The KV sizes assume a cache precision; the run's wall time (which includes the per-token
    // NLL pass when one ran) depends on where and how it ran.
    if (base.options.kv_bytes_per_element != v.options.kv_bytes_per_element) {
        c.metrics[3].not_comparable =
            "not comparable: " + std::to_string(base.options.kv_bytes_per_element) + " vs " +
            std::to_string(v.options.kv_bytes_per_element) + " bytes per cached element";
    }
    if (!c.not_comparable.empty()) {
        std::string why;
        for (const std::string& d : c.not_comparable) why += (why.empty() ? "" : "; ") + d;
        c.metrics[4].not_comparable = "not comparable: " + why;
    }

    const std::int64_t tokens = base.num_tokens();
    std::vector<double> delta(static_cast<std::size_t>(tokens),
                              std::numeric_limits<double>::quiet_NaN());
    double worst = 0.0, best = 0.0;
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
        best = std::min(best, d);
    }
    const std::int64_t columns =
        std::max<std::int64_t>(1, std::min<std::int64_t>(tokens, max_bins));
    c.nll_bins.assign(static_cast<std::size_t>(columns), 0.0);
    c.nll_beyond.assign(static_cast<std::size_t>(columns), 0);
    std::vector<double> high(static_cast<std::size_t>(columns), 0.0);
    std::vector<double> low(static_cast<std::size_t>(columns), 0.0);
    for (std::int64_t col = 0; col < columns; ++col) {
        const std::int64_t t0 = col * tokens / columns, t1 = (col + 1) * tokens / columns;
        c.nll_bin_tokens = std::max(c.nll_bin_tokens, t1 - t0);
        double sum = 0.0;
        std::int64_t n = 0;
        for (std::int64_t t = t0; t < t1; ++t) {
            const double d = delta[static_cast<std::size_t>(t)];
            if (std::isfinite(d)) {
                sum += d;
                ++n;
                high[static_cast<std::size_t>(col)] =
                    std::max(high[static_cast<std::size_t>(col)], d);
                low[static_cast<std::size_t>(col)] =
                    std::min(low[static_cast<std::size_t>(col)], d);
            }
        }
        double& bin = c.nll_bins[static_cast<std::size_t>(col)];
        bin = n ? sum / static_cast<double>(n) : 0.0;
        c.nll_scale = std::max(c.nll_scale, std::abs(bin));
    }
    // A bar is the mean of its bin, so single tokens can lie beyond the scale: those bins are
    // marked, and the chart says so (it would otherwise read as if nothing went further).
    for (std::size_t col = 0; col < high.size(); ++col) {
        const double limit = c.nll_scale * (1.0 + 1e-9);
        std::uint8_t& flag = c.nll_beyond[col];
        if (high[col] > limit) flag |= kBeyondAbove;
        if (low[col] < -limit) flag |= kBeyondBelow;
        c.nll_beyond_bins += flag != 0;
    }
    c.nll_axis = c.nll_bin_tokens > 1 ? "mean NLL change per bin of up to " +
                                            std::to_string(c.nll_bin_tokens) + " tokens"
                                      : "NLL change per token";
    if (c.nll_beyond_bins > 0) {
        std::string reach;
        if (worst > c.nll_scale) reach = "up to +" + format_fixed(worst, 3);
        if (best < -c.nll_scale)
            reach += (reach.empty() ? "down to " : " and down to ") + format_fixed(best, 3);
        c.nll_clip_note = "Clipped: the scale ends at ±" + format_fixed(c.nll_scale, 3) +
                          " (the largest bin mean); single tokens in " +
                          std::to_string(c.nll_beyond_bins) +
                          (c.nll_beyond_bins == 1 ? " bin" : " bins") + " go beyond it, " + reach +
                          " (marked at the chart's edge).";
    }
    c.nll_note = std::to_string(worse) + " tokens got worse, " + std::to_string(better) +
                 " better (red: higher NLL in the variant).";
    if (worst_at >= 0 && worst > 0) {
        const auto i = static_cast<std::size_t>(worst_at);
        std::string piece;
        const std::size_t b = char_boundary(base.document_text, base.token_begin[i]);
        const std::size_t e = std::max(b, char_boundary(base.document_text, base.token_end[i]));
        sanitize_utf8(std::string_view(base.document_text).substr(b, e - b), piece);
        c.nll_note += " Largest increase: +" + format_fixed(worst, 4) + " at token " +
                      std::to_string(worst_at) + " (\"" + piece + "\").";
    }

    for (std::int64_t layer = 0; layer < base.num_layers; ++layer) {
        LayerChange row;
        row.layer = layer;
        for (std::int64_t t = 0; t < tokens; ++t) {
            const auto i = static_cast<std::size_t>(layer * tokens + t);
            row.changed += (base.decisions[i] != 0) != (v.decisions[i] != 0);
        }
        row.base = export_support::global_fraction(base, layer);
        row.variant = export_support::global_fraction(v, layer);
        const bool pa = export_support::is_pruned(base, layer);
        const bool pb = export_support::is_pruned(v, layer);
        row.pruned = pa == pb ? (pa ? "both" : "") : (pa ? "base only" : "variant only");
        c.layers.push_back(std::move(row));
    }
    return c;
}

DocumentExcerpt document_excerpt(const Profile& p, std::size_t budget_bytes,
                                 std::int64_t context_tokens) {
    DocumentExcerpt out;
    const std::string& text = p.document_text;
    const std::int64_t tokens = p.num_tokens(), layers = p.num_layers;
    if (text.empty()) return out;
    out.has_text = true;
    // Score: the layers in which a token ran global attention.
    std::vector<std::int64_t> score(static_cast<std::size_t>(tokens), 0);
    for (std::int64_t l = 0; l < layers; ++l) {
        for (std::int64_t t = 0; t < tokens; ++t) {
            score[static_cast<std::size_t>(t)] +=
                p.decisions[static_cast<std::size_t>(l * tokens + t)] != 0;
        }
    }
    // Highlighted: the top tenth of tokens by score, when that singles anything out; with
    // sparser routing (fewer than a tenth of the tokens route anywhere), every token that ran
    // global attention in at least one layer.
    std::vector<std::int64_t> sorted = score;
    std::sort(sorted.begin(), sorted.end());
    const std::int64_t top = sorted.empty() ? 0 : sorted.back();
    const std::int64_t threshold =
        std::max<std::int64_t>(1, sorted.empty() ? 0 : sorted[(sorted.size() - 1) * 9 / 10]);
    const bool l2a_run = p.model.is_l2a && !p.options.as_base;
    const bool distinctive = l2a_run && !sorted.empty() && sorted.front() < sorted.back();
    auto highlighted = [&](std::int64_t t) {
        return distinctive && score[static_cast<std::size_t>(t)] >= threshold;
    };

    // Which tokens are shown: all of them, or windows around the best passages.
    std::vector<char> shown(static_cast<std::size_t>(tokens), 1);
    bool trimmed = false;
    if (text.size() > budget_bytes && tokens > 0) {
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
            if (used >= budget_bytes) break;
            const std::int64_t a = std::max<std::int64_t>(0, t - context_tokens);
            const std::int64_t b = std::min(tokens, t + context_tokens + 1);
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
    std::vector<DocumentPiece>& pieces = out.pieces;
    auto add_text = [&](std::string_view piece) {
        if (piece.empty()) return;
        if (pieces.empty() || pieces.back().kind != DocumentPiece::Kind::Text) {
            pieces.push_back({DocumentPiece::Kind::Text, {}, 0, {}});
        }
        pieces.back().text += piece;
        shown_bytes += piece.size();
    };
    bool in_mark = false;
    std::size_t cursor = 0;
    for (std::int64_t t = 0; t < tokens;) {
        if (!shown[static_cast<std::size_t>(t)]) {
            std::int64_t end = t;
            while (end < tokens && !shown[static_cast<std::size_t>(end)]) ++end;
            in_mark = false;
            pieces.push_back({DocumentPiece::Kind::Gap,
                              "[… " + std::to_string(end - t) + " tokens omitted …]",
                              0,
                              {}});
            cursor = std::max(cursor,
                              char_boundary(text, p.token_end[static_cast<std::size_t>(end - 1)]));
            t = end;
            continue;
        }
        const auto i = static_cast<std::size_t>(t);
        const std::size_t b = std::max(cursor, char_boundary(text, p.token_begin[i]));
        const std::size_t e = std::max(b, char_boundary(text, p.token_end[i]));
        if (b > cursor) {
            in_mark = false;
            add_text(std::string_view(text).substr(cursor, b - cursor));
        }
        const std::string_view piece = std::string_view(text).substr(b, e - b);
        if (highlighted(t)) {
            if (!in_mark) {
                const std::int64_t s = score[i];
                const int level = 1 + static_cast<int>(4 * (s - threshold) / (top - threshold + 1));
                pieces.push_back({DocumentPiece::Kind::Mark,
                                  {},
                                  std::clamp(level, 1, 4),
                                  "from token " + std::to_string(t) + ": global in " +
                                      std::to_string(s) + " of " + std::to_string(layers) +
                                      " layers"});
                in_mark = true;
                ++passages;
            }
            pieces.back().text += piece;
            shown_bytes += piece.size();
        } else {
            in_mark = false;
            add_text(piece);
        }
        cursor = e;
        ++t;
    }
    if (cursor < text.size() && (!trimmed || shown.back())) {
        add_text(std::string_view(text).substr(cursor));
    }

    if (distinctive && threshold == 1) {
        out.note = "Highlighted: the tokens that ran global attention in at least 1 of " +
                   std::to_string(layers) + " layers (" + std::to_string(passages) +
                   " passages), darker where more.";
    } else if (distinctive) {
        out.note =
            "Highlighted: the tokens that ran global attention in the most layers (at "
            "least " +
            std::to_string(threshold) + " of " + std::to_string(layers) + "; " +
            std::to_string(passages) + " passages), darker where more.";
    } else if (!l2a_run) {
        out.note =
            "A plain model (or a base run): every token runs global attention, nothing is "
            "highlighted.";
    } else if (top == 0) {
        out.note = "No token ran global attention in any layer: nothing is highlighted.";
    } else {
        out.note = "No tokens stand out: every token ran global attention in " +
                   std::to_string(top) + " of " + std::to_string(layers) + " layers.";
    }
    if (trimmed) {
        out.note += " The document has " + std::to_string(text.size()) + " bytes; shown are " +
                    std::to_string(shown_bytes) +
                    " bytes around its most-routed passages, the rest is marked as omitted.";
    }
    return out;
}

}  // namespace l2a::report
