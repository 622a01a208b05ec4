// The study service on the CPU: runs equal the engine's, what-ifs and pruning on the study's
// base, the identity checks of an adopted profile, progress, warnings and cancellation.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/config.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/profiler/study.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using l2a::test::read_file;
using l2a::test::write_file;

std::vector<std::int32_t> some_tokens(std::size_t n) {
    std::vector<std::int32_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 53 + 7) % 256);
    return ids;
}

class Study : public l2a::test::ScratchDirTest {
protected:
    Study() : ScratchDirTest("study") {}

    // The untrained model of the demo's shape, in the test's own folder (tests change it).
    fs::path model_dir() {
        const fs::path dir = dir_ / "model";
        if (!fs::exists(dir / "config.json")) l2a::ensure_untrained_model(dir);
        return dir;
    }

    l2a::ModelSpec spec() {
        l2a::ModelSpec s;
        s.folder = model_dir();
        return s;
    }

    l2a::StudyRunSpec run_of(std::vector<std::int32_t> ids) {
        l2a::StudyRunSpec r;
        r.document.token_ids = std::move(ids);
        r.document.label = "ids";
        return r;
    }
};

TEST_F(Study, RunEqualsTheEnginesRunAndRecordsTheModelsIdentity) {
    auto study = l2a::make_local_study();
    const l2a::ModelSummary summary = study->open_model(spec());
    const l2a::StudyRunResult run = study->run(run_of(some_tokens(48)));
    ASSERT_TRUE(run.profile);
    const l2a::Profile& p = *run.profile;

    const l2a::Model model = l2a::Model::load(model_dir());
    const l2a::PrefillResult direct = l2a::run_prefill(model, some_tokens(48), {});
    EXPECT_EQ(p.decisions, direct.decisions);
    ASSERT_EQ(p.token_nll.size(), direct.token_nll.size());
    for (std::size_t t = 1; t < p.token_nll.size(); ++t) {
        EXPECT_NEAR(p.token_nll[t], direct.token_nll[t], 1e-6) << t;
    }

    EXPECT_EQ(p.dtype, "fp32");
    EXPECT_EQ(run.report.dtype, "fp32");
    EXPECT_EQ(p.model.config_hash.size(), 16u);
    EXPECT_EQ(p.model.config_hash, summary.config_hash);
    EXPECT_EQ(p.model.weight_bytes,
              static_cast<std::int64_t>(fs::file_size(model_dir() / "model.safetensors")));
    EXPECT_TRUE(fs::path(p.model.path).is_absolute()) << p.model.path;
    EXPECT_EQ(p.timeline_source, "host timers only: CPU run");

    // The identity survives a save and a load.
    l2a::save_profile(p, dir_ / "p.l2a");
    const l2a::Profile loaded = l2a::load_profile(dir_ / "p.l2a");
    EXPECT_EQ(loaded.dtype, "fp32");
    EXPECT_EQ(loaded.model.config_hash, p.model.config_hash);
    EXPECT_EQ(loaded.model.weight_bytes, p.model.weight_bytes);
}

TEST_F(Study, ConfigHashFollowsTheBytesOfConfigJson) {
    auto study = l2a::make_local_study();
    const std::string before = study->open_model(spec()).config_hash;
    // The same settings written differently are another file: a profile notices the change.
    write_file(model_dir() / "config.json", read_file(model_dir() / "config.json") + "\n");
    auto other = l2a::make_local_study();
    const std::string after = other->open_model(spec()).config_hash;
    EXPECT_NE(before, after);
    EXPECT_EQ(after, l2a::make_local_study()->open_model(spec()).config_hash);
}

TEST_F(Study, WhatIfsRunOnTheBaseAndAnUnchangedVariantIsExact) {
    auto study = l2a::make_local_study();
    const l2a::ModelSummary m = study->open_model(spec());
    const auto base = study->run(run_of(some_tokens(40))).profile;

    const l2a::StudyWhatIfResult same = study->whatif(base->options);
    EXPECT_EQ(same.comparison->delta_mean_nll, 0.0);
    EXPECT_EQ(same.variant->decisions, base->decisions);

    l2a::RunOptions pruned = base->options;
    const int last = static_cast<int>(m.num_layers - 1);
    pruned.prune = {last};
    const l2a::StudyWhatIfResult r = study->whatif(pruned);
    EXPECT_EQ(r.comparison->start_layer, last);
    EXPECT_LT(r.comparison->variant_kv_bytes, r.comparison->base_kv_bytes);
    EXPECT_EQ(r.variant->options.prune, pruned.prune);
    EXPECT_EQ(r.variant->metrics.global_fraction[static_cast<std::size_t>(last)], 0.0);
    // Below the pruned layer the variant's decisions are the base's.
    const auto rows = static_cast<std::ptrdiff_t>(last * base->num_tokens());
    EXPECT_TRUE(std::equal(base->decisions.begin(), base->decisions.begin() + rows,
                           r.variant->decisions.begin()));

    const auto [base_ttft, variant_ttft] = study->measure_ttft(pruned, 1);
    EXPECT_EQ(base_ttft.samples.size(), 1u);
    EXPECT_EQ(variant_ttft.samples.size(), 1u);

    const l2a::StudyPruneResult s = study->suggest_prune(1e9);
    EXPECT_EQ(s.base_kv_bytes, base->metrics.kv_bytes_total);
    EXPECT_GT(s.base_ttft_predicted, 0.0);
    EXPECT_FALSE(s.suggestion.layers.empty());
}

// A checkpoint budget of two layers: the last layer and one below are kept, a what-if starts at
// the nearest kept layer and equals one with every layer kept; below them the base is re-run.
TEST_F(Study, ACheckpointBudgetKeepsEvenlySpacedLayers) {
    constexpr std::int64_t kTokens = 40;
    const l2a::ModelSummary m = l2a::make_local_study()->open_model(spec());
    ASSERT_EQ(m.num_layers, 6);
    const std::int64_t per_layer = 4 * kTokens * m.hidden_size;
    auto tight = l2a::make_local_study({.checkpoint_budget_bytes = 2 * per_layer});
    auto roomy = l2a::make_local_study();
    tight->open_model(spec());
    roomy->open_model(spec());
    const auto base = tight->run(run_of(some_tokens(kTokens))).profile;
    roomy->run(run_of(some_tokens(kTokens)));

    l2a::RunOptions pruned = base->options;
    pruned.prune = {4};
    std::vector<std::string> steps;
    l2a::StudyEvents events;
    events.step = [&](const std::string& s) { steps.push_back(s); };
    const auto a = tight->whatif(pruned, 0, events);
    const auto b = roomy->whatif(pruned);
    EXPECT_EQ(a.comparison->start_layer, 2);  // kept: layers 2 and 5
    EXPECT_EQ(b.comparison->start_layer, 4);
    EXPECT_EQ(steps, std::vector<std::string>{"variant"});
    EXPECT_EQ(a.variant->decisions, b.variant->decisions);
    EXPECT_NEAR(a.comparison->delta_mean_nll, b.comparison->delta_mean_nll, 1e-9);

    pruned.prune = {5};
    EXPECT_EQ(tight->whatif(pruned).comparison->start_layer, 5);
    steps.clear();
    pruned.prune = {1};
    const auto c = tight->whatif(pruned, 0, events);
    EXPECT_EQ(c.comparison->start_layer, 1);
    EXPECT_EQ(steps, (std::vector<std::string>{"re-run of the base, 40 tokens", "variant"}));
    EXPECT_NEAR(c.comparison->delta_mean_nll, roomy->whatif(pruned).comparison->delta_mean_nll,
                1e-9);
}

// Explaining a layer whose entering state was not kept runs the layers from the nearest kept one
// below it up to it (not the whole base), and keeps that state for the next time.
TEST_F(Study, ExplainOfALayerNotKeptRunsOnlyFromTheNearestKeptLayer) {
    const l2a::ModelSummary m = l2a::make_local_study()->open_model(spec());
    const std::int64_t T = m.sliding_window + 20;
    const std::int64_t per_layer = 4 * T * m.hidden_size;
    auto tight = l2a::make_local_study({.checkpoint_budget_bytes = 2 * per_layer});
    auto roomy = l2a::make_local_study();
    tight->open_model(spec());
    roomy->open_model(spec());
    tight->run(run_of(some_tokens(static_cast<std::size_t>(T))));
    roomy->run(run_of(some_tokens(static_cast<std::size_t>(T))));
    std::vector<std::string> steps;
    l2a::StudyEvents events;
    events.step = [&](const std::string& s) { steps.push_back(s); };
    // Kept: layers 2 and 5.
    const l2a::StudyExplanation a = tight->explain(T - 1, 4, events);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), "layers 2-3 of the base again");
    const l2a::StudyExplanation b = roomy->explain(T - 1, 4);
    EXPECT_EQ(a.lens.weights, b.lens.weights);
    EXPECT_EQ(a.lens.distant_mass, b.lens.distant_mass);
    steps.clear();
    tight->explain(3, 4, events);  // kept now
    EXPECT_EQ(steps.size(), 1u) << steps.front();
    steps.clear();
    const l2a::StudyExplanation c = tight->explain(T - 1, 1, events);  // nothing kept below
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), "re-run of the base, " + std::to_string(T) + " tokens");
    EXPECT_EQ(c.lens.weights, roomy->explain(T - 1, 1).lens.weights);
}

// The lens of a token from the base's kept state, and the oracle of every layer: each token's
// distant mass as the lens computes it, 0 within the window, and the scores derived from it.
TEST_F(Study, ExplainAndTheOracleAgree) {
    auto study = l2a::make_local_study();
    const l2a::ModelSummary m = study->open_model(spec());
    const std::int64_t W = m.sliding_window;
    ASSERT_GT(W, 0);
    const std::int64_t T = W + 40;
    const auto base = study->run(run_of(some_tokens(static_cast<std::size_t>(T)))).profile;

    const l2a::StudyExplanation e = study->explain(T - 1, 2);
    EXPECT_EQ(e.lens.token, T - 1);
    EXPECT_EQ(e.lens.window, W);
    const auto at = static_cast<std::size_t>(2 * T + (T - 1));
    EXPECT_EQ(e.decision, base->decisions[at] != 0);
    EXPECT_EQ(e.router_logit, base->router_logits[at]);
    double sum = 0;
    for (float w : e.lens.mean_weights) sum += w;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_CONTAINS(l2a::test::message_of([&] { study->explain(T, 2); }),
                    "token " + std::to_string(T));
    EXPECT_CONTAINS(l2a::test::message_of([&] { study->explain(0, 99); }), "layer 99");

    const auto scored = study->oracle(0.5);
    ASSERT_EQ(scored->distant_mass.size(), static_cast<std::size_t>(m.num_layers * T));
    EXPECT_EQ(scored->decisions, base->decisions);
    EXPECT_DOUBLE_EQ(scored->oracle_min_mass, 0.5);
    for (std::int64_t l = 0; l < m.num_layers; ++l) {
        for (std::int64_t t = 0; t < T; ++t) {
            const float mass = scored->distant_mass[static_cast<std::size_t>(l * T + t)];
            EXPECT_GE(mass, 0.0f);
            EXPECT_LE(mass, 1.0f + 1e-6f);
            if (t < W) {
                EXPECT_EQ(mass, 0.0f) << l << "," << t;
            }
        }
    }
    EXPECT_NEAR(scored->distant_mass[at], e.lens.distant_mass, 1e-5);
    // The oracle's profile is the base now: a later explain sees the same run.
    EXPECT_EQ(study->explain(T - 1, 2).lens.distant_mass, e.lens.distant_mass);
    // And it survives a save and a load.
    l2a::save_profile(*scored, dir_ / "oracle.l2a");
    const l2a::Profile loaded = l2a::load_profile(dir_ / "oracle.l2a");
    EXPECT_EQ(loaded.distant_mass, scored->distant_mass);
    EXPECT_DOUBLE_EQ(loaded.oracle_min_mass, 0.5);
}

// A run without checkpoints (l2a run): the same profile, and a what-if re-runs the base first.
TEST_F(Study, ARunWithoutCheckpointsIsTheSameRun) {
    auto study = l2a::make_local_study();
    study->open_model(spec());
    const auto kept = study->run(run_of(some_tokens(32))).profile;
    l2a::StudyRunSpec plain = run_of(some_tokens(32));
    plain.keep_checkpoints = false;
    const auto alone = study->run(plain).profile;
    EXPECT_EQ(alone->decisions, kept->decisions);
    ASSERT_EQ(alone->token_nll.size(), kept->token_nll.size());
    for (std::size_t t = 1; t < kept->token_nll.size(); ++t) {  // token 0 is NaN in both
        EXPECT_EQ(alone->token_nll[t], kept->token_nll[t]) << t;
    }
    EXPECT_EQ(alone->metrics.kv_bytes_total, kept->metrics.kv_bytes_total);
    EXPECT_DOUBLE_EQ(alone->metrics.mean_nll, kept->metrics.mean_nll);
    std::vector<std::string> steps;
    l2a::StudyEvents events;
    events.step = [&](const std::string& s) { steps.push_back(s); };
    l2a::RunOptions pruned = alone->options;
    pruned.prune = {4};
    study->whatif(pruned, 0, events);
    EXPECT_EQ(steps, (std::vector<std::string>{"re-run of the base, 32 tokens", "variant"}));
}

TEST_F(Study, WhatIfWithoutABaseIsAnError) {
    auto study = l2a::make_local_study();
    study->open_model(spec());
    EXPECT_CONTAINS(l2a::test::message_of([&] { study->whatif({}); }), "no base run");
}

TEST_F(Study, AnAdoptedProfileIsReRunOnItsRecordedModel) {
    fs::path saved = dir_ / "base.l2a";
    {
        auto study = l2a::make_local_study();
        study->open_model(spec());
        l2a::save_profile(*study->run(run_of(some_tokens(32))).profile, saved);
    }
    auto profile = std::make_shared<const l2a::Profile>(l2a::load_profile(saved));
    auto study = l2a::make_local_study();
    std::vector<std::string> warnings;
    l2a::StudyEvents events;
    events.warning = [&](const std::string& w) { warnings.push_back(w); };
    study->adopt(profile, saved.string(), std::nullopt, events);
    l2a::RunOptions pruned = profile->options;
    pruned.prune = {0};
    const l2a::StudyWhatIfResult r = study->whatif(pruned, 0, events);
    EXPECT_EQ(r.comparison->start_layer, 0);
    EXPECT_TRUE(warnings.empty()) << warnings.front();

    // A profile whose losses the re-run does not reproduce says so.
    l2a::Profile changed = *profile;
    changed.token_nll[5] += 0.5f;
    auto other = l2a::make_local_study();
    other->adopt(std::make_shared<const l2a::Profile>(changed), "changed.l2a", std::nullopt,
                 events);
    other->whatif(pruned, 0, events);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_CONTAINS(warnings[0], "changed.l2a: the re-run of the base differs from the profile");
}

TEST_F(Study, AdoptRefusesAnotherModelAndWarnsOfAChangedConfig) {
    auto study = l2a::make_local_study();
    study->open_model(spec());
    auto profile = study->run(run_of(some_tokens(16))).profile;

    // Gone: named with the folder it recorded.
    l2a::Profile moved = *profile;
    moved.model.path = (dir_ / "nowhere").string();
    EXPECT_CONTAINS(l2a::test::message_of([&] {
                        l2a::make_local_study()->adopt(std::make_shared<const l2a::Profile>(moved),
                                                       "moved.l2a", std::nullopt, {});
                    }),
                    "moved.l2a: was recorded with the model in");

    // Another shape, refused from config.json before any weight is read.
    l2a::Profile wider = *profile;
    wider.model.hidden_size += 8;
    EXPECT_CONTAINS(l2a::test::message_of([&] {
                        l2a::make_local_study()->adopt(std::make_shared<const l2a::Profile>(wider),
                                                       "wider.l2a", std::nullopt, {});
                    }),
                    ", which has changed since (hidden_size 264 in the profile, 256 in");

    // The same shape with a config.json rewritten: a warning, the what-if runs.
    write_file(model_dir() / "config.json", read_file(model_dir() / "config.json") + " ");
    std::vector<std::string> warnings;
    l2a::StudyEvents events;
    events.warning = [&](const std::string& w) { warnings.push_back(w); };
    auto again = l2a::make_local_study();
    again->adopt(profile, "p.l2a", std::nullopt, events);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_CONTAINS(warnings[0], "p.l2a: the model's config.json has changed");
    EXPECT_EQ(again->whatif(profile->options).comparison->delta_mean_nll, 0.0);
}

TEST_F(Study, DocumentsAreCutAsAskedAndBadIdsNamed) {
    auto study = l2a::make_local_study();
    study->open_model(spec());
    l2a::StudyRunSpec run;
    run.document.text = std::string(600, 'a') + " and some more words";
    run.document.label = "doc.txt";
    run.options.max_tokens = 16;
    run.count_all_tokens = true;
    const l2a::StudyRunResult r = study->run(run);
    EXPECT_EQ(r.profile->num_tokens(), 16);
    EXPECT_EQ(r.report.cut_by, "max tokens");
    EXPECT_GT(r.profile->tokens_before_truncation, 16);
    EXPECT_EQ(r.profile->document_path, "doc.txt");

    l2a::StudyRunSpec bad = run_of({1, 2, 999999});
    EXPECT_CONTAINS(l2a::test::message_of([&] { study->run(bad); }),
                    "ids: token id 999999 at position 2 is outside the model's vocabulary");
    l2a::StudyRunSpec empty;
    empty.document.text = "";
    empty.document.label = "empty.txt";
    const std::string message = l2a::test::message_of([&] { study->run(empty); });
    EXPECT_CONTAINS(message, "empty.txt: the input has no tokens");
}

TEST_F(Study, ProgressRisesToOneAndNamesEachStep) {
    auto study = l2a::make_local_study();
    std::vector<std::string> steps;
    std::vector<double> job;
    l2a::StudyEvents events;
    events.step = [&](const std::string& s) { steps.push_back(s); };
    events.progress = [&](double j, double, const std::string&) { job.push_back(j); };
    study->open_model(spec(), events);
    const auto base = study->run(run_of(some_tokens(24)), events).profile;
    ASSERT_FALSE(job.empty());
    EXPECT_TRUE(std::is_sorted(job.begin(), job.end()));
    EXPECT_DOUBLE_EQ(job.back(), 1.0);
    EXPECT_EQ(steps, (std::vector<std::string>{"loading the model", "prefill of 24 tokens"}));

    job.clear();
    l2a::RunOptions pruned = base->options;
    pruned.prune = {1};
    study->whatif(pruned, 1, events);
    EXPECT_TRUE(std::is_sorted(job.begin(), job.end()));
    EXPECT_DOUBLE_EQ(job.back(), 1.0);
    EXPECT_EQ(steps.back(), "time to first token, 1 runs each of base and variant");
}

TEST_F(Study, CancelStopsTheRunningCallAndTheNextCallRuns) {
    auto study = l2a::make_local_study();
    study->open_model(spec());
    l2a::StudyEvents events;
    events.progress = [&](double job, double, const std::string&) {
        if (job > 0.3) study->cancel();
    };
    EXPECT_THROW(study->run(run_of(some_tokens(32)), events), l2a::Cancelled);
    EXPECT_EQ(study->run(run_of(some_tokens(32))).profile->num_tokens(), 32);

    // A caller's flag stops it as well, and stays the caller's to reset.
    std::atomic<bool> flag{true};
    auto flagged = l2a::make_local_study({.cancel = &flag});
    EXPECT_THROW(flagged->open_model(spec()), l2a::Cancelled);
    flag = false;
    flagged->open_model(spec());
    EXPECT_EQ(flagged->run(run_of(some_tokens(8))).profile->num_tokens(), 8);
}

}  // namespace
