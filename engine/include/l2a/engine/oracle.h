// The routing oracle's scores: how well a layer's router picks the tokens whose global query
// puts much of its attention on keys older than the local window ("distant mass", lens.h).
// Torch-free and cheap: computed from a profile's arrays whenever shown or exported.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace l2a {

// The oracle's default label: a token "needs" global attention when at least half of its
// global query's attention (mean over heads) falls on keys older than the window.
inline constexpr double kDefaultMinDistantMass = 0.5;

struct LayerOracle {
    // ROC-AUC of the router logit as a score for the label "distant mass >= min_mass" (ties
    // count half); NaN when every token has the same label or the layer has no router.
    double auc = 0.0;
    // Of the decisions that ran (1: global) against that label; NaN when undefined (no token
    // routed for precision, no positive token for recall).
    double precision = 0.0;
    double recall = 0.0;
    double mean_distant_mass_routed = 0.0;  // NaN when no token was routed
    double mean_distant_mass_local = 0.0;   // NaN when every token was routed
    // mean_distant_mass_routed / mean_distant_mass_local (NaN when either is NaN; +inf when the
    // local one is 0 and the routed one is not), and the same ratio for the best router that
    // routes as many tokens: the ones with the most distant mass (+inf when the rest have none). A
    // ceiling near 1 says the layer's global attention looks far for every token alike, so no
    // choice of tokens could single out those that need it; a ratio well under its ceiling says the
    // router could choose better.
    double ratio = 0.0;
    double ceiling_ratio = 0.0;
    std::int64_t positives = 0;  // tokens labelled as needing global attention
    // Local tokens (decision 0) with the highest distant mass, highest first (at most `missed`
    // of them, only those at or above min_mass).
    std::vector<std::int64_t> missed;
};

// `distant_mass`, `router_logits` and `decisions` hold one layer's tokens ([T] each); logits NaN
// (a plain layer) give a NaN AUC. Throws l2a::Error on sizes that disagree.
LayerOracle score_layer(std::span<const float> distant_mass, std::span<const float> router_logits,
                        std::span<const std::uint8_t> decisions, double min_mass,
                        std::size_t missed = 10);

// Every layer's scores, from [layers, tokens] arrays (row-major: a layer's tokens contiguous) as
// a profile holds them. Throws l2a::Error on sizes that disagree.
std::vector<LayerOracle> score_layers(std::span<const float> distant_mass,
                                      std::span<const float> router_logits,
                                      std::span<const std::uint8_t> decisions, std::int64_t layers,
                                      std::int64_t tokens, double min_mass);

// ROC-AUC of `scores` for binary `labels` (the Mann-Whitney statistic, ties counted half); NaN
// with no positive or no negative label, or a NaN score.
double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> labels);

}  // namespace l2a
