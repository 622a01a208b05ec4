// L2A semantics against an independent dense reference (tests/engine/l2a_reference.py, written
// from the L2A design in float64 with full T x T masks): routing policies, windows, router
// modes, pruning, threshold override and chunking must all give the reference's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/observer.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

constexpr double kLogitTolerance = 1e-4;
constexpr double kRouterTolerance = 1e-4;
// Decisions of tokens this close to the cutoff may differ by rounding alone.
constexpr double kNearCutoff = 1e-4;
constexpr double kChunkTolerance = 1e-5;
constexpr std::int64_t kTokens = 50;

fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "l2a_semantics"; }
fs::path script() { return fs::path(L2A_SOURCE_DIR) / "tests/engine/l2a_reference.py"; }
fs::path model_dir(const std::string& name) { return work_dir() / "models" / name; }

using test::max_abs_difference;
using test::read_file;
using test::read_tensor;
using test::ReferenceStatus;
using test::scientific;
using test::shell_quote;

// Once per process (ctest runs each test alone); the script returns at once when current.
const ReferenceStatus& reference_status() {
    static const ReferenceStatus status = [] {
        fs::create_directories(work_dir() / "runs");
        return test::make_reference(script(), "make " + shell_quote(model_dir("").string()),
                                    work_dir() / "make.log", "L2A reference",
                                    "l2a_reference.py make");
    }();
    return status;
}

struct ReferenceRun {
    std::vector<float> logits;                 // [T, V]
    std::vector<float> router_logits;          // [L, T]
    std::vector<std::uint8_t> rule_decisions;  // [L, T]: z >= tau * logit(theta)
    std::vector<std::uint8_t> decisions;       // [L, T]: applied
    std::vector<float> token_nll;
};

struct ReferenceRequest {
    std::string routing = "learned";      // learned, global, local, given
    std::vector<std::uint8_t> decisions;  // [L, T] for "given"
    std::int64_t num_layers = 0;
    std::optional<double> threshold;
    std::vector<int> prune;
};

ReferenceRun run_reference(const std::string& model_name, const std::vector<std::int32_t>& tokens,
                           const ReferenceRequest& request) {
    static int counter = 0;
    const std::string stem =
        std::string(testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) +
        "." + testing::UnitTest::GetInstance()->current_test_info()->name() + "." +
        std::to_string(counter++);
    std::string file_stem = stem;
    std::replace(file_stem.begin(), file_stem.end(), '/', '_');
    const fs::path runs = work_dir() / "runs";
    const fs::path out = runs / (file_stem + ".out.safetensors");
    fs::remove(out);

    nlohmann::json json;
    json["model"] = model_dir(model_name).string();
    json["tokens"] = tokens;
    json["routing"] = request.routing;
    json["out"] = out.string();
    json["prune"] = request.prune;
    if (request.threshold) {
        json["threshold"] = *request.threshold;
    }
    if (request.routing == "given") {
        const auto T = static_cast<std::int64_t>(tokens.size());
        nlohmann::json rows = nlohmann::json::array();
        for (std::int64_t layer = 0; layer < request.num_layers; ++layer) {
            rows.push_back(std::vector<int>(request.decisions.begin() + layer * T,
                                            request.decisions.begin() + (layer + 1) * T));
        }
        json["decisions"] = rows;
    }
    const fs::path request_path = runs / (file_stem + ".json");
    std::ofstream(request_path) << json.dump();

    const fs::path log = runs / (file_stem + ".log");
    const int exit_code =
        test::run_python_script(script(), "run " + shell_quote(request_path.string()), log);
    if (exit_code != 0) {
        throw std::runtime_error("l2a_reference.py run " + request_path.string() +
                                 " failed (exit " + std::to_string(exit_code) + "):\n" +
                                 read_file(log));
    }
    const auto file = SafetensorsFile::open(out);
    ReferenceRun run;
    run.logits = read_tensor<float>(file, "logits", DType::F32);
    run.router_logits = read_tensor<float>(file, "router_logits", DType::F32);
    run.rule_decisions = read_tensor<std::uint8_t>(file, "rule_decisions", DType::U8);
    run.decisions = read_tensor<std::uint8_t>(file, "decisions", DType::U8);
    run.token_nll = read_tensor<float>(file, "token_nll", DType::F32);
    return run;
}

class RoutingRecorder : public PrefillObserver {
public:
    void on_routing(int layer, std::span<const float> logits,
                    std::span<const std::uint8_t> decisions) override {
        layers.push_back(layer);
        this->decisions.insert(this->decisions.end(), decisions.begin(), decisions.end());
        this->logits.insert(this->logits.end(), logits.begin(), logits.end());
    }
    std::vector<int> layers;
    std::vector<std::uint8_t> decisions;
    std::vector<float> logits;
};

struct EngineRun {
    PrefillResult result;
    std::vector<float> logits;  // [T, V]
    RoutingRecorder routing;
};

EngineRun run_engine(const Model& model, const std::vector<std::int32_t>& tokens,
                     RunOptions options) {
    EngineRun run;
    PrefillHooks hooks;
    hooks.observer = &run.routing;
    hooks.logits_sink = [&](std::int64_t, std::int64_t rows, std::int64_t vocab,
                            const float* data) {
        run.logits.insert(run.logits.end(), data, data + rows * vocab);
    };
    run.result = run_prefill(model, tokens, options, hooks);
    return run;
}

RunOptions options_with(const std::string& routing, std::int64_t chunk_size) {
    RunOptions options;
    options.routing = RoutingPolicy::parse(routing);
    options.chunk_size = chunk_size;
    return options;
}

std::vector<std::int32_t> random_tokens(std::int64_t count, std::int64_t vocab,
                                        std::uint32_t seed) {
    std::mt19937 generator(seed);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(vocab - 1));
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(count));
    for (auto& token : tokens) {
        token = pick(generator);
    }
    return tokens;
}

std::int64_t count_ones(std::span<const std::uint8_t> values) {
    return std::count(values.begin(), values.end(), std::uint8_t{1});
}

double cutoff(const Model& model, std::optional<double> threshold) {
    const double theta = threshold.value_or(model.summary().sigmoid_threshold);
    return model.summary().sigmoid_temp * std::log(theta / (1.0 - theta));
}

void expect_same_logits(const EngineRun& engine, const ReferenceRun& reference,
                        double tolerance = kLogitTolerance) {
    ASSERT_EQ(engine.logits.size(), reference.logits.size());
    const double difference = max_abs_difference(engine.logits, reference.logits);
    testing::Test::RecordProperty("max_logit_difference", scientific(difference));
    EXPECT_LE(difference, tolerance);
    const auto& nll = engine.result.token_nll;
    ASSERT_EQ(nll.size(), reference.token_nll.size());
    EXPECT_LE(max_abs_difference({nll.begin() + 1, nll.end()},
                                 {reference.token_nll.begin() + 1, reference.token_nll.end()}),
              tolerance);
}

// The engine's decisions against the learned rule applied to the reference's router logits,
// computed from the same earlier decisions. Layers in `skip_layers` (pruned) are not checked.
void expect_rule_decisions(const EngineRun& engine, const ReferenceRun& reference, double cut,
                           const std::vector<int>& skip_layers = {}) {
    const auto& decisions = engine.result.decisions;
    const std::int64_t T = engine.result.num_tokens;
    ASSERT_EQ(decisions.size(), reference.rule_decisions.size());
    ASSERT_EQ(engine.result.router_logits.size(), reference.router_logits.size());
    int mismatches = 0;
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        const int layer = static_cast<int>(static_cast<std::int64_t>(i) / T);
        if (std::find(skip_layers.begin(), skip_layers.end(), layer) != skip_layers.end()) {
            continue;
        }
        EXPECT_NEAR(engine.result.router_logits[i], reference.router_logits[i], kRouterTolerance)
            << "router logit, layer " << layer << " token " << i % T;
        const bool near_cutoff = std::abs(reference.router_logits[i] - cut) < kNearCutoff;
        if (!near_cutoff && decisions[i] != reference.rule_decisions[i]) {
            ++mismatches;
        }
    }
    EXPECT_EQ(mismatches, 0);
}

ReferenceRequest given(const EngineRun& engine) {
    ReferenceRequest request;
    request.routing = "given";
    request.decisions = engine.result.decisions;
    request.num_layers = engine.result.num_layers;
    return request;
}

class L2AReference : public test::ReferenceTest<reference_status> {};

TEST_F(L2AReference, ReferenceAgreesWithTransformers) {
    const fs::path log = work_dir() / "selftest.log";
    const int exit_code =
        test::run_python_script(script(), "selftest " + shell_quote(model_dir("").string()), log);
    if (exit_code == test::kPythonSkipExitCode) {
        GTEST_SKIP() << read_file(log);
    }
    EXPECT_EQ(exit_code, 0) << read_file(log);
}

TEST_F(L2AReference, ModelSummaryDescribesL2A) {
    const Model model = Model::load(model_dir("l2a_qwen3_temp1"));
    EXPECT_TRUE(model.summary().is_l2a);
    EXPECT_EQ(model.summary().model_type, "l2a_qwen3");
    EXPECT_EQ(model.summary().sliding_window, 8);
    EXPECT_DOUBLE_EQ(model.summary().sigmoid_temp, 1.0);
    EXPECT_DOUBLE_EQ(model.summary().sigmoid_threshold, 0.5);
    const Model qwen2 = Model::load(model_dir("l2a_qwen2"));
    EXPECT_EQ(qwen2.summary().model_type, "l2a_qwen2");
    EXPECT_EQ(qwen2.summary().head_dim, 16);
    EXPECT_EQ(qwen2.summary().sliding_window, 6);
}

// All-local and all-global runs need no decision from the engine: fully independent checks.
struct FixedRoutingCase {
    std::string model;
    std::string routing;  // "local" or "global"
    std::int64_t chunk_size;
};

void PrintTo(const FixedRoutingCase& c, std::ostream* os) {
    *os << c.model << " " << c.routing << " (chunk size " << c.chunk_size << ")";
}

class FixedRouting : public L2AReference, public testing::WithParamInterface<FixedRoutingCase> {};

TEST_P(FixedRouting, MatchesReference) {
    const FixedRoutingCase& c = GetParam();
    const Model model = Model::load(model_dir(c.model));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 11);
    const EngineRun engine = run_engine(model, tokens, options_with(c.routing, c.chunk_size));
    const std::uint8_t expected = c.routing == "global" ? 1 : 0;
    const auto& decisions = engine.result.decisions;
    ASSERT_EQ(decisions.size(), static_cast<std::size_t>(model.summary().num_layers * kTokens));
    EXPECT_TRUE(std::all_of(decisions.begin(), decisions.end(),
                            [&](std::uint8_t d) { return d == expected; }));
    ReferenceRequest request;
    request.routing = c.routing;
    const ReferenceRun reference = run_reference(c.model, tokens, request);
    expect_same_logits(engine, reference);
    // Router logits are optional under a fixed policy; when reported they must be right.
    const auto& z = engine.result.router_logits;
    if (std::none_of(z.begin(), z.end(), [](float v) { return std::isnan(v); })) {
        EXPECT_LE(max_abs_difference(z, reference.router_logits), kRouterTolerance);
    }
}

INSTANTIATE_TEST_SUITE_P(Windows, FixedRouting,
                         testing::Values(FixedRoutingCase{"l2a_qwen3", "local", 7},
                                         FixedRoutingCase{"l2a_qwen3", "global", 3},
                                         FixedRoutingCase{"l2a_qwen3_w4", "local", 3},
                                         FixedRoutingCase{"l2a_qwen3_w4", "global", 16},
                                         FixedRoutingCase{"l2a_qwen3_w1", "local", 7},
                                         FixedRoutingCase{"l2a_qwen3_w1", "global", 7},
                                         FixedRoutingCase{"l2a_qwen3_w1000", "local", 16},
                                         FixedRoutingCase{"l2a_qwen3_w1000", "global", 3},
                                         FixedRoutingCase{"l2a_qwen2", "local", 3},
                                         FixedRoutingCase{"l2a_qwen2", "global", 7}),
                         [](const testing::TestParamInfo<FixedRoutingCase>& info) {
                             return info.param.model + "_" + info.param.routing;
                         });

// Learned routing on every router mode and window.
struct LearnedCase {
    std::string model;
    std::int64_t chunk_size;
};

void PrintTo(const LearnedCase& c, std::ostream* os) {
    *os << c.model << " (chunk size " << c.chunk_size << ")";
}

class LearnedRouting : public L2AReference, public testing::WithParamInterface<LearnedCase> {};

TEST_P(LearnedRouting, DecisionsFollowRouterAndLogitsMatch) {
    const LearnedCase& c = GetParam();
    const Model model = Model::load(model_dir(c.model));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 23);
    const EngineRun engine = run_engine(model, tokens, options_with("learned", c.chunk_size));
    const auto routed = count_ones(engine.result.decisions);
    // The checkpoints route part of the tokens: both branches of the rule are exercised.
    EXPECT_GT(routed, 0);
    EXPECT_LT(routed, static_cast<std::int64_t>(engine.result.decisions.size()));

    // Same earlier decisions on both sides, so a near-cutoff token cannot derail what follows.
    const ReferenceRun reference = run_reference(c.model, tokens, given(engine));
    expect_rule_decisions(engine, reference, cutoff(model, std::nullopt));
    expect_same_logits(engine, reference);
    EXPECT_EQ(engine.routing.decisions, engine.result.decisions);

    // And on its own: the reference's learned run, unless one of its tokens sits on the cutoff.
    const ReferenceRun independent = run_reference(c.model, tokens, ReferenceRequest{});
    const double cut = cutoff(model, std::nullopt);
    const bool any_near_cutoff =
        std::any_of(independent.router_logits.begin(), independent.router_logits.end(),
                    [&](float z) { return std::abs(z - cut) < kNearCutoff; });
    if (!any_near_cutoff) {
        EXPECT_EQ(engine.result.decisions, independent.decisions);
        expect_same_logits(engine, independent);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, LearnedRouting,
    testing::Values(LearnedCase{"l2a_qwen3", 7}, LearnedCase{"l2a_qwen3_temp1", 3},
                    LearnedCase{"l2a_qwen3_w4", 16}, LearnedCase{"l2a_qwen3_w1", 3},
                    LearnedCase{"l2a_qwen3_w1000", 7}, LearnedCase{"l2a_qwen3_firstdim", 7},
                    LearnedCase{"l2a_qwen3_mean", 16}, LearnedCase{"l2a_qwen2", 3}),
    [](const testing::TestParamInfo<LearnedCase>& info) { return info.param.model; });

TEST_F(L2AReference, RandomRoutingIsSeededAndComputedRight) {
    const Model model = Model::load(model_dir("l2a_qwen3"));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 31);
    RunOptions options = options_with("random:0.3", 7);
    options.seed = 17;
    const EngineRun engine = run_engine(model, tokens, options);
    const auto total = static_cast<double>(engine.result.decisions.size());
    const double fraction = static_cast<double>(count_ones(engine.result.decisions)) / total;
    // 150 Bernoulli(0.3) draws: the standard deviation of the fraction is about 0.04.
    EXPECT_GT(fraction, 0.12);
    EXPECT_LT(fraction, 0.48);

    const EngineRun again = run_engine(model, tokens, options);
    EXPECT_EQ(again.result.decisions, engine.result.decisions);
    options.seed = 18;
    const EngineRun other_seed = run_engine(model, tokens, options);
    EXPECT_NE(other_seed.result.decisions, engine.result.decisions);

    const ReferenceRun reference = run_reference("l2a_qwen3", tokens, given(engine));
    expect_same_logits(engine, reference);
}

TEST_F(L2AReference, TopFractionRoutesHighestLogits) {
    const Model model = Model::load(model_dir("l2a_qwen3"));
    // 0.25 * 47 = 11.75: ceil and round both give 12.
    constexpr std::int64_t T = 47;
    const auto tokens = random_tokens(T, model.summary().vocab_size, 37);
    const EngineRun engine = run_engine(model, tokens, options_with("top:0.25", 7));
    const auto& decisions = engine.result.decisions;
    const auto& z = engine.result.router_logits;
    ASSERT_EQ(decisions.size(), static_cast<std::size_t>(model.summary().num_layers * T));
    for (std::int64_t layer = 0; layer < model.summary().num_layers; ++layer) {
        const std::span<const std::uint8_t> row(decisions.data() + layer * T, T);
        EXPECT_EQ(count_ones(row), 12) << "layer " << layer;
        float lowest_routed = std::numeric_limits<float>::infinity();
        float highest_skipped = -std::numeric_limits<float>::infinity();
        for (std::int64_t t = 0; t < T; ++t) {
            const float logit = z[layer * T + t];
            if (row[t]) {
                lowest_routed = std::min(lowest_routed, logit);
            } else {
                highest_skipped = std::max(highest_skipped, logit);
            }
        }
        EXPECT_GE(lowest_routed, highest_skipped) << "layer " << layer;
    }
    const ReferenceRun reference = run_reference("l2a_qwen3", tokens, given(engine));
    EXPECT_LE(max_abs_difference(z, reference.router_logits), kRouterTolerance);
    expect_same_logits(engine, reference);
}

TEST_F(L2AReference, PrunedLayerRunsLocalOnly) {
    const Model model = Model::load(model_dir("l2a_qwen3"));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 41);
    RunOptions options = options_with("learned", 7);
    const EngineRun unpruned = run_engine(model, tokens, options);
    options.prune = {1};
    const EngineRun engine = run_engine(model, tokens, options);

    const std::span<const std::uint8_t> layer1(engine.result.decisions.data() + kTokens, kTokens);
    EXPECT_EQ(count_ones(layer1), 0);
    // Without pruning layer 1 does route tokens, so pruning must change the result.
    EXPECT_GT(
        count_ones({unpruned.result.decisions.data() + kTokens, static_cast<std::size_t>(kTokens)}),
        0);
    EXPECT_GT(max_abs_difference(engine.logits, unpruned.logits), 1e-3);
    EXPECT_EQ(engine.routing.decisions, engine.result.decisions);

    ReferenceRequest request = given(engine);
    request.prune = {1};
    const ReferenceRun reference = run_reference("l2a_qwen3", tokens, request);
    expect_rule_decisions(engine, reference, cutoff(model, std::nullopt), {1});
    expect_same_logits(engine, reference);
}

TEST_F(L2AReference, ThresholdOverrideMovesTheCutoff) {
    const Model model = Model::load(model_dir("l2a_qwen3_temp1"));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 43);
    RunOptions options = options_with("learned", 16);
    const EngineRun at_default = run_engine(model, tokens, options);
    options.threshold = 0.7;
    const EngineRun engine = run_engine(model, tokens, options);
    // tau = 1: the cutoff moves from 0 to logit(0.7) = 0.85, so fewer tokens route.
    EXPECT_LT(count_ones(engine.result.decisions), count_ones(at_default.result.decisions));

    ReferenceRequest request = given(engine);
    request.threshold = 0.7;
    const ReferenceRun reference = run_reference("l2a_qwen3_temp1", tokens, request);
    expect_rule_decisions(engine, reference, cutoff(model, 0.7));
    expect_same_logits(engine, reference);
}

TEST_F(L2AReference, ZeroRouterRoutesEveryToken) {
    const Model model = Model::load(model_dir("l2a_qwen3_zero_router"));
    const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 47);
    const EngineRun engine = run_engine(model, tokens, options_with("learned", 7));
    const auto& decisions = engine.result.decisions;
    ASSERT_FALSE(decisions.empty());
    EXPECT_EQ(count_ones(decisions), static_cast<std::int64_t>(decisions.size()));
    for (float z : engine.result.router_logits) {
        EXPECT_EQ(z, 0.0f);
    }
    ReferenceRequest request;
    request.routing = "global";
    expect_same_logits(engine, run_reference("l2a_qwen3_zero_router", tokens, request));
}

TEST_F(L2AReference, ChunkSizeDoesNotChangeTheResult) {
    for (const char* name : {"l2a_qwen3", "l2a_qwen3_w4", "l2a_qwen2"}) {
        const Model model = Model::load(model_dir(name));
        const auto tokens = random_tokens(kTokens, model.summary().vocab_size, 53);
        const EngineRun small = run_engine(model, tokens, options_with("learned", 3));
        const EngineRun large = run_engine(model, tokens, options_with("learned", 64));
        EXPECT_EQ(small.result.decisions, large.result.decisions) << name;
        EXPECT_LE(max_abs_difference(small.result.router_logits, large.result.router_logits),
                  kChunkTolerance)
            << name;
        ASSERT_EQ(small.logits.size(), large.logits.size()) << name;
        EXPECT_LE(max_abs_difference(small.logits, large.logits), kChunkTolerance) << name;
    }
}

TEST_F(L2AReference, BadRunOptionsAreErrors) {
    const Model model = Model::load(model_dir("l2a_qwen3"));
    const auto tokens = random_tokens(10, model.summary().vocab_size, 59);
    RunOptions out_of_range = options_with("learned", 7);
    out_of_range.prune = {3};  // the model has layers 0..2
    EXPECT_THROW(run_engine(model, tokens, out_of_range), Error);
    for (double threshold : {0.0, 1.0, 1.5}) {
        RunOptions options = options_with("learned", 7);
        options.threshold = threshold;
        EXPECT_THROW(run_engine(model, tokens, options), Error) << threshold;
    }
}

}  // namespace
}  // namespace l2a
