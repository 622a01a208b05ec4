// The CUPTI kernel tracer on a real prefill: every kernel attributed to the leaf range that
// launched it, inside that range in time, memcpys recorded, and the timeline surviving a save
// and load. GPU tests skip without a CUDA device; the unavailable path runs everywhere.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/profiler/cupti_tracer.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

bool have_gpu() { return cuda_device_count() > 0; }

// Launch latency and clock anchoring: a kernel may appear this much outside its range.
constexpr std::int64_t kToleranceNs = 50'000;

std::vector<std::int32_t> random_tokens(std::size_t n, std::uint64_t seed) {
    std::vector<std::int32_t> ids(n);
    for (auto& id : ids) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        id = static_cast<std::int32_t>((seed >> 33) % 256);
    }
    return ids;
}

class CuptiTracerTest : public test::ScratchDirTest {
protected:
    CuptiTracerTest() : ScratchDirTest("cupti_tracer") {}
};

TEST_F(CuptiTracerTest, ReportsWhyWhereNoDeviceIsPresent) {
    if (have_gpu()) GTEST_SKIP() << "a CUDA device is present: the tracer can run here";
    PrefillObserver inner;
    KernelTracer tracer(&inner);
    EXPECT_FALSE(tracer.active());
    EXPECT_FALSE(tracer.reason().empty());
    tracer.on_range_begin("embed");
    tracer.on_range_end("embed");
    const std::vector<TimedRange> ranges{{Phase::Embed, -1, 10, 20, 0, {}}};
    const KernelTimeline timeline = tracer.finish(ranges);
    EXPECT_TRUE(timeline.kernels.empty());
    EXPECT_TRUE(timeline.memory_ops.empty());
    EXPECT_EQ(timeline.source, "host timers only: " + tracer.reason());
    if (!cuda_built()) {
        EXPECT_EQ(tracer.reason(), "CUPTI not available in this build");
    }
}

struct Counting : PrefillObserver {
    int begins = 0, ends = 0, routings = 0;
    void on_range_begin(std::string_view) override { ++begins; }
    void on_range_end(std::string_view) override { ++ends; }
    void on_routing(int, std::span<const float>, std::span<const std::uint8_t>) override {
        ++routings;
    }
};

void check_traced_run(const fs::path& dir, const std::string& backend) {
    const fs::path model_dir = ensure_untrained_model(dir / "demo");
    const Model model = Model::load(model_dir, Placement{"cuda", "bf16"});
    RunOptions options;
    options.device = "cuda";
    options.backend = backend;
    options.routing = RoutingPolicy::parse("random:0.5");
    options.seed = 7;
    const std::vector<std::int32_t> ids = random_tokens(700, 99);
    run_prefill(model, ids, options);  // warm-up: lazy module loads and handles, untraced

    Counting inner;
    KernelTracer tracer(&inner);
    ASSERT_TRUE(tracer.active()) << tracer.reason();
    PrefillHooks hooks;
    hooks.observer = &tracer;
    PrefillResult result = run_prefill(model, ids, options, hooks);
    const KernelTimeline timeline = tracer.finish(result.ranges);
    const auto& ranges = result.ranges;

    // The decorator forwards every hook.
    EXPECT_EQ(inner.begins, static_cast<int>(ranges.size()));
    EXPECT_EQ(inner.ends, static_cast<int>(ranges.size()));
    EXPECT_EQ(inner.routings, static_cast<int>(result.num_layers));

    ASSERT_EQ(timeline.source, "cupti");
    ASSERT_GT(timeline.kernels.size(), 0u);
    std::map<std::int64_t, int> per_range;
    for (const KernelRecord& k : timeline.kernels) {
        SCOPED_TRACE(k.name);
        EXPECT_FALSE(k.name.empty());
        EXPECT_LE(k.begin_ns, k.end_ns);
        if (k.range < 0) {
            // Set-up work (positions, rope tables) runs before the first range and ends before it.
            EXPECT_LE(k.end_ns, ranges.front().begin_ns + kToleranceNs);
            continue;
        }
        ASSERT_LT(k.range, static_cast<std::int64_t>(ranges.size()));
        const auto i = static_cast<std::size_t>(k.range);
        const TimedRange& r = ranges[i];
        // Ranges come in begin order, so a range with children is followed by a deeper one.
        const bool leaf = i + 1 == ranges.size() || ranges[i + 1].depth <= r.depth;
        EXPECT_TRUE(leaf) << range_name(r) << ": kernels belong to the innermost range";
        EXPECT_GE(k.begin_ns, r.begin_ns - kToleranceNs) << range_name(r);
        EXPECT_LE(k.end_ns, r.end_ns + kToleranceNs) << range_name(r);
        ++per_range[k.range];
    }
    // Layer phases and the stages around them ("embed", "lm_head") are the leaves.
    EXPECT_TRUE(per_range.count(0)) << range_name(ranges.front()) << " has no kernels";
    // Kernels launched inside ranges are the bulk of the run.
    std::size_t attributed = 0;
    for (const auto& [range, n] : per_range) attributed += static_cast<std::size_t>(n);
    EXPECT_GT(attributed * 10, timeline.kernels.size() * 9);

    // Every phase of every layer launches work; a global range exists when tokens were routed.
    std::set<std::string> phases;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        if (!is_layer_part(ranges[i].phase)) continue;
        phases.insert(phase_name(ranges[i].phase));
        EXPECT_GT(per_range[static_cast<std::int64_t>(i)], 0)
            << range_name(ranges[i]) << " has no kernels";
    }
    EXPECT_TRUE(phases.count("local") && phases.count("router") && phases.count("global") &&
                phases.count("mlp"));
    EXPECT_GT(per_range.size(), 4u * static_cast<std::size_t>(result.num_layers) - 1);

    ASSERT_GT(timeline.memory_ops.size(), 0u);
    bool copy_inside = false;
    for (const MemoryOpRecord& m : timeline.memory_ops) {
        EXPECT_LE(m.begin_ns, m.end_ns);
        EXPECT_LT(m.range, static_cast<std::int64_t>(ranges.size()));
        if (m.range >= 0 && m.kind == MemoryOpKind::CopyDeviceToHost) copy_inside = true;
    }
    EXPECT_TRUE(copy_inside) << "the router's logits come back to the host inside a range";

    // The timeline round-trips through a profile file.
    Profile profile;
    profile.model = model.summary();
    profile.document_text = std::string(ids.size(), 'x');
    profile.token_ids = ids;
    for (std::uint32_t i = 0; i < ids.size(); ++i) {
        profile.token_begin.push_back(i);
        profile.token_end.push_back(i + 1);
    }
    profile.num_layers = result.num_layers;
    profile.router_logits = result.router_logits;
    profile.decisions = result.decisions;
    profile.token_nll = result.token_nll;
    profile.options = options;
    profile.ranges = result.ranges;
    profile.kernels = timeline.kernels;
    profile.memory_ops = timeline.memory_ops;
    profile.timeline_source = timeline.source;
    profile.device = result.device;
    profile.wall_seconds = result.wall_seconds;
    save_profile(profile, dir / "run.l2a");
    const Profile loaded = load_profile(dir / "run.l2a");
    EXPECT_EQ(loaded.kernels, profile.kernels);
    EXPECT_EQ(loaded.memory_ops, profile.memory_ops);
    EXPECT_EQ(loaded.timeline_source, "cupti");

    const TimelineSummary summary = summarize_timeline(loaded);
    EXPECT_EQ(summary.kernels, static_cast<std::int64_t>(timeline.kernels.size()));
    ASSERT_EQ(summary.layers.size(), static_cast<std::size_t>(result.num_layers));
    for (const LayerTiming& layer : summary.layers) EXPECT_GT(layer.kernels, 0);

    // Finished once: a second call has nothing more.
    EXPECT_TRUE(tracer.finish(result.ranges).kernels.empty());
}

TEST_F(CuptiTracerTest, AttributesKernelsOfTheKernelsBackend) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    check_traced_run(dir_, "kernels");
}

TEST_F(CuptiTracerTest, AttributesKernelsOfTheSdpaBackend) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    check_traced_run(dir_, "sdpa");
}

TEST_F(CuptiTracerTest, OneTracerAtATime) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    KernelTracer first;
    ASSERT_TRUE(first.active()) << first.reason();
    KernelTracer second;
    EXPECT_FALSE(second.active());
    EXPECT_NE(second.reason().find("another kernel tracer"), std::string::npos);
    EXPECT_EQ(second.finish({}).source, "host timers only: " + second.reason());
    first.finish({});
    KernelTracer third;  // the first one is done: tracing is free again
    EXPECT_TRUE(third.active()) << third.reason();
}

}  // namespace
}  // namespace l2a
