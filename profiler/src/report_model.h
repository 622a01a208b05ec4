// What the HTML and PDF reports show, computed once from a Profile and rendered by each: the
// run's facts, per-layer sparsity, the pooled routing map, the routing oracle, timings, the
// what-if comparison and the document's most-routed passages. Plain data, no markup.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "l2a/engine/oracle.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/units.h"

namespace l2a::report {

// Throws l2a::Error when the profile's arrays are inconsistent, or when `compare` is not a run
// of the same tokens through a model with as many layers.
void check_reportable(const Profile& profile, const Profile* compare);

// "L2A Studio report" subtitle: document, model, tokens, date.
std::string subtitle(const Profile& p);

// ---- run facts: three label/value tables (model and document; run options; results) ----------
using Rows = std::vector<std::pair<std::string, std::string>>;
std::vector<Rows> run_tables(const Profile& p, const TimelineSummary& summary);

// ---- sparsity per layer -----------------------------------------------------------------------
struct LayerBar {
    std::int64_t layer = 0;
    double fraction = 0.0;  // may be NaN
    bool pruned = false;
    std::string title;  // "layer 3: 21.0% of tokens global (pruned)"
};
std::vector<LayerBar> layer_bars(const Profile& p);
// The chart's vertical axis: the smallest of 1%, 2%, 4%, 10%, 20%, 40% and 100% that holds every
// bar, so that a sparse run's bars are not a hair's height. Its five gridlines are at 0, 1/4, ...,
// 1 of it; `axis_label(top, tick)` names gridline `tick` (0..4): "0%", "0.25%", "2%", "30%".
double bar_axis_max(const std::vector<LayerBar>& bars);
std::string axis_label(double axis_max, int tick);

// ---- routing map, max-pooled -----------------------------------------------------------------
// Each cell covers a block of tokens x layers; level 0: no routed token in it, 1..8: some, by
// the routed share (1 + floor(share * 7)), so that a routed token never disappears.
struct RoutingGrid {
    std::int64_t columns = 0;
    std::int64_t rows = 0;
    std::vector<std::uint8_t> level;        // [rows, columns]
    std::vector<std::int64_t> first_layer;  // [rows]
    std::string note;
};
RoutingGrid routing_grid(const Profile& p, std::int64_t max_columns, std::int64_t max_rows);
// Cell opacity for a level (1..8): 0.3 .. 1.0.
double level_opacity(int level);

// ---- routing oracle --------------------------------------------------------------------------
// Only for profiles with distant masses (`l2a oracle`): how well each layer's router picks the
// tokens whose global query looks past the local window, from score_layer (oracle.h).
struct OracleLayer {
    std::int64_t layer = 0;
    double routed = 0.0;  // share of tokens that ran global attention
    bool pruned = false;
    LayerOracle scores;
};
struct MissedToken {
    std::int64_t layer = 0;
    std::int64_t token = 0;
    double distant_mass = 0.0;
    std::string text;  // the token's text on one line, valid UTF-8 ("" without text)
};
struct Oracle {
    bool present = false;  // false: the profile has no distant masses, the section is left out
    double min_mass = 0.0;
    std::string explanation;  // what the oracle measures, in one sentence
    std::vector<OracleLayer> layers;
    // The local tokens with the highest distant mass over every layer the router decided
    // (pruned layers aside), highest first.
    std::vector<MissedToken> missed;
    std::string missed_note;
};
Oracle oracle(const Profile& p, std::size_t max_missed);
// With --compare: whose scores the section shows ("" without a variant).
std::string oracle_scope(const Oracle& base, const Profile* variant, const Oracle& scored);
// The tables as both reports print them: NaN reads "n/a".
std::vector<std::string> oracle_header();
std::vector<std::string> oracle_cells(const OracleLayer& row);
std::vector<std::string> missed_header();
std::vector<std::string> missed_cells(const MissedToken& token);

// ---- timing -----------------------------------------------------------------------------------
struct StageRow {
    std::string name;
    double seconds = 0.0;
    double share = 0.0;
    std::int64_t kernels = 0;
};
// The top of the time axis: the tallest stacked layer bar rounded up so that each of the axis's
// four ticks is a round duration (1, 2 or 5 times a power of ten: 0.3286 s -> 0.4 s, ticks 100,
// 200, 300 and 400 ms); 0 when nothing was timed.
double timing_scale(const TimelineSummary& s);
// Tick `tick` (0-4) of a time axis topped at `scale`: "0", then durations with no more decimals
// than the value needs ("100 ms", "2.5 ms", "1.5 s").
std::string timing_tick(double scale, int tick);
// The stages outside the layers, then "all layers" and "whole run".
std::vector<StageRow> stage_rows(const TimelineSummary& s);
std::string phase_title(const LayerTiming& layer, int phase);

// ---- what-if comparison -----------------------------------------------------------------------
struct MetricRow {
    std::string name;
    double base = 0.0;
    double variant = 0.0;
    int digits = 3;
    // Set where the two values must not be set against each other: the change column shows
    // this ("not comparable: 2 vs 1 CPU threads") instead of a difference.
    std::string not_comparable;
};
struct LayerChange {
    std::int64_t layer = 0;
    double base = 0.0;
    double variant = 0.0;
    std::int64_t changed = 0;  // tokens decided differently
    std::string pruned;        // "", "both", "base only", "variant only"
};
// Bits of Comparison::nll_beyond: a single token of the bin lies above +scale / below -scale.
inline constexpr std::uint8_t kBeyondAbove = 1;
inline constexpr std::uint8_t kBeyondBelow = 2;
struct Comparison {
    std::string variant_description;  // "file run with routing ..., pruned layers ..."
    // How the two runs' settings differ where that changes their timings ("device cpu vs
    // cuda:0", "2 vs 1 CPU threads"); empty when the times can be set against each other.
    std::vector<std::string> not_comparable;
    std::vector<MetricRow> metrics;
    std::vector<double> nll_bins;     // mean NLL change per bin of tokens
    double nll_scale = 0.0;           // the chart's scale: max |bin|
    std::int64_t nll_bin_tokens = 1;  // the most tokens in one bin
    // Per bin, kBeyondAbove / kBeyondBelow where a single token's change lies outside +-scale:
    // the chart marks those bins at its edge and says that it is clipped.
    std::vector<std::uint8_t> nll_beyond;
    std::int64_t nll_beyond_bins = 0;
    std::string nll_axis;       // what a bar is: "mean NLL change per bin of up to 7 tokens"
    std::string nll_clip_note;  // "" when no single token lies beyond the scale
    std::string nll_note;       // "N tokens got worse, M better ... Largest increase ..."
    std::vector<LayerChange> layers;
};
// The settings that make two runs' timings incomparable, as "what: base vs variant" phrases.
std::vector<std::string> timing_differences(const Profile& base, const Profile& variant);
Comparison comparison(const Profile& base, const Profile& variant, std::int64_t max_bins);

// ---- the document -----------------------------------------------------------------------------
struct DocumentPiece {
    enum class Kind { Text, Mark, Gap };
    Kind kind = Kind::Text;
    std::string text;   // valid UTF-8 (Gap: "[… 120 tokens omitted …]")
    int level = 0;      // Mark: 1..4, darker where more layers routed it
    std::string title;  // Mark: "from token 12: global in 5 of 8 layers"
};
struct DocumentExcerpt {
    bool has_text = false;
    std::vector<DocumentPiece> pieces;
    std::string note;
};
// The whole text, or (past `budget_bytes`) windows of `context_tokens` around its most-routed
// passages; highlighted: the top tenth of tokens by the number of layers that routed them.
DocumentExcerpt document_excerpt(const Profile& p, std::size_t budget_bytes,
                                 std::int64_t context_tokens);

}  // namespace l2a::report
