// What-if analysis: residual-stream checkpoints, re-runs from a layer, the comparison and the
// greedy pruning suggestion, on the demo model.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/whatif.h"
#include "scoped_env.h"
#include "test_support.h"

namespace {

const l2a::Model& demo_model() {
    static const l2a::Model model = [] {
        const auto dir = std::filesystem::path(L2A_TEST_WORK_DIR) / "whatif" / "demo";
        return l2a::Model::load(l2a::ensure_untrained_model(dir));
    }();
    return model;
}

std::vector<std::int32_t> some_tokens(std::size_t n) {
    std::vector<std::int32_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
    return ids;
}

// Rows [first, last) of a [layers, T] array.
template <typename T>
std::vector<T> layer_rows(const std::vector<T>& all, std::size_t tokens, std::size_t first,
                          std::size_t last) {
    return std::vector<T>(all.begin() + static_cast<std::ptrdiff_t>(first * tokens),
                          all.begin() + static_cast<std::ptrdiff_t>(last * tokens));
}

// Bitwise equality, NaN included.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b);
bool same_bits(const l2a::HiddenState& a, const l2a::HiddenState& b) {
    return same_bits(a.host(), b.host());
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tolerance,
                  const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) || std::isnan(b[i])) {
            EXPECT_EQ(std::isnan(a[i]), std::isnan(b[i])) << what << " at " << i;
            continue;
        }
        EXPECT_NEAR(a[i], b[i], tolerance) << what << " at " << i;
    }
}

constexpr std::size_t kTokens = 300;

TEST(WhatIf, CheckpointsHoldEveryLayerAndTheFinalState) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    const auto L = static_cast<std::size_t>(model.config().num_hidden_layers);
    const auto d = static_cast<std::size_t>(model.config().hidden_size);
    ASSERT_EQ(base.checkpoints.entering.size(), L);
    for (const auto& state : base.checkpoints.entering) EXPECT_EQ(state.size(), kTokens * d);
    EXPECT_EQ(base.checkpoints.final_hidden.size(), kTokens * d);
    // Each layer changes the state.
    EXPECT_FALSE(same_bits(base.checkpoints.entering[0], base.checkpoints.entering[1]));
    EXPECT_FALSE(same_bits(base.checkpoints.entering[L - 1], base.checkpoints.final_hidden));

    // Only the chosen layers are kept when asked for some.
    l2a::ResidualCheckpoints some;
    some.layers = {2};
    l2a::PrefillHooks hooks;
    hooks.checkpoints = &some;
    const auto plain = l2a::run_prefill(model, tokens, {}, hooks);
    EXPECT_TRUE(some.entering[0].empty());
    EXPECT_TRUE(same_bits(some.entering[2], base.checkpoints.entering[2]));
    EXPECT_TRUE(same_bits(some.final_hidden, base.checkpoints.final_hidden));
    // Keeping checkpoints does not change the run.
    EXPECT_TRUE(same_bits(plain.token_nll, base.result.token_nll));
}

TEST(WhatIf, NoChangeGivesZeroDeltaAndZeroKlExactly) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    const auto variant = l2a::run_whatif_variant(model, tokens, base, base.options);
    EXPECT_EQ(variant.start_layer, model.config().num_hidden_layers);
    const auto c = l2a::compare(model, tokens, base, variant);
    EXPECT_EQ(c.delta_mean_nll, 0.0);
    EXPECT_EQ(c.delta_perplexity, 0.0);
    EXPECT_EQ(c.kl_mean, 0.0);
    EXPECT_EQ(c.kl_max, 0.0);
    EXPECT_EQ(c.top1_agreement, 1.0);
    EXPECT_EQ(c.base_kv_bytes, c.variant_kv_bytes);
    for (std::size_t t = 1; t < kTokens; ++t) EXPECT_EQ(c.delta_nll[t], 0.0) << t;
    EXPECT_TRUE(std::isnan(c.delta_nll[0]));
    EXPECT_DOUBLE_EQ(c.base_ttft_predicted, c.variant_ttft_predicted);
}

TEST(WhatIf, PruningLayerKLeavesLowerLayersBitIdentical) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto L = static_cast<std::size_t>(model.config().num_hidden_layers);
    const auto base = l2a::run_prefill(model, tokens, {});
    for (int k : {1, 3}) {
        SCOPED_TRACE("prune " + std::to_string(k));
        l2a::RunOptions pruned;
        pruned.prune = {k};
        const auto full = l2a::run_prefill(model, tokens, pruned);
        const auto K = static_cast<std::size_t>(k);
        EXPECT_TRUE(same_bits(layer_rows(full.router_logits, kTokens, 0, K),
                              layer_rows(base.router_logits, kTokens, 0, K)));
        EXPECT_EQ(layer_rows(full.decisions, kTokens, 0, K),
                  layer_rows(base.decisions, kTokens, 0, K));
        // Layer k itself still computes the same router logits; only its decisions go.
        EXPECT_TRUE(same_bits(layer_rows(full.router_logits, kTokens, K, K + 1),
                              layer_rows(base.router_logits, kTokens, K, K + 1)));
        const auto row_k = layer_rows(full.decisions, kTokens, K, K + 1);
        EXPECT_EQ(row_k, std::vector<std::uint8_t>(kTokens, 0));
        EXPECT_NE(layer_rows(base.decisions, kTokens, K, K + 1), row_k)
            << "the demo should route some tokens in layer " << k;
        // Above it, the state changed.
        if (K + 1 < L) {
            EXPECT_FALSE(same_bits(layer_rows(full.router_logits, kTokens, K + 1, L),
                                   layer_rows(base.router_logits, kTokens, K + 1, L)));
        }
    }
}

TEST(WhatIf, IncrementalRerunEqualsFullRerun) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    std::vector<l2a::RunOptions> variants(3);
    variants[0].prune = {2};
    variants[1].prune = {2, 4};
    variants[2].threshold = 0.3;
    const std::vector<int> starts = {2, 2, 0};
    for (std::size_t i = 0; i < variants.size(); ++i) {
        SCOPED_TRACE("variant " + std::to_string(i));
        const auto incremental = l2a::run_whatif_variant(model, tokens, base, variants[i]);
        EXPECT_EQ(incremental.start_layer, starts[i]);
        l2a::ResidualCheckpoints full_states;
        l2a::PrefillHooks hooks;
        hooks.checkpoints = &full_states;
        const auto full = l2a::run_prefill(model, tokens, variants[i], hooks);
        expect_close(incremental.result.token_nll, full.token_nll, 1e-6, "token NLL");
        expect_close(incremental.result.router_logits, full.router_logits, 1e-6, "router logits");
        EXPECT_EQ(incremental.result.decisions, full.decisions);
        expect_close(incremental.checkpoints.final_hidden.host(), full_states.final_hidden.host(),
                     1e-6, "final state");
        expect_close(incremental.result.last_logits, full.last_logits, 1e-6, "last logits");
        EXPECT_NEAR(incremental.metrics.mean_nll,
                    l2a::run_whatif_base(model, tokens, variants[i]).metrics.mean_nll, 1e-6);
        // A real change moves the distributions.
        const auto c = l2a::compare(model, tokens, base, incremental);
        EXPECT_GT(c.kl_max, 0.0);
        EXPECT_GE(c.kl_mean, 0.0);
        EXPECT_LE(c.kl_mean, c.kl_max);
        EXPECT_NE(c.delta_mean_nll, 0.0);
        EXPECT_GT(c.top1_agreement, 0.0);
        EXPECT_LE(c.top1_agreement, 1.0);
    }
}

// A variant's LM head runs only on the rows whose final state differs from the base's (and the
// last row): the other rows take the base's loss bit for bit, and the loss, the KL and the top
// token agreement equal those of a pass over every row, and of the comparison made afterwards
// from the two final states.
TEST(WhatIf, TheVariantsLmHeadRunsOnlyOnTheRowsThatChanged) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    // A fifth of the tokens at random in every layer: pruning the last layer changes the rows
    // it routed, and only those.
    l2a::RunOptions options;
    options.routing = l2a::RoutingPolicy::parse("random:0.2");
    const auto base = l2a::run_whatif_base(model, tokens, options);
    const int last = static_cast<int>(model.config().num_hidden_layers) - 1;
    l2a::RunOptions pruned = options;
    pruned.prune = {last};
    const auto variant = l2a::run_whatif_variant(model, tokens, base, pruned);
    ASSERT_EQ(variant.start_layer, last);

    // Which rows changed.
    const std::vector<float> a = base.checkpoints.final_hidden.host();
    const std::vector<float> b = variant.checkpoints.final_hidden.host();
    const auto d = static_cast<std::size_t>(model.config().hidden_size);
    std::vector<bool> changed(kTokens);
    std::size_t n_changed = 0;
    for (std::size_t t = 0; t < kTokens; ++t) {
        changed[t] = std::memcmp(a.data() + t * d, b.data() + t * d, d * sizeof(float)) != 0;
        n_changed += changed[t] ? 1 : 0;
    }
    ASSERT_GT(n_changed, 0U);
    ASSERT_LT(n_changed, kTokens - 1) << "the test needs rows the pruning leaves alone";
    for (std::size_t t = 0; t + 1 < kTokens; ++t) {
        if (changed[t]) continue;
        EXPECT_EQ(std::memcmp(&variant.result.token_nll[t + 1], &base.result.token_nll[t + 1],
                              sizeof(float)),
                  0)
            << "row " << t;
        EXPECT_EQ(variant.result.reference_kl[t], 0.0) << "row " << t;
    }

    // The LM head did skip the unchanged rows: given a marker as the base's loss, they carry it
    // and the changed rows do not.
    const std::vector<float> marker(kTokens, 1234.0f);
    l2a::PrefillHooks marked;
    marked.reference_final = &base.checkpoints.final_hidden;
    marked.reference_nll = marker;
    const auto skipped =
        l2a::run_prefill_from(model, tokens, pruned, last,
                              base.checkpoints.entering[static_cast<std::size_t>(last)], marked);
    for (std::size_t t = 0; t + 1 < kTokens; ++t) {
        if (changed[t]) {
            EXPECT_NE(skipped.token_nll[t + 1], 1234.0f) << "row " << t;
        } else {
            EXPECT_EQ(skipped.token_nll[t + 1], 1234.0f) << "row " << t;
        }
    }

    // The same run with the LM head over every row (no reference loss to take).
    l2a::PrefillHooks every_row;
    every_row.reference_final = &base.checkpoints.final_hidden;
    const auto full =
        l2a::run_prefill_from(model, tokens, pruned, last,
                              base.checkpoints.entering[static_cast<std::size_t>(last)], every_row);
    expect_close(variant.result.token_nll, full.token_nll, 1e-6, "token NLL");
    expect_close(variant.result.last_logits, full.last_logits, 1e-6, "last logits");
    ASSERT_EQ(variant.result.reference_kl.size(), full.reference_kl.size());
    for (std::size_t t = 0; t < kTokens; ++t) {
        EXPECT_NEAR(variant.result.reference_kl[t], full.reference_kl[t], 1e-6) << "row " << t;
    }
    EXPECT_EQ(variant.result.reference_top1_agree, full.reference_top1_agree);

    // And the comparison from the two final states, made after the runs.
    const auto during = l2a::compare(model, tokens, base, variant);
    auto without = variant;
    without.result.reference_kl.clear();
    const auto after = l2a::compare(model, tokens, base, without);
    EXPECT_GT(during.kl_max, 0.0);
    EXPECT_NEAR(during.kl_mean, after.kl_mean, 1e-9);
    EXPECT_NEAR(during.kl_max, after.kl_max, 1e-8);
    EXPECT_EQ(during.kl_max_token, after.kl_max_token);
    EXPECT_EQ(during.top1_agreement, after.top1_agreement);
}

// A base that kept only some layers: the variant begins at the nearest kept layer below its
// first change and gives what a start at the change gives.
// On CUDA the base keeps its states in GPU memory and the variant starts from one there: the
// same result as the variant's full run on the GPU.
TEST(WhatIfOnCuda, TheVariantStartsFromTheStateKeptOnTheGpu) {
    if (l2a::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    const auto dir = std::filesystem::path(L2A_TEST_WORK_DIR) / "whatif" / "demo";
    const l2a::Model gpu = l2a::Model::load(l2a::ensure_untrained_model(dir), {"cuda", "bf16"});
    const auto tokens = some_tokens(kTokens);
    l2a::RunOptions options;
    options.device = "cuda";
    const auto base = l2a::run_whatif_base(gpu, tokens, options);
    ASSERT_TRUE(base.checkpoints.entering[2].on_device());
    ASSERT_TRUE(base.checkpoints.final_hidden.on_device());
    l2a::RunOptions variant = options;
    variant.prune = {2};
    const auto incremental = l2a::run_whatif_variant(gpu, tokens, base, variant);
    EXPECT_EQ(incremental.start_layer, 2);
    EXPECT_TRUE(incremental.checkpoints.final_hidden.on_device());
    l2a::ResidualCheckpoints full_states;
    l2a::PrefillHooks hooks;
    hooks.checkpoints = &full_states;
    const auto full = l2a::run_prefill(gpu, tokens, variant, hooks);
    EXPECT_EQ(incremental.result.decisions, full.decisions);
    expect_close(incremental.result.token_nll, full.token_nll, 1e-5, "token NLL");
    const l2a::WhatIfComparison c = l2a::compare(gpu, tokens, base, incremental);
    EXPECT_GT(c.kl_max, 0.0);
    const l2a::WhatIfComparison same = l2a::compare(gpu, tokens, base, base);
    EXPECT_EQ(same.kl_max, 0.0);
    EXPECT_EQ(same.top1_agreement, 1.0);
}

TEST(WhatIf, AVariantStartsBelowItsChangeWhereTheBaseKeptNoState) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto every = l2a::run_whatif_base(model, tokens, {});
    const std::vector<int> sparse_layers = {2, 5};
    const auto sparse = l2a::run_whatif_base(model, tokens, {}, {}, &sparse_layers);
    l2a::RunOptions pruned;
    pruned.prune = {4};
    const auto from_kept = l2a::run_whatif_variant(model, tokens, sparse, pruned);
    const auto from_change = l2a::run_whatif_variant(model, tokens, every, pruned);
    EXPECT_EQ(from_kept.start_layer, 2);
    EXPECT_EQ(from_change.start_layer, 4);
    EXPECT_EQ(from_kept.result.decisions, from_change.result.decisions);
    expect_close(from_kept.result.token_nll, from_change.result.token_nll, 1e-6, "token NLL");
    expect_close(from_kept.result.router_logits, from_change.result.router_logits, 1e-6,
                 "router logits");

    // Nothing kept at or below the change: a clear error.
    pruned.prune = {1};
    EXPECT_CONTAINS(
        l2a::test::message_of([&] { l2a::run_whatif_variant(model, tokens, sparse, pruned); }),
        "kept no checkpoint at or below layer 1");
}

TEST(WhatIf, ResumingAtLayerZeroFromTheEmbeddingEqualsTheRun) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(64);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    const auto again = l2a::run_prefill_from(model, tokens, {}, 0, base.checkpoints.entering[0]);
    EXPECT_TRUE(same_bits(again.token_nll, base.result.token_nll));
    EXPECT_TRUE(same_bits(again.router_logits, base.result.router_logits));
}

TEST(WhatIf, ComparisonReportsPrunedLayersAndMemory) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    l2a::RunOptions options;
    options.prune = {0, 5};
    const auto variant = l2a::run_whatif_variant(model, tokens, base, options);
    const auto c = l2a::compare(model, tokens, base, variant);
    EXPECT_EQ(c.start_layer, 0);
    EXPECT_EQ(c.variant_global_fraction[0], 0.0);
    EXPECT_EQ(c.variant_global_fraction[5], 0.0);
    EXPECT_GT(c.base_global_fraction[0] + c.base_global_fraction[5], 0.0);
    // A pruned layer keeps only its window cache: less memory than the base.
    EXPECT_LT(c.variant_kv_bytes, c.base_kv_bytes);
    EXPECT_GT(c.kv_bytes_without_l2a, 0);
    EXPECT_NEAR(
        c.variant_kv_relative,
        static_cast<double>(c.variant_kv_bytes) / static_cast<double>(c.kv_bytes_without_l2a),
        1e-12);
    // Nothing is measured unless asked for; predictions are always there.
    EXPECT_FALSE(c.base_ttft.measured());
    EXPECT_FALSE(c.variant_ttft.measured());
    EXPECT_GT(base.run_seconds, 0.0);
    EXPECT_GT(variant.run_seconds, 0.0);
    // Both predictions come from the base's timing model; the layers above a pruned one may
    // route more tokens, so the variant is not necessarily faster.
    const auto timing = l2a::calibrate_timing(base);
    EXPECT_DOUBLE_EQ(c.base_ttft_predicted, timing.predict_ttft(base.result.decisions, kTokens));
    EXPECT_DOUBLE_EQ(c.variant_ttft_predicted,
                     timing.predict_ttft(variant.result.decisions, kTokens));
    // The per-token loss pass of the LM head is not part of the time to first token.
    EXPECT_GT(timing.loss_rows_seconds, 0.0);
    EXPECT_LT(c.base_ttft_predicted, base.result.wall_seconds);
    // With every layer pruned no global work is left: it predicts less time.
    l2a::RunOptions everything;
    everything.prune = {0, 1, 2, 3, 4, 5};
    const auto bare =
        l2a::compare(model, tokens, base, l2a::run_whatif_variant(model, tokens, base, everything));
    EXPECT_LT(bare.variant_ttft_predicted, bare.base_ttft_predicted);
    for (double f : bare.variant_global_fraction) EXPECT_EQ(f, 0.0);
    ASSERT_EQ(c.delta_nll.size(), kTokens);
    ASSERT_EQ(c.kl.size(), kTokens);
}

TEST(WhatIf, TimingModelReproducesTheBaseWallTime) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    const auto timing = l2a::calibrate_timing(base);
    ASSERT_EQ(timing.fixed_seconds.size(), 6u);
    EXPECT_NEAR(timing.predict(base.result.decisions, kTokens), base.result.wall_seconds, 1e-9);
    for (double k : timing.global_coefficient) EXPECT_GE(k, 0.0);
    // Nothing routed: only the fixed parts remain.
    const std::vector<std::uint8_t> none(base.result.decisions.size(), 0);
    double fixed = timing.outside_seconds;
    for (double s : timing.fixed_seconds) fixed += s;
    EXPECT_NEAR(timing.predict(none, kTokens), fixed, 1e-12);
}

TEST(WhatIf, TtftMeasurementMedianAndSpread) {
    const auto odd = l2a::TtftMeasurement::of({0.3, 0.1, 0.2});
    EXPECT_TRUE(odd.measured());
    EXPECT_DOUBLE_EQ(odd.median, 0.2);
    EXPECT_DOUBLE_EQ(odd.min, 0.1);
    EXPECT_DOUBLE_EQ(odd.max, 0.3);
    EXPECT_EQ(odd.samples, (std::vector<double>{0.3, 0.1, 0.2}));  // in the order run
    const auto even = l2a::TtftMeasurement::of({0.4, 0.1, 0.3, 0.2});
    EXPECT_DOUBLE_EQ(even.median, 0.25);
    EXPECT_FALSE(l2a::TtftMeasurement::of({}).measured());
}

TEST(WhatIf, MeasuredTtftTimesFullRunsOfBothAlike) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(kTokens);
    l2a::RunOptions base;
    l2a::RunOptions variant;
    variant.prune = {5};
    std::vector<std::pair<std::int64_t, std::int64_t>> steps;
    const auto [b, v] = l2a::measure_ttft_pair(
        model, tokens, base, variant, 3, {},
        [&](std::int64_t done, std::int64_t total) { steps.emplace_back(done, total); });
    ASSERT_EQ(b.samples.size(), 3u);
    ASSERT_EQ(v.samples.size(), 3u);
    for (double s : b.samples) EXPECT_GT(s, 0.0);
    for (double s : v.samples) EXPECT_GT(s, 0.0);
    EXPECT_LE(b.min, b.median);
    EXPECT_LE(b.median, b.max);
    // A warm-up run of each, then three of each; progress never goes back.
    ASSERT_EQ(steps.size(), 8u);
    for (std::size_t i = 0; i < steps.size(); ++i) {
        EXPECT_EQ(steps[i].first, static_cast<std::int64_t>(i + 1));
        EXPECT_EQ(steps[i].second, 8);
    }
    EXPECT_THROW(l2a::measure_ttft_pair(model, tokens, base, variant, 0), l2a::Error);
    std::atomic<bool> cancel{true};
    l2a::PrefillHooks hooks;
    hooks.cancel = &cancel;
    EXPECT_THROW(l2a::measure_ttft_pair(model, tokens, base, variant, 1, hooks), l2a::Cancelled);
}

TEST(WhatIf, DefaultThreadsLeaveBusyCoresAlone) {
    // OMP_NUM_THREADS (set for the test suite) wins when present; check the load rule without it.
    {
        const l2a::test::ScopedEnv unset("OMP_NUM_THREADS", nullptr);
        EXPECT_EQ(l2a::default_cpu_threads({8, 0.1}), 8);
        EXPECT_EQ(l2a::default_cpu_threads({8, 2.6}), 5);
        EXPECT_EQ(l2a::default_cpu_threads({2, 1.2}), 1);
        EXPECT_EQ(l2a::default_cpu_threads({2, 9.0}), 1);
        EXPECT_EQ(l2a::default_cpu_threads({4, -1.0}), 4);  // load unknown: every core
    }
    {
        const l2a::test::ScopedEnv three("OMP_NUM_THREADS", "3");
        EXPECT_EQ(l2a::default_cpu_threads({8, 7.0}), 3);
    }
    const l2a::CpuLoad now = l2a::cpu_load();
    EXPECT_GE(now.cores, 1);
    EXPECT_GE(l2a::default_cpu_threads(), 1);
}

TEST(WhatIf, FirstChangedLayer) {
    const auto& c = demo_model().config();
    l2a::RunOptions a;
    l2a::RunOptions b;
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 6);
    b.prune = {4};
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 4);
    a.prune = {1, 4};
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 1);
    a.prune = {4};
    b.threshold = 0.4;
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 0);
    b.threshold.reset();
    b.seed = 7;  // the seed matters only to random routing
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 6);
    b.routing = l2a::RoutingPolicy::parse("random:0.5");
    EXPECT_EQ(l2a::first_changed_layer(c, a, b), 0);
}

TEST(WhatIf, SuggestPruneRespectsTheBudget) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(128);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    for (double budget : {0.0, 0.01, 0.05}) {
        SCOPED_TRACE("budget " + std::to_string(budget));
        std::int64_t calls = 0;
        const auto s = l2a::suggest_prune(model, tokens, base, budget,
                                          [&](std::int64_t, std::int64_t) { ++calls; });
        EXPECT_EQ(calls, s.runs);
        EXPECT_LE(s.delta_mean_nll, budget);
        EXPECT_EQ(s.plan, s.layers);
        if (s.layers.empty()) {
            EXPECT_EQ(s.kv_bytes_saved, 0);
            continue;
        }
        // Measured again from scratch, the plan stays within the budget and saves memory.
        l2a::RunOptions options;
        options.prune = s.plan;
        const auto check = l2a::run_whatif_base(model, tokens, options);
        EXPECT_LE(check.metrics.mean_nll - base.metrics.mean_nll, budget + 1e-9);
        EXPECT_EQ(s.kv_bytes_saved, base.metrics.kv_bytes_total - check.metrics.kv_bytes_total);
        EXPECT_GT(s.kv_bytes_saved, 0);
        const auto timing = l2a::calibrate_timing(base);
        EXPECT_NEAR(s.seconds_saved,
                    timing.predict(base.result.decisions, 128) -
                        timing.predict(check.result.decisions, 128),
                    1e-9);
    }
    // Without a limit every layer goes, one at a time.
    const auto all = l2a::suggest_prune(model, tokens, base, 1e9);
    EXPECT_EQ(all.layers, (l2a::PruningPlan{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(all.runs, 6 + 5 + 4 + 3 + 2 + 1);
}

TEST(WhatIf, BadInputsAreClearErrors) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(32);
    const auto base = l2a::run_whatif_base(model, tokens, {});
    EXPECT_THROW(l2a::run_prefill_from(model, tokens, {}, 7, base.checkpoints.final_hidden),
                 l2a::Error);
    EXPECT_THROW(l2a::run_prefill_from(model, tokens, {}, -1, base.checkpoints.entering[0]),
                 l2a::Error);
    const std::vector<float> short_state(10, 1.0f);
    try {
        l2a::run_prefill_from(model, tokens, {}, 2, short_state);
        ADD_FAILURE() << "no error for a checkpoint of the wrong size";
    } catch (const l2a::Error& e) {
        EXPECT_NE(std::string(e.what()).find("checkpoint"), std::string::npos) << e.what();
    }
    EXPECT_THROW(l2a::suggest_prune(model, tokens, base, -0.1), l2a::Error);
    EXPECT_THROW(l2a::suggest_prune(model, tokens, base, std::numeric_limits<double>::quiet_NaN()),
                 l2a::Error);
    l2a::WhatIfRun no_state = base;
    no_state.checkpoints.final_hidden = {};
    EXPECT_THROW(l2a::compare(model, tokens, base, no_state), l2a::Error);
    l2a::RunOptions bad;
    bad.prune = {9};
    EXPECT_THROW(l2a::run_whatif_variant(model, tokens, base, bad), l2a::Error);
    // A base that kept only layer 3's checkpoint serves variants starting there, and no other.
    const std::vector<int> keep = {3};
    const auto thin = l2a::run_whatif_base(model, tokens, {}, {}, &keep);
    EXPECT_TRUE(thin.checkpoints.entering[0].empty());
    l2a::RunOptions prune3;
    prune3.prune = {3};
    const auto from3 = l2a::run_whatif_variant(model, tokens, thin, prune3);
    EXPECT_TRUE(same_bits(from3.result.token_nll,
                          l2a::run_whatif_variant(model, tokens, base, prune3).result.token_nll));
    l2a::RunOptions prune1;
    prune1.prune = {1};
    try {
        l2a::run_whatif_variant(model, tokens, thin, prune1);
        ADD_FAILURE() << "no error for a missing checkpoint";
    } catch (const l2a::Error& e) {
        EXPECT_NE(std::string(e.what()).find("at or below layer 1"), std::string::npos) << e.what();
    }
    const auto other_tokens = some_tokens(31);
    EXPECT_THROW(l2a::run_whatif_variant(model, other_tokens, base, {}), l2a::Error);
}

}  // namespace
