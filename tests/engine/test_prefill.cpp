// The prefill runner's contract with its callers: observer calls, named ranges, progress,
// cancellation, and clear errors for options that cannot apply.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../../engine/src/top_routing.h"  // the top:F choice is checked directly below
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace {

const l2a::Model& demo_model() {
    static const l2a::Model model = [] {
        const auto dir = std::filesystem::path(L2A_TEST_WORK_DIR) / "prefill" / "demo";
        return l2a::Model::load(l2a::ensure_untrained_model(dir));
    }();
    return model;
}

std::vector<std::int32_t> some_tokens(std::size_t n) {
    std::vector<std::int32_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 37 + 11) % 256);
    return ids;
}

class Recorder : public l2a::PrefillObserver {
public:
    std::vector<std::string> events;
    std::vector<std::vector<float>> logits;
    std::vector<std::vector<std::uint8_t>> decisions;
    int depth = 0;
    int max_depth = 0;

    void on_layer_begin(int layer) override { events.push_back("begin " + std::to_string(layer)); }
    void on_layer_end(int layer) override { events.push_back("end " + std::to_string(layer)); }
    void on_routing(int layer, std::span<const float> z, std::span<const std::uint8_t> d) override {
        events.push_back("routing " + std::to_string(layer));
        logits.emplace_back(z.begin(), z.end());
        decisions.emplace_back(d.begin(), d.end());
    }
    void on_range_begin(std::string_view name) override {
        open.emplace_back(name);
        max_depth = std::max(max_depth, ++depth);
    }
    void on_range_end(std::string_view name) override {
        ASSERT_FALSE(open.empty());
        EXPECT_EQ(open.back(), name);
        open.pop_back();
        --depth;
        closed.emplace_back(name);
    }
    std::vector<std::string> open;
    std::vector<std::string> closed;
};

TEST(Prefill, ObserverSeesEveryLayerAndTheAppliedDecisions) {
    const auto& model = demo_model();
    const auto tokens = some_tokens(300);
    l2a::RunOptions options;
    options.prune = {2};
    Recorder recorder;
    l2a::PrefillHooks hooks;
    hooks.observer = &recorder;
    const auto result = l2a::run_prefill(model, tokens, options, hooks);

    const auto L = model.config().num_hidden_layers;
    ASSERT_EQ(static_cast<std::int64_t>(recorder.decisions.size()), L);
    for (std::int64_t layer = 0; layer < L; ++layer) {
        const auto offset = static_cast<std::size_t>(layer) * tokens.size();
        for (std::size_t t = 0; t < tokens.size(); ++t) {
            EXPECT_EQ(recorder.decisions[layer][t], result.decisions[offset + t]);
            EXPECT_EQ(recorder.logits[layer][t], result.router_logits[offset + t]);
            EXPECT_TRUE(std::isfinite(result.router_logits[offset + t]));
        }
    }
    // The pruned layer ran no global attention, whatever its router said.
    for (std::size_t t = 0; t < tokens.size(); ++t) EXPECT_EQ(recorder.decisions[2][t], 0);
    EXPECT_TRUE(recorder.open.empty());
    EXPECT_EQ(recorder.depth, 0);
    EXPECT_EQ(recorder.max_depth, 2);  // "layer i" around its phases
    EXPECT_EQ(recorder.events.front(), "begin 0");
    EXPECT_EQ(recorder.events.back(), "end " + std::to_string(L - 1));
    // Named ranges for every phase; layer 2 is pruned so it has no global range.
    auto has = [&](const std::string& name) {
        return std::find(recorder.closed.begin(), recorder.closed.end(), name) !=
               recorder.closed.end();
    };
    EXPECT_TRUE(has("embed"));
    EXPECT_TRUE(has("layer 0 / local"));
    EXPECT_TRUE(has("layer 0 / router"));
    EXPECT_TRUE(has("layer 0 / mlp"));
    EXPECT_TRUE(has("lm_head"));
    EXPECT_FALSE(has("layer 2 / global"));
    // Host-timed copies of the same ranges, ordered and non-negative.
    ASSERT_EQ(result.ranges.size(), recorder.closed.size());
    for (const auto& r : result.ranges) EXPECT_LE(r.begin_ns, r.end_ns) << l2a::range_name(r);
    EXPECT_TRUE(std::isnan(result.token_nll[0]));
    for (std::size_t t = 1; t < tokens.size(); ++t) EXPECT_GT(result.token_nll[t], 0.0f);
}

// Progress is typed: each layer in order with its index (next, then inside it once routed), then
// the LM head; the fraction never goes back and ends at 1.
TEST(Prefill, ProgressCoversEveryLayerInOrderThenEndsWithTheLmHeadAtOne) {
    std::vector<l2a::RunProgress> seen;
    l2a::PrefillHooks hooks;
    hooks.progress = [&](const l2a::RunProgress& p) { seen.push_back(p); };
    l2a::run_prefill(demo_model(), some_tokens(200), {}, hooks);
    const std::int64_t layers = demo_model().config().num_hidden_layers;
    const auto in_layers = static_cast<std::size_t>(2 * layers);
    ASSERT_GT(seen.size(), in_layers);
    for (std::size_t i = 0; i < in_layers; ++i) {
        EXPECT_EQ(seen[i].phase, i % 2 == 0 ? l2a::Phase::Layer : l2a::Phase::Mlp) << i;
        EXPECT_EQ(seen[i].layer, static_cast<std::int64_t>(i / 2)) << i;
    }
    EXPECT_DOUBLE_EQ(seen[0].fraction, 0.0);
    EXPECT_DOUBLE_EQ(seen[in_layers].fraction,
                     static_cast<double>(layers) / static_cast<double>(layers + 1));
    for (std::size_t i = in_layers; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].phase, l2a::Phase::LmHead) << i;
        EXPECT_EQ(seen[i].layer, -1) << i;
    }
    for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].num_layers, layers) << i;
        if (i > 0) {
            EXPECT_GE(seen[i].fraction, seen[i - 1].fraction) << i;
        }
    }
    EXPECT_DOUBLE_EQ(seen.back().fraction, 1.0);
}

// A resumed run's progress starts at its first layer, and at the LM head when none is left.
TEST(Prefill, ResumedRunProgressStartsAtItsFirstLayer) {
    const auto tokens = some_tokens(64);
    const std::int64_t layers = demo_model().config().num_hidden_layers;
    l2a::ResidualCheckpoints keep;
    keep.every_layer = true;
    l2a::PrefillHooks base;
    base.checkpoints = &keep;
    l2a::run_prefill(demo_model(), tokens, {}, base);
    for (const std::int64_t start : {std::int64_t{2}, layers}) {
        std::vector<l2a::RunProgress> seen;
        l2a::PrefillHooks hooks;
        hooks.progress = [&](const l2a::RunProgress& p) { seen.push_back(p); };
        const l2a::HiddenState& state =
            start < layers ? keep.entering[static_cast<std::size_t>(start)] : keep.final_hidden;
        l2a::run_prefill_from(demo_model(), tokens, {}, static_cast<int>(start), state, hooks);
        ASSERT_FALSE(seen.empty()) << start;
        const l2a::RunProgress first = seen.front();
        EXPECT_EQ(first.phase, start < layers ? l2a::Phase::Layer : l2a::Phase::LmHead) << start;
        EXPECT_EQ(first.layer, start < layers ? start : -1) << start;
        EXPECT_DOUBLE_EQ(first.fraction,
                         static_cast<double>(start) / static_cast<double>(layers + 1));
        EXPECT_EQ(seen.back().phase, l2a::Phase::LmHead) << start;
        EXPECT_DOUBLE_EQ(seen.back().fraction, 1.0) << start;
    }
}

TEST(Prefill, ProgressTextCountsLayersAsTheViewsDo) {
    EXPECT_EQ(l2a::describe({0.4, l2a::Phase::Layer, 4, 6}), "layer 4 of 0-5");
    EXPECT_EQ(l2a::describe({0.5, l2a::Phase::Mlp, 3, 6}), "layer 3 of 0-5: mlp");
    EXPECT_EQ(l2a::describe({0.9, l2a::Phase::LmHead, -1, 6}), "LM head and per-token loss");
    EXPECT_EQ(l2a::describe({0.1, l2a::Phase::Layer, 0, 0}), "layer 0");
}

TEST(Prefill, CancellationStopsTheRunAndClosesRanges) {
    std::atomic<bool> cancel{false};
    Recorder recorder;
    l2a::PrefillHooks hooks;
    hooks.cancel = &cancel;
    hooks.observer = &recorder;
    hooks.progress = [&](const l2a::RunProgress& p) {
        if (p.fraction > 0.3) cancel = true;
    };
    EXPECT_THROW(l2a::run_prefill(demo_model(), some_tokens(400), {}, hooks), l2a::Cancelled);
    EXPECT_EQ(recorder.depth, 0);
    EXPECT_LT(static_cast<std::int64_t>(recorder.decisions.size()),
              demo_model().config().num_hidden_layers);
}

TEST(Prefill, ResultDoesNotDependOnChunkSize) {
    const auto tokens = some_tokens(333);
    l2a::RunOptions small;
    small.chunk_size = 7;
    l2a::RunOptions large;
    large.chunk_size = 512;
    std::vector<float> a, b;
    auto sink_into = [](std::vector<float>& out) {
        return [&out](std::int64_t, std::int64_t rows, std::int64_t vocab, const float* data) {
            out.insert(out.end(), data, data + rows * vocab);
        };
    };
    l2a::PrefillHooks ha, hb;
    ha.logits_sink = sink_into(a);
    hb.logits_sink = sink_into(b);
    const auto ra = l2a::run_prefill(demo_model(), tokens, small, ha);
    const auto rb = l2a::run_prefill(demo_model(), tokens, large, hb);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), tokens.size() * static_cast<std::size_t>(demo_model().config().vocab_size));
    float worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    EXPECT_LT(worst, 1e-4f);
    EXPECT_EQ(ra.decisions, rb.decisions);
}

TEST(Prefill, RandomRoutingIsSeededAndNearItsFraction) {
    const auto tokens = some_tokens(1000);
    l2a::RunOptions options;
    options.routing = l2a::RoutingPolicy::parse("random:0.2");
    options.seed = 7;
    const auto a = l2a::run_prefill(demo_model(), tokens, options);
    const auto b = l2a::run_prefill(demo_model(), tokens, options);
    EXPECT_EQ(a.decisions, b.decisions);
    options.seed = 8;
    const auto c = l2a::run_prefill(demo_model(), tokens, options);
    EXPECT_NE(a.decisions, c.decisions);
    double routed = 0;
    for (auto d : a.decisions) routed += d;
    EXPECT_NEAR(routed / static_cast<double>(a.decisions.size()), 0.2, 0.03);
}

// The top:F choice: the tokens of a stable sort by descending logit, cut after `keep`.
std::vector<std::uint8_t> top_by_sorting(const std::vector<float>& z, std::size_t keep) {
    std::vector<std::size_t> order(z.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    const auto rank = [&](std::size_t i) {
        return std::isnan(z[i]) ? -std::numeric_limits<float>::infinity() : z[i];
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return rank(a) > rank(b); });
    std::vector<std::uint8_t> out(z.size(), 0);
    for (std::size_t i = 0; i < std::min(keep, z.size()); ++i) out[order[i]] = 1;
    return out;
}

TEST(TopRouting, RoutesTheHighestLogitsTheEarlierTokenWinningTies) {
    std::mt19937 gen(5);
    for (const std::size_t t : {1u, 2u, 7u, 64u, 1000u}) {
        // Logits from few values (many ties), from many (few ties), and with NaN and infinities.
        for (const int values : {3, 1000}) {
            std::uniform_int_distribution<int> pick(0, values - 1);
            std::vector<float> z(t);
            for (float& v : z) v = static_cast<float>(pick(gen)) / 4.0f;
            if (t > 4) {
                z[1] = std::numeric_limits<float>::quiet_NaN();
                z[2] = -std::numeric_limits<float>::infinity();
                z[3] = std::numeric_limits<float>::infinity();
            }
            for (const std::size_t keep :
                 {std::size_t{0}, std::size_t{1}, t / 5, t / 2, t - 1, t, t + 3}) {
                std::vector<std::uint8_t> out(t, 7);
                l2a::route_top(z, keep, out);
                EXPECT_EQ(out, top_by_sorting(z, keep))
                    << "tokens " << t << ", " << values << " values, keep " << keep;
            }
        }
    }
    // Ties at the cut go to the earliest tokens; -0 and +0 tie, and NaN ties with -inf.
    const std::vector<float> tied = {1, 2, 2, 0, 2, 2};
    std::vector<std::uint8_t> out(tied.size());
    l2a::route_top(tied, 3, out);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{0, 1, 1, 0, 1, 0}));
    const std::vector<float> zeros = {-1.0f, 0.0f, -0.0f, 0.0f, -0.0f};
    out.assign(zeros.size(), 7);
    l2a::route_top(zeros, 2, out);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{0, 1, 1, 0, 0}));
    out.assign(3, 7);
    l2a::route_top(std::vector<float>{-0.0f, -1.0f, 0.0f}, 1, out);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{1, 0, 0}));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float minus_inf = -std::numeric_limits<float>::infinity();
    out.assign(3, 7);
    l2a::route_top(std::vector<float>{nan, minus_inf, 0.0f}, 2, out);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{1, 0, 1}));
}

std::string error_of(const l2a::RunOptions& options, std::vector<std::int32_t> tokens) {
    return l2a::test::thrown_error([&] { l2a::run_prefill(demo_model(), tokens, options); })
        .value_or("(no error)");
}

TEST(Prefill, BadOptionsAndInputsAreClearErrors) {
    l2a::RunOptions prune_missing;
    prune_missing.prune = {0, 6};
    EXPECT_NE(error_of(prune_missing, some_tokens(10)).find("--prune: layer 6 does not exist"),
              std::string::npos);
    l2a::RunOptions bad_threshold;
    bad_threshold.threshold = 1.0;
    EXPECT_NE(error_of(bad_threshold, some_tokens(10)).find("--threshold"), std::string::npos);
    EXPECT_NE(error_of({}, {}).find("no tokens"), std::string::npos);
    EXPECT_NE(error_of({}, {1, 2, 100000}).find("token id 100000 at position 2"),
              std::string::npos);
    l2a::RunOptions cuda;
    cuda.device = "cuda";
    EXPECT_NE(error_of(cuda, some_tokens(4)).find("--device cuda"), std::string::npos);
    l2a::RunOptions chunk;
    chunk.chunk_size = 0;
    EXPECT_NE(error_of(chunk, some_tokens(4)).find("--chunk"), std::string::npos);
}

}  // namespace

namespace {

// A copy of the untrained demo model in `dir` with `edit` applied to the F32 tensor `name`
// (nothing when `name` is empty).
std::filesystem::path damaged_model(const std::filesystem::path& dir, const std::string& name,
                                    const std::function<void(std::vector<float>&)>& edit) {
    const auto source =
        l2a::ensure_untrained_model(std::filesystem::path(L2A_TEST_WORK_DIR) / "prefill" / "demo");
    l2a::test::fresh_dir(dir);
    for (const char* file : {"config.json", "tokenizer.json"})
        std::filesystem::copy_file(source / file, dir / file);
    const l2a::SafetensorsFile weights = l2a::SafetensorsFile::open(source / "model.safetensors");
    l2a::SafetensorsWriter writer(dir / "model.safetensors");
    for (const l2a::TensorInfo& info : weights.tensors()) {
        const l2a::TensorView view = weights.view(info);
        std::vector<float> values(view.size_bytes() / sizeof(float));
        std::memcpy(values.data(), view.data, view.size_bytes());
        if (info.name == name) edit(values);
        writer.add(info.name, info.dtype, info.shape,
                   std::as_bytes(std::span<const float>(values)));
    }
    writer.finish();
    return dir;
}

}  // namespace

// What the app and the CLI rely on: broken weights refused naming the tensor (or loaded with a
// warning when allowed), and a layer whose output is not finite stopping the run by name.
TEST(Prefill, NonFiniteWeightsAndActivationsNameTheirPlace) {
    const auto work = std::filesystem::path(L2A_TEST_WORK_DIR) / "prefill";
    const auto nan = damaged_model(work / "nan-model", "model.layers.2.self_attn.v_proj.weight",
                                   [](std::vector<float>& v) { v[3] = std::nanf(""); });
    const std::string refused = l2a::test::message_of([&] { l2a::Model::load(nan); });
    EXPECT_NE(
        refused.find("tensor 'model.layers.2.self_attn.v_proj.weight' holds 1 non-finite value"),
        std::string::npos)
        << refused;

    l2a::Placement allow;
    allow.allow_nonfinite_weights = true;
    const l2a::Model loaded = l2a::Model::load(nan, allow);
    ASSERT_EQ(loaded.warnings().size(), 1u);
    EXPECT_NE(loaded.warnings()[0].find("running anyway"), std::string::npos)
        << loaded.warnings()[0];
    const std::string stopped =
        l2a::test::message_of([&] { l2a::run_prefill(loaded, some_tokens(40), {}); });
    EXPECT_NE(stopped.find("layer 2 produced non-finite activations"), std::string::npos)
        << stopped;

    // The untouched model has no warnings and runs to a finite loss.
    EXPECT_TRUE(demo_model().warnings().empty());
    const l2a::PrefillResult fine = l2a::run_prefill(demo_model(), some_tokens(40), {});
    for (std::size_t t = 1; t < fine.token_nll.size(); ++t)
        EXPECT_TRUE(std::isfinite(fine.token_nll[t])) << t;
}

// On CUDA the per-layer flags stay on the device until the last layer; the message still names
// the first layer that went non-finite, and nothing of the run is returned.
TEST(Prefill, NonFiniteActivationsOnCudaNameTheLayer) {
    if (l2a::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    const auto work = std::filesystem::path(L2A_TEST_WORK_DIR) / "prefill";
    const auto inf = damaged_model(work / "inf-model-cuda", "model.layers.3.mlp.down_proj.weight",
                                   [](std::vector<float>& v) { v[0] = INFINITY; });
    const std::pair<const char*, const char*> runs[] = {
        {"bf16", "kernels"}, {"bf16", "reference"}, {"fp32", "reference"}};
    for (const auto& [dtype, backend] : runs) {
        SCOPED_TRACE(std::string(dtype) + " " + backend);
        l2a::Placement allow;
        allow.device = "cuda";
        allow.dtype = dtype;
        allow.allow_nonfinite_weights = true;
        const l2a::Model loaded = l2a::Model::load(inf, allow);
        l2a::RunOptions options;
        options.device = "cuda";
        options.backend = backend;
        const std::string stopped =
            l2a::test::message_of([&] { l2a::run_prefill(loaded, some_tokens(40), options); });
        EXPECT_NE(stopped.find("layer 3 produced non-finite activations"), std::string::npos)
            << stopped;
    }
}

TEST(Prefill, ConfigWithFewerLayersThanTheWeightsWarns) {
    const auto dir =
        damaged_model(std::filesystem::path(L2A_TEST_WORK_DIR) / "prefill" / "five-layers", "",
                      [](std::vector<float>&) {});
    std::string config = l2a::test::read_file(dir / "config.json");
    const auto at = config.find("\"num_hidden_layers\": 6");
    ASSERT_NE(at, std::string::npos) << config;
    config.replace(at, 22, "\"num_hidden_layers\": 5");
    l2a::test::write_file(dir / "config.json", config);
    const l2a::Model model = l2a::Model::load(dir);
    ASSERT_EQ(model.warnings().size(), 1u);
    EXPECT_NE(model.warnings()[0].find("model.safetensors: "), std::string::npos)
        << model.warnings()[0];
    EXPECT_NE(model.warnings()[0].find(
                  " tensors of layer 5 are not used by config.json (num_hidden_layers = 5)"),
              std::string::npos)
        << model.warnings()[0];
}
