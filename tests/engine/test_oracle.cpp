// The routing oracle's scores (oracle.h): ROC-AUC on cases with a known ordering, and a layer's
// precision, recall, means, ratio and its ceiling, and missed tokens on a hand-made layer.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/oracle.h"

namespace {

TEST(Oracle, AucOfKnownOrderings) {
    const std::vector<std::uint8_t> labels = {0, 0, 1, 1};
    // Perfect, reversed, and one of four pairs in the wrong order.
    EXPECT_DOUBLE_EQ(l2a::roc_auc(std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f}, labels), 1.0);
    EXPECT_DOUBLE_EQ(l2a::roc_auc(std::vector<float>{0.4f, 0.3f, 0.2f, 0.1f}, labels), 0.0);
    EXPECT_DOUBLE_EQ(l2a::roc_auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, labels), 0.75);
    // Ties count half: every score equal is chance.
    EXPECT_DOUBLE_EQ(l2a::roc_auc(std::vector<float>{1, 1, 1, 1}, labels), 0.5);
    EXPECT_DOUBLE_EQ(l2a::roc_auc(std::vector<float>{0.1f, 0.3f, 0.3f, 0.9f}, labels), 0.875);
    // One class only, or a NaN score: undefined.
    EXPECT_TRUE(
        std::isnan(l2a::roc_auc(std::vector<float>{1, 2}, std::vector<std::uint8_t>{1, 1})));
    EXPECT_TRUE(std::isnan(l2a::roc_auc(std::vector<float>{NAN, 2, 3, 4}, labels)));
    EXPECT_THROW(l2a::roc_auc(std::vector<float>{1}, labels), l2a::Error);
}

TEST(Oracle, ALayersScores) {
    // Tokens 0-5: distant masses, router logits and decisions chosen by hand.
    const std::vector<float> mass = {0.0f, 0.9f, 0.6f, 0.2f, 0.7f, 0.1f};
    const std::vector<float> logits = {-3.0f, 2.0f, -1.0f, 0.5f, 1.0f, -2.0f};
    const std::vector<std::uint8_t> decisions = {0, 1, 0, 1, 1, 0};
    const l2a::LayerOracle o = l2a::score_layer(mass, logits, decisions, 0.5);
    EXPECT_EQ(o.positives, 3);  // tokens 1, 2, 4
    // Positives' logits 2, -1, 1 against negatives' -3, 0.5, -2: 8 of 9 pairs ordered (all but
    // -1 against 0.5).
    EXPECT_DOUBLE_EQ(o.auc, 8.0 / 9.0);
    EXPECT_DOUBLE_EQ(o.precision, 2.0 / 3.0);  // routed 1, 3, 4: two of them positive
    EXPECT_DOUBLE_EQ(o.recall, 2.0 / 3.0);     // positives 1, 2, 4: two of them routed
    EXPECT_NEAR(o.mean_distant_mass_routed, (0.9 + 0.2 + 0.7) / 3.0, 1e-7);
    EXPECT_NEAR(o.mean_distant_mass_local, (0.0 + 0.6 + 0.1) / 3.0, 1e-7);
    EXPECT_EQ(o.missed, std::vector<std::int64_t>{2});
    EXPECT_NEAR(o.ratio, 1.8 / 0.7, 1e-6);
    // The best three tokens to route: 0.9, 0.7, 0.6 against 0.2, 0.1, 0.0.
    EXPECT_NEAR(o.ceiling_ratio, (2.2 / 3.0) / (0.3 / 3.0), 1e-6);
    // Every token's distant mass the same: no router can do better than 1.
    const l2a::LayerOracle flat =
        l2a::score_layer(std::vector<float>(6, 0.8f), logits, decisions, 0.5);
    EXPECT_NEAR(flat.ratio, 1.0, 1e-6);
    EXPECT_NEAR(flat.ceiling_ratio, 1.0, 1e-6);

    // Nothing routed: no precision, no routed mean; every positive missed, highest first.
    const std::vector<std::uint8_t> none(6, 0);
    const l2a::LayerOracle n = l2a::score_layer(mass, logits, none, 0.5, 2);
    EXPECT_TRUE(std::isnan(n.precision));
    EXPECT_DOUBLE_EQ(n.recall, 0.0);
    EXPECT_TRUE(std::isnan(n.mean_distant_mass_routed));
    EXPECT_TRUE(std::isnan(n.ratio));
    EXPECT_TRUE(std::isnan(n.ceiling_ratio));
    EXPECT_EQ(n.missed, (std::vector<std::int64_t>{1, 4}));
    // The tokens left local have no distant mass: the ratio and its ceiling are unbounded.
    const std::vector<float> zeros_left = {0.0f, 0.9f, 0.0f, 0.2f, 0.7f, 0.0f};
    const l2a::LayerOracle unbounded = l2a::score_layer(zeros_left, logits, decisions, 0.5);
    EXPECT_TRUE(std::isinf(unbounded.ratio) && unbounded.ratio > 0);
    EXPECT_TRUE(std::isinf(unbounded.ceiling_ratio) && unbounded.ceiling_ratio > 0);
    // A NaN mass makes them undefined, never a wrong number.
    std::vector<float> with_nan = mass;
    with_nan[3] = NAN;
    EXPECT_TRUE(std::isnan(l2a::score_layer(with_nan, logits, decisions, 0.5).ceiling_ratio));
    // Every token routed: no local mean, no ratio.
    const l2a::LayerOracle all =
        l2a::score_layer(mass, logits, std::vector<std::uint8_t>(6, 1), 0.5);
    EXPECT_TRUE(std::isnan(all.ratio));
    EXPECT_TRUE(std::isnan(all.ceiling_ratio));
    EXPECT_THROW(l2a::score_layer(mass, logits, std::vector<std::uint8_t>(5), 0.5), l2a::Error);
}

}  // namespace
