#include "l2a/engine/oracle.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>

#include "l2a/engine/error.h"

namespace l2a {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

}  // namespace

double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> labels) {
    if (scores.size() != labels.size()) {
        fail("", "oracle: " + std::to_string(scores.size()) + " scores for " +
                     std::to_string(labels.size()) + " labels");
    }
    const std::size_t n = scores.size();
    std::size_t positives = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (std::isnan(scores[i])) return kNan;
        positives += labels[i] != 0;
    }
    const std::size_t negatives = n - positives;
    if (positives == 0 || negatives == 0) return kNan;
    // Mann-Whitney: the sum of the positives' ranks (ties share their mean rank).
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    double rank_sum = 0.0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && scores[order[j]] == scores[order[i]]) ++j;
        const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
        for (std::size_t k = i; k < j; ++k) {
            if (labels[order[k]] != 0) rank_sum += mean_rank;
        }
        i = j;
    }
    const double p = static_cast<double>(positives);
    return (rank_sum - p * (p + 1.0) / 2.0) / (p * static_cast<double>(negatives));
}

LayerOracle score_layer(std::span<const float> distant_mass, std::span<const float> router_logits,
                        std::span<const std::uint8_t> decisions, double min_mass,
                        std::size_t missed) {
    const std::size_t n = distant_mass.size();
    if (router_logits.size() != n || decisions.size() != n) {
        fail("", "oracle: a layer's arrays disagree (" + std::to_string(n) + " distant masses, " +
                     std::to_string(router_logits.size()) + " router logits, " +
                     std::to_string(decisions.size()) + " decisions)");
    }
    LayerOracle o;
    std::vector<std::uint8_t> labels(n);
    double routed_sum = 0.0, local_sum = 0.0;
    std::int64_t routed = 0, true_positive = 0;
    for (std::size_t t = 0; t < n; ++t) {
        labels[t] = distant_mass[t] >= min_mass ? 1 : 0;
        o.positives += labels[t];
        if (decisions[t] != 0) {
            ++routed;
            routed_sum += distant_mass[t];
            true_positive += labels[t];
        } else {
            local_sum += distant_mass[t];
        }
    }
    const auto local = static_cast<std::int64_t>(n) - routed;
    o.auc = roc_auc(router_logits, labels);
    o.precision =
        routed > 0 ? static_cast<double>(true_positive) / static_cast<double>(routed) : kNan;
    o.recall = o.positives > 0
                   ? static_cast<double>(true_positive) / static_cast<double>(o.positives)
                   : kNan;
    o.mean_distant_mass_routed = routed > 0 ? routed_sum / static_cast<double>(routed) : kNan;
    o.mean_distant_mass_local = local > 0 ? local_sum / static_cast<double>(local) : kNan;
    // A ratio over a local mean of 0 (every token left local is within the first window, or
    // looks no further) is unbounded: +inf when the routed mean is above 0.
    const auto ratio_of = [](double routed_mean, double local_mean) {
        if (!std::isfinite(routed_mean) || !std::isfinite(local_mean)) return kNan;
        if (local_mean > 0) return routed_mean / local_mean;
        return routed_mean > 0 ? std::numeric_limits<double>::infinity() : kNan;
    };
    o.ratio = ratio_of(o.mean_distant_mass_routed, o.mean_distant_mass_local);
    o.ceiling_ratio = kNan;
    // A NaN mass makes the sum NaN (and would break the ordering nth_element needs).
    const double total = routed_sum + local_sum;
    if (routed > 0 && local > 0 && std::isfinite(total)) {
        std::vector<float> sorted(distant_mass.begin(), distant_mass.end());
        const auto k = static_cast<std::ptrdiff_t>(routed);
        std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(),
                         std::greater<float>());
        const double top = std::accumulate(sorted.begin(), sorted.begin() + k, 0.0);
        o.ceiling_ratio = ratio_of(top / static_cast<double>(routed),
                                   std::max(0.0, total - top) / static_cast<double>(local));
    }
    std::vector<std::int64_t> candidates;
    for (std::size_t t = 0; t < n; ++t) {
        if (decisions[t] == 0 && labels[t] != 0) candidates.push_back(static_cast<std::int64_t>(t));
    }
    std::stable_sort(candidates.begin(), candidates.end(), [&](std::int64_t a, std::int64_t b) {
        return distant_mass[static_cast<std::size_t>(a)] >
               distant_mass[static_cast<std::size_t>(b)];
    });
    if (candidates.size() > missed) candidates.resize(missed);
    o.missed = std::move(candidates);
    return o;
}

std::vector<LayerOracle> score_layers(std::span<const float> distant_mass,
                                      std::span<const float> router_logits,
                                      std::span<const std::uint8_t> decisions, std::int64_t layers,
                                      std::int64_t tokens, double min_mass) {
    const auto size = static_cast<std::size_t>(std::max<std::int64_t>(layers, 0) *
                                               std::max<std::int64_t>(tokens, 0));
    if (distant_mass.size() != size || router_logits.size() != size || decisions.size() != size) {
        fail("", "oracle: arrays of " + std::to_string(distant_mass.size()) + ", " +
                     std::to_string(router_logits.size()) + " and " +
                     std::to_string(decisions.size()) + " values for " + std::to_string(layers) +
                     " layers x " + std::to_string(tokens) + " tokens");
    }
    std::vector<LayerOracle> out;
    const auto T = static_cast<std::size_t>(tokens);
    for (std::int64_t l = 0; l < layers; ++l) {
        const std::size_t row = static_cast<std::size_t>(l) * T;
        out.push_back(score_layer(distant_mass.subspan(row, T), router_logits.subspan(row, T),
                                  decisions.subspan(row, T), min_mass));
    }
    return out;
}

}  // namespace l2a
