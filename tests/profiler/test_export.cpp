// The profile's timeline (format version 2) and the exporters: Chrome trace, CSV, HTML.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/oracle.h"
#include "l2a/engine/units.h"
#include "l2a/profiler/export.h"
#include "l2a/profiler/report_pdf.h"
#if L2A_TEST_PDF
#include "l2a/profiler/report_painter.h"
#endif
#include "l2a/engine/profile.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::int64_t kLayers = 4;
constexpr std::int64_t kPrunedLayer = 2;

// A document of `words` words whose tokens are single words and the spaces and punctuation
// between them, with the characters that CSV and HTML must escape, multi-byte characters and
// one token boundary inside a two-byte character.
struct Text {
    std::string text;
    std::vector<std::uint32_t> begin, end;
};

Text make_text(int words) {
    const char* vocabulary[] = {"log",      "replica", "a,b",         "say \"hi\"",
                                "<b>&amp;", "naïve",   "line\nbreak", "世界",
                                "term",     "quorum",  "'quoted'",    "x\r\ny"};
    Text t;
    auto add = [&](const std::string& piece) {
        t.begin.push_back(static_cast<std::uint32_t>(t.text.size()));
        t.text += piece;
        t.end.push_back(static_cast<std::uint32_t>(t.text.size()));
    };
    std::mt19937 rng(5);
    for (int w = 0; w < words; ++w) {
        if (w == 3) {
            // "é" (C3 A9) split between two byte-level tokens.
            add("caf\xC3");
            add("\xA9");
        } else {
            add(vocabulary[rng() % std::size(vocabulary)]);
        }
        add(w % 9 == 8 ? ".\n" : " ");
    }
    return t;
}

// A realistic run: embed, four layers of local/router/global/mlp (layer 2 pruned: no global
// range), lm_head; kernels on two streams inside the ranges, one outside any range, two that
// overlap partially on one stream; memory operations on both streams.
Profile make_profile(int words = 150, std::uint32_t seed = 1) {
    Profile p;
    p.model.path = "/models/l2a, \"tiny\"";
    p.model.model_type = "l2a_qwen3";
    p.model.num_layers = kLayers;
    p.model.hidden_size = 64;
    p.model.intermediate_size = 128;
    p.model.num_heads = 4;
    p.model.num_kv_heads = 2;
    p.model.head_dim = 16;
    p.model.vocab_size = 1000;
    p.model.parameter_count = 1234567;
    p.model.is_l2a = true;
    p.model.sliding_window = 64;
    p.model.sigmoid_temp = 0.1;
    p.model.sigmoid_threshold = 0.5;
    p.model.router_input = "hidden_linearproj";

    Text text = make_text(words);
    p.document_path = "docs/<report> & co.md";
    p.document_text = std::move(text.text);
    p.token_begin = std::move(text.begin);
    p.token_end = std::move(text.end);
    const auto tokens = static_cast<std::int64_t>(p.token_begin.size());
    p.tokens_before_truncation = tokens;
    std::mt19937 rng(seed);
    for (std::int64_t t = 0; t < tokens; ++t) p.token_ids.push_back(static_cast<int>(rng() % 1000));

    p.num_layers = kLayers;
    std::uniform_real_distribution<float> logit(-4.0f, 4.0f);
    for (std::int64_t l = 0; l < kLayers; ++l) {
        for (std::int64_t t = 0; t < tokens; ++t) {
            const float z = logit(rng);
            p.router_logits.push_back(z);
            // Later layers route more, so the highlights and the chart have something to show.
            p.decisions.push_back(l != kPrunedLayer && z > 3.0f - static_cast<float>(l));
        }
    }
    p.token_nll.push_back(std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t t = 1; t < tokens; ++t) p.token_nll.push_back(logit(rng) + 5.0f);

    p.options.routing = {RoutingKind::Learned, 0.0};
    p.options.prune = {static_cast<int>(kPrunedLayer)};
    p.options.threshold = 0.25;
    p.options.seed = 99;
    p.options.max_tokens = 4096;
    p.options.chunk_size = 64;
    p.options.device = "cuda:0";
    p.options.backend = "kernels";
    p.options.as_base = false;
    p.options.token_nll = true;
    p.options.kv_bytes_per_element = 2;

    double sum = 0.0;
    for (std::int64_t l = 0; l < kLayers; ++l) {
        std::int64_t routed = 0;
        for (std::int64_t t = 0; t < tokens; ++t) routed += p.decisions[l * tokens + t];
        p.metrics.global_fraction.push_back(static_cast<double>(routed) / tokens);
        sum += p.metrics.global_fraction.back();
        const std::int64_t per_token = 2 * 2 * 16 * 2;
        p.metrics.kv.push_back({std::min<std::int64_t>(tokens, 64) * per_token,
                                l == kPrunedLayer ? 0 : tokens * per_token});
        p.metrics.kv_bytes_total +=
            p.metrics.kv.back().local_bytes + p.metrics.kv.back().global_bytes;
        p.metrics.kv_bytes_without_l2a += tokens * per_token;
    }
    p.metrics.global_fraction_overall = sum / kLayers;
    p.metrics.mean_nll = 5.1;
    p.metrics.perplexity = std::exp(5.1);

    // Ranges (ns) and kernels inside them; stream 7 runs the compute, stream 13 copies.
    std::int64_t now = 1000;
    auto range = [&](Phase phase, std::int32_t layer, int depth, std::int64_t length) {
        p.ranges.push_back({phase, layer, now, now + length, depth, {}});
        return static_cast<std::int64_t>(p.ranges.size() - 1);
    };
    auto kernels_in = [&](std::int64_t r, const std::string& name, int count) {
        const TimedRange& host = p.ranges[static_cast<std::size_t>(r)];
        const std::int64_t step = (host.end_ns - host.begin_ns) / (count + 1);
        for (int k = 0; k < count; ++k) {
            const std::int64_t b = host.begin_ns + step * k + 50;
            p.kernels.push_back({name + "_" + std::to_string(k % 2), 7, 0, b, b + step - 100, r});
        }
    };
    const std::int64_t embed = range(Phase::Embed, -1, 0, 4000);
    kernels_in(embed, "index_select", 1);
    p.memory_ops.push_back({MemoryOpKind::CopyHostToDevice, 4096, 13, 0, 1100, 1900, embed});
    now += 4000;
    for (std::int32_t l = 0; l < kLayers; ++l) {
        const std::int64_t layer_range = range(Phase::Layer, l, 0, 0);
        const std::int64_t layer_begin = now;
        for (Phase phase : kLayerPhases) {
            if (l == kPrunedLayer && phase == Phase::Global) continue;
            const std::int64_t length = 10000 + 3000 * l + (phase == Phase::Mlp ? 8000 : 0);
            const std::int64_t r = range(phase, l, 1, length);
            kernels_in(r, std::string("l2a_") + phase_name(phase), phase == Phase::Router ? 1 : 3);
            now += length;
        }
        p.ranges[static_cast<std::size_t>(layer_range)].end_ns = now;
        p.ranges[static_cast<std::size_t>(layer_range)].begin_ns = layer_begin;
    }
    const std::int64_t head = range(Phase::LmHead, -1, 0, 20000);
    kernels_in(head, "gemm", 2);
    p.memory_ops.push_back(
        {MemoryOpKind::CopyDeviceToHost, 1 << 20, 13, 0, now + 15000, now + 19000, head});
    p.memory_ops.push_back({MemoryOpKind::Set, 256, 7, 0, now + 19100, now + 19200, head});
    now += 20000;
    // Partly overlapping on stream 13 (a tracer may report such records): the trace must still
    // nest on each track.
    p.kernels.push_back({"async_copy_kernel", 13, 0, 3000, 9000, -1});
    p.kernels.push_back({"async_reduce_kernel", 13, 0, 8000, 12000, -1});

    p.timeline_source = "cupti";
    p.device = "NVIDIA H100 80GB HBM3";
    p.peak_device_bytes = 123456789;
    p.wall_seconds = static_cast<double>(now + 500) * 1e-9;
    p.created_at = "2026-11-22T07:00:00Z";
    p.tool_version = "0.1.0";
    return p;
}

// Hand-made routing-oracle results: tokens within the first window see no distant keys; past
// it a token's distant mass rises with its router logit, with noise, so the router is right
// more often than not but misses some.
void add_distant_mass(Profile& p, std::uint32_t seed = 3) {
    const std::int64_t tokens = p.num_tokens();
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> noise(-2.5f, 2.5f);
    p.distant_mass.clear();
    for (std::int64_t l = 0; l < p.num_layers; ++l) {
        for (std::int64_t t = 0; t < tokens; ++t) {
            const float z = p.router_logits[static_cast<std::size_t>(l * tokens + t)];
            const float x = z + noise(rng);
            p.distant_mass.push_back(t < 16 ? 0.0f : 1.0f / (1.0f + std::exp(-x)));
        }
    }
    p.oracle_min_mass = 0.5;
}

// Tokens of `layer` that ran global attention.
std::int64_t export_support_routed(const Profile& p, std::int64_t layer) {
    const std::int64_t t = p.num_tokens();
    return std::count_if(p.decisions.begin() + layer * t, p.decisions.begin() + (layer + 1) * t,
                         [](std::uint8_t d) { return d != 0; });
}

class Export : public test::ScratchDirTest {
protected:
    Export() : ScratchDirTest("export") {}
};

// ---- profile format version 2 ------------------------------------------------------------------

void expect_same_timeline(const Profile& a, const Profile& b) {
    EXPECT_EQ(a.kernels, b.kernels);
    EXPECT_EQ(a.memory_ops, b.memory_ops);
    EXPECT_EQ(a.timeline_source, b.timeline_source);
    EXPECT_EQ(a.device, b.device);
    EXPECT_EQ(a.peak_device_bytes, b.peak_device_bytes);
    EXPECT_EQ(a.options, b.options);
    ASSERT_EQ(a.ranges.size(), b.ranges.size());
    for (std::size_t i = 0; i < a.ranges.size(); ++i) {
        EXPECT_EQ(range_name(a.ranges[i]), range_name(b.ranges[i]));
        EXPECT_EQ(a.ranges[i].phase, b.ranges[i].phase);
        EXPECT_EQ(a.ranges[i].layer, b.ranges[i].layer);
        EXPECT_EQ(a.ranges[i].begin_ns, b.ranges[i].begin_ns);
        EXPECT_EQ(a.ranges[i].end_ns, b.ranges[i].end_ns);
        EXPECT_EQ(a.ranges[i].depth, b.ranges[i].depth);
    }
}

TEST_F(Export, ProfileVersionTwoRoundTripsTheTimelineAndRunFacts) {
    Profile p = make_profile();
    p.options.as_base = true;
    p.options.token_nll = false;
    p.kernels.push_back({"", -3, 2, 0, 0, -1});  // empty name, negative stream, zero length
    p.memory_ops.push_back({MemoryOpKind::CopyOther, 0, 1, 1, 5, 5, 0});
    p.memory_ops.push_back({MemoryOpKind::CopyDeviceToDevice, 1LL << 40, 2, 1, 7, 9, 3});
    save_profile(p, dir_ / "v2.l2a");
    const Profile q = load_profile(dir_ / "v2.l2a");
    expect_same_timeline(p, q);
    EXPECT_TRUE(q.options.as_base);
    EXPECT_FALSE(q.options.token_nll);
    EXPECT_EQ(q.decisions, p.decisions);
    EXPECT_EQ(q.document_text, p.document_text);

    SafetensorsFile file = SafetensorsFile::open(dir_ / "v2.l2a");
    const json meta = json::parse(file.metadata().at("l2a.profile"));
    EXPECT_EQ(meta.at("format_version"), kProfileFormatVersion);
    EXPECT_EQ(file.find("kernels")->shape,
              (std::vector<std::int64_t>{static_cast<std::int64_t>(p.kernels.size()), 6}));
    // Names are stored once each.
    EXPECT_LT(meta.at("timeline").at("kernel_names").size(), p.kernels.size());

    // And again: nothing drifts.
    save_profile(q, dir_ / "again.l2a");
    EXPECT_EQ(test::read_file(dir_ / "v2.l2a"), test::read_file(dir_ / "again.l2a"));
}

TEST_F(Export, EmptyTimelineRoundTrips) {
    Profile p = make_profile(10);
    p.kernels.clear();
    p.memory_ops.clear();
    p.ranges.clear();
    p.timeline_source = "host timers only: CPU run";
    p.device = "cpu";
    p.peak_device_bytes = 0;
    save_profile(p, dir_ / "e.l2a");
    expect_same_timeline(p, load_profile(dir_ / "e.l2a"));
}

// Copies a profile, editing its metadata and dropping or replacing tensors.
void rewrite(const fs::path& from, const fs::path& to, const std::function<void(json&)>& edit,
             const std::set<std::string>& drop = {},
             const std::function<void(SafetensorsWriter&)>& extra = nullptr) {
    SafetensorsFile file = SafetensorsFile::open(from);
    json meta = json::parse(file.metadata().at("l2a.profile"));
    edit(meta);
    SafetensorsWriter writer(to);
    writer.set_metadata("l2a.profile", meta.dump());
    for (const TensorInfo& info : file.tensors()) {
        if (drop.count(info.name)) continue;
        TensorView view = file.view(info);
        writer.add(info.name, info.dtype, info.shape,
                   std::span<const std::byte>(view.data, view.size_bytes()));
    }
    if (extra) extra(writer);
    writer.finish();
}

// Ranges as versions 1 and 2 stored them: by name ("layer 3 / global"), without phase and layer.
void name_ranges(json& meta) {
    for (json& r : meta["ranges"]) {
        const Phase phase = *parse_phase(r["phase"].get<std::string>());
        if (phase != Phase::Other) r["name"] = range_name(phase, r["layer"].get<std::int32_t>());
        r.erase("phase");
        r.erase("layer");
    }
}

TEST_F(Export, VersionOneFilesStillLoad) {
    const Profile p = make_profile();
    save_profile(p, dir_ / "v2.l2a");
    // A version 1 file as the previous writer produced it: no timeline, no device facts, no
    // as_base / token_nll options.
    rewrite(dir_ / "v2.l2a", dir_ / "v1.l2a",
            [](json& m) {
                m["format_version"] = 1;
                name_ranges(m);
                m.erase("timeline");
                m.erase("device");
                m.erase("peak_device_bytes");
                m["options"].erase("as_base");
                m["options"].erase("token_nll");
            },
            {"kernels", "memory_ops"});
    const Profile q = load_profile(dir_ / "v1.l2a");
    EXPECT_TRUE(q.kernels.empty());
    EXPECT_TRUE(q.memory_ops.empty());
    EXPECT_EQ(q.timeline_source.rfind("host timers only: ", 0), 0u) << q.timeline_source;
    EXPECT_EQ(q.device, "");
    EXPECT_EQ(q.peak_device_bytes, 0);
    EXPECT_FALSE(q.options.as_base);
    EXPECT_TRUE(q.options.token_nll);
    EXPECT_EQ(q.options.backend, "kernels");
    EXPECT_EQ(q.ranges, p.ranges);  // phase and layer from the names
    EXPECT_EQ(q.decisions, p.decisions);
    EXPECT_EQ(q.token_ids, p.token_ids);

    // A version 2 file must have what version 2 added.
    rewrite(dir_ / "v2.l2a", dir_ / "no-timeline.l2a", [](json& m) { m.erase("timeline"); });
    EXPECT_CONTAINS(test::message_of([&] { load_profile(dir_ / "no-timeline.l2a"); }), "timeline");
    rewrite(dir_ / "v2.l2a", dir_ / "no-kernels.l2a", [](json&) {}, {"kernels"});
    EXPECT_CONTAINS(test::message_of([&] { load_profile(dir_ / "no-kernels.l2a"); }),
                    "missing tensor 'kernels'");

    // Newer than this build: refused with the version named.
    const int newer = kProfileFormatVersion + 1;
    rewrite(dir_ / "v2.l2a", dir_ / "newer.l2a", [&](json& m) { m["format_version"] = newer; });
    const std::string error = test::message_of([&] { load_profile(dir_ / "newer.l2a"); });
    EXPECT_CONTAINS(error, "newer.l2a");
    EXPECT_CONTAINS(error, "version " + std::to_string(newer));
}

// Rewrites the kernels table of `from` after `edit` changed its int64 cells.
void rewrite_kernels(const fs::path& from, const fs::path& to,
                     const std::function<void(std::vector<std::int64_t>&)>& edit,
                     std::int64_t columns = 6) {
    SafetensorsFile file = SafetensorsFile::open(from);
    std::vector<std::int64_t> cells = test::elements_of<std::int64_t>(file.view("kernels"));
    edit(cells);
    rewrite(
        from, to, [](json&) {}, {"kernels"},
        [&](SafetensorsWriter& w) {
            w.add("kernels", DType::I64,
                  {static_cast<std::int64_t>(cells.size()) / columns, columns},
                  std::as_bytes(std::span(cells)));
        });
}

TEST_F(Export, LoadRejectsBadTimelinesNamingTheFile) {
    const Profile p = make_profile(20);
    save_profile(p, dir_ / "a.l2a");
    const auto rows = static_cast<std::int64_t>(p.kernels.size());

    rewrite_kernels(dir_ / "a.l2a", dir_ / "range.l2a", [&](auto& c) { c[5] = 9999; });
    std::string error = test::message_of([&] { load_profile(dir_ / "range.l2a"); });
    EXPECT_CONTAINS(error, "range.l2a");
    EXPECT_CONTAINS(error, "kernel 0 names range 9999");

    rewrite_kernels(dir_ / "a.l2a", dir_ / "order.l2a", [&](auto& c) { c[4] = c[3] - 1; });
    error = test::message_of([&] { load_profile(dir_ / "order.l2a"); });
    EXPECT_CONTAINS(error, "order.l2a");
    EXPECT_CONTAINS(error, "kernel 0 ends");

    rewrite_kernels(dir_ / "a.l2a", dir_ / "name.l2a", [&](auto& c) { c[6] = 12345; });
    error = test::message_of([&] { load_profile(dir_ / "name.l2a"); });
    EXPECT_CONTAINS(error, "kernel 1 names kernel 12345");

    rewrite_kernels(
        dir_ / "a.l2a", dir_ / "columns.l2a", [&](auto& c) { c.resize(rows * 5); }, 5);
    error = test::message_of([&] { load_profile(dir_ / "columns.l2a"); });
    EXPECT_CONTAINS(error, "'kernels' is not a table of 6 columns");

    rewrite_kernels(dir_ / "a.l2a", dir_ / "stream.l2a", [&](auto& c) { c[1] = 1LL << 40; });
    error = test::message_of([&] { load_profile(dir_ / "stream.l2a"); });
    EXPECT_CONTAINS(error, "stream");

    rewrite(dir_ / "a.l2a", dir_ / "ranges.l2a", [](json& m) {
        m["ranges"][1]["end_ns"] = m["ranges"][1]["begin_ns"].get<std::int64_t>() - 5;
    });
    error = test::message_of([&] { load_profile(dir_ / "ranges.l2a"); });
    EXPECT_CONTAINS(error, "ranges.l2a");
    EXPECT_CONTAINS(error, "range 1");

    rewrite(dir_ / "a.l2a", dir_ / "peak.l2a", [](json& m) { m["peak_device_bytes"] = "lots"; });
    EXPECT_CONTAINS(test::message_of([&] { load_profile(dir_ / "peak.l2a"); }),
                    "peak_device_bytes");
}

TEST_F(Export, SaveRejectsBadTimelines) {
    Profile p = make_profile(20);
    p.kernels[2].range = static_cast<std::int64_t>(p.ranges.size());
    std::string error = test::message_of([&] { save_profile(p, dir_ / "bad.l2a"); });
    EXPECT_CONTAINS(error, "bad.l2a");
    EXPECT_CONTAINS(error, "cannot save: kernel 2 names range");
    EXPECT_FALSE(fs::exists(dir_ / "bad.l2a"));

    p = make_profile(20);
    p.memory_ops[0].end_ns = p.memory_ops[0].begin_ns - 1;
    EXPECT_CONTAINS(test::message_of([&] { save_profile(p, dir_ / "bad.l2a"); }),
                    "memory operation 0 ends");
    p = make_profile(20);
    p.memory_ops[1].bytes = -1;
    EXPECT_CONTAINS(test::message_of([&] { save_profile(p, dir_ / "bad.l2a"); }), "-1 bytes");
    EXPECT_FALSE(fs::exists(dir_ / "bad.l2a"));
}

// ---- summaries ---------------------------------------------------------------------------------

TEST_F(Export, SummarizeTimelineAddsPhasesKernelsAndShares) {
    const Profile p = make_profile();
    const TimelineSummary s = summarize_timeline(p);
    ASSERT_EQ(s.layers.size(), static_cast<std::size_t>(kLayers));
    std::int64_t counted = 0;
    for (const LayerTiming& layer : s.layers) {
        const std::int64_t l = layer.layer;
        const double unit = (10000 + 3000 * l) * 1e-9;
        EXPECT_DOUBLE_EQ(layer.phases[0].seconds, unit) << l;  // local
        EXPECT_DOUBLE_EQ(layer.phases[1].seconds, unit) << l;  // router
        EXPECT_DOUBLE_EQ(layer.phases[2].seconds, l == kPrunedLayer ? 0.0 : unit) << l;
        EXPECT_DOUBLE_EQ(layer.phases[3].seconds, unit + 8000e-9) << l;  // mlp
        EXPECT_NEAR(layer.seconds,
                    layer.phases[0].seconds + layer.phases[1].seconds + layer.phases[2].seconds +
                        layer.phases[3].seconds,
                    1e-15);
        EXPECT_EQ(layer.phases[1].kernels, 1);
        EXPECT_EQ(layer.phases[2].kernels, l == kPrunedLayer ? 0 : 3);
        EXPECT_EQ(layer.kernels, l == kPrunedLayer ? 7 : 10);
        EXPECT_GT(layer.kernel_seconds, 0.0);
        EXPECT_LT(layer.kernel_seconds, layer.seconds);
        EXPECT_NEAR(layer.share, layer.seconds / s.run_seconds, 1e-12);
        counted += layer.kernels;
    }
    ASSERT_EQ(s.stages.size(), 2u);
    EXPECT_EQ(s.stages[0].name, "embed");
    EXPECT_EQ(s.stages[0].kernels, 1);
    EXPECT_EQ(s.stages[1].name, "lm_head");
    EXPECT_EQ(s.stages[1].kernels, 2);
    EXPECT_EQ(s.kernels, static_cast<std::int64_t>(p.kernels.size()));
    EXPECT_EQ(s.unattributed_kernels, 2);
    EXPECT_EQ(counted + 3 + s.unattributed_kernels, s.kernels);
    EXPECT_DOUBLE_EQ(s.run_seconds, p.wall_seconds);
    double shares = 0.0;
    for (const LayerTiming& layer : s.layers) shares += layer.share;
    for (const StageTiming& stage : s.stages) shares += stage.share;
    EXPECT_GT(shares, 0.95);
    EXPECT_LE(shares, 1.0);

    // Ranges of layers the model does not have are stages, not a crash.
    Profile odd = p;
    odd.ranges.push_back({Phase::Mlp, 99, 0, 10, 1, {}});
    odd.ranges.push_back({Phase::Other, -1, 0, 10, 0, "layer x"});
    const TimelineSummary t = summarize_timeline(odd);
    EXPECT_EQ(t.stages.size(), 4u);
}

// ---- JSON --------------------------------------------------------------------------------------

TEST_F(Export, JsonRoundTripHoldsTheNewFields) {
    const Profile p = make_profile();
    save_profile(p, dir_ / "p.l2a");
    const std::string text = profile_to_json(load_profile(dir_ / "p.l2a"));
    EXPECT_EQ(text, profile_to_json(p));  // the file loses nothing the export shows
    const json j = json::parse(text);
    EXPECT_EQ(j["format_version"], kProfileFormatVersion);
    EXPECT_EQ(j["run"]["device_name"], "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(j["run"]["peak_device_bytes"], 123456789);
    EXPECT_EQ(j["run"]["as_base"], false);
    EXPECT_EQ(j["run"]["token_nll"], true);
    EXPECT_EQ(j["run"]["backend"], "kernels");
    ASSERT_EQ(j["layers"].size(), static_cast<std::size_t>(kLayers));
    EXPECT_EQ(j["layers"][1]["kernels"], 10);
    EXPECT_EQ(j["layers"][kPrunedLayer]["pruned"], true);
    EXPECT_EQ(j["layers"][kPrunedLayer]["phase_seconds"]["global"], 0.0);
    EXPECT_GT(j["layers"][0]["share_of_run"].get<double>(), 0.0);
    EXPECT_EQ(j["timing"]["timeline_source"], "cupti");
    EXPECT_EQ(j["timing"]["kernels"], p.kernels.size());
    EXPECT_EQ(j["timing"]["unattributed_kernels"], 2);
    EXPECT_EQ(j["timing"]["memory_ops"], p.memory_ops.size());
    EXPECT_EQ(j["document"]["path"], p.document_path);
}

// ---- Chrome trace ------------------------------------------------------------------------------

std::int64_t to_ns(const json& micros) { return std::llround(micros.get<double>() * 1000.0); }

TEST_F(Export, ChromeTraceParsesNestsAndCountsEverything) {
    const Profile p = make_profile();
    export_chrome_trace(p, dir_ / "trace.json");
    const json trace = json::parse(test::read_file(dir_ / "trace.json"));
    ASSERT_TRUE(trace.at("traceEvents").is_array());
    EXPECT_EQ(trace.at("otherData").at("timeline_source"), "cupti");

    std::map<std::pair<int, int>, std::vector<const json*>> tracks;
    std::map<std::pair<int, int>, std::string> thread_names;
    std::map<int, std::string> process_names;
    std::vector<const json*> counters;
    std::int64_t kernels = 0, copies = 0, sets = 0, ranges = 0;
    for (const json& e : trace["traceEvents"]) {
        for (const char* key : {"name", "ph", "ts", "pid", "tid"}) {
            ASSERT_TRUE(e.contains(key)) << key << " missing in " << e.dump();
        }
        ASSERT_TRUE(e["ts"].is_number()) << e.dump();
        const std::string ph = e["ph"];
        const std::pair<int, int> track{e["pid"], e["tid"]};
        if (ph == "X") {
            ASSERT_TRUE(e.contains("dur") && e["dur"].is_number()) << e.dump();
            EXPECT_GE(e["dur"].get<double>(), 0.0) << e.dump();
            tracks[track].push_back(&e);
            const std::string cat = e.value("cat", "");
            kernels += cat == "kernel";
            copies += cat == "memcpy";
            sets += cat == "memset";
            ranges += cat == "range";
        } else if (ph == "C") {
            ASSERT_TRUE(e.contains("args") && e["args"].contains("routed")) << e.dump();
            counters.push_back(&e);
        } else if (ph == "M") {
            ASSERT_TRUE(e.contains("args")) << e.dump();
            if (e["name"] == "process_name") process_names[e["pid"]] = e["args"]["name"];
            if (e["name"] == "thread_name") thread_names[track] = e["args"]["name"];
        } else {
            ADD_FAILURE() << "unexpected phase " << ph;
        }
    }
    EXPECT_EQ(kernels, static_cast<std::int64_t>(p.kernels.size()));
    EXPECT_EQ(copies, 2);
    EXPECT_EQ(sets, 1);
    EXPECT_EQ(ranges, static_cast<std::int64_t>(p.ranges.size()));
    EXPECT_EQ(process_names[1], "L2A host");
    EXPECT_EQ(process_names[2], "GPU 0: NVIDIA H100 80GB HBM3");

    // Each track: timestamps in order, every pair of events disjoint or nested.
    bool overlap_track = false;
    for (const auto& [track, events] : tracks) {
        ASSERT_TRUE(thread_names.count(track)) << track.first << "/" << track.second;
        overlap_track |= thread_names[track].find("overlap") != std::string::npos;
        std::vector<std::int64_t> open;  // ends of enclosing events
        std::int64_t last = std::numeric_limits<std::int64_t>::min();
        for (const json* e : events) {
            const std::int64_t b = to_ns((*e)["ts"]);
            const std::int64_t end = b + to_ns((*e)["dur"]);
            EXPECT_GE(b, last) << thread_names[track] << ": " << e->dump();
            last = b;
            while (!open.empty() && open.back() <= b) open.pop_back();
            if (!open.empty()) {
                EXPECT_LE(end, open.back())
                    << thread_names[track] << ": partial overlap at " << e->dump();
            }
            open.push_back(end);
        }
    }
    EXPECT_TRUE(overlap_track) << "the two overlapping kernels of stream 13 share a track";
    EXPECT_TRUE(tracks.count({1, 1}));
    EXPECT_EQ(thread_names[(std::pair<int, int>(1, 1))], "ranges");

    // One counter per layer, at the layer's start, holding its routed fraction.
    ASSERT_EQ(counters.size(), static_cast<std::size_t>(kLayers));
    for (std::int64_t l = 0; l < kLayers; ++l) {
        const json& c = *counters[static_cast<std::size_t>(l)];
        EXPECT_DOUBLE_EQ(c["args"]["routed"].get<double>(), p.metrics.global_fraction[l]);
        const auto layer_range = std::find_if(p.ranges.begin(), p.ranges.end(), [&](auto& r) {
            return r.phase == Phase::Layer && r.layer == l;
        });
        EXPECT_EQ(to_ns(c["ts"]), layer_range->begin_ns);
    }

    // The kernels carry the name of the range that launched them.
    const json* first_global = nullptr;
    for (const json& e : trace["traceEvents"]) {
        if (e.value("cat", "") == "kernel" && e["name"] == "l2a_global_0") {
            first_global = &e;
            break;
        }
    }
    ASSERT_NE(first_global, nullptr);
    EXPECT_EQ((*first_global)["args"]["range"], "layer 0 / global");
}

TEST_F(Export, ChromeTraceOfAHostOnlyRun) {
    Profile p = make_profile(20);
    p.kernels.clear();
    p.memory_ops.clear();
    p.timeline_source = "host timers only: CPU run";
    const json trace = json::parse(profile_to_chrome_trace(p));
    std::set<int> pids;
    std::int64_t counters = 0;
    for (const json& e : trace["traceEvents"]) {
        pids.insert(e["pid"].get<int>());
        counters += e["ph"] == "C";
    }
    EXPECT_EQ(pids, (std::set<int>{1}));
    EXPECT_EQ(counters, kLayers);
    EXPECT_EQ(trace["otherData"]["timeline_source"], "host timers only: CPU run");
}

// A tensor-parallel run: rank 0's ranges on the "ranges" track, rank 1's on a "rank 1" track
// of their own; all-reduce ranges are collectives; the routed-fraction counters follow rank 0.
TEST_F(Export, ChromeTraceGivesEachRankItsOwnTrack) {
    Profile p = make_profile(20);
    p.kernels.clear();
    p.memory_ops.clear();
    p.tensor_parallel = 2;
    const std::size_t rank0 = p.ranges.size();
    for (std::size_t i = 0; i < rank0; ++i) {
        TimedRange r = p.ranges[i];
        r.rank = 1;
        r.begin_ns += 7;
        r.end_ns += 7;
        p.ranges.push_back(r);
    }
    p.ranges.push_back({Phase::AllReduce, 0, p.ranges[0].begin_ns, p.ranges[0].begin_ns, 9, {}, 1});
    const json trace = json::parse(profile_to_chrome_trace(p));
    std::map<int, std::string> track;  // tid -> name
    for (const json& e : trace["traceEvents"]) {
        if (e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == 1) {
            track[e["tid"].get<int>()] = e["args"]["name"].get<std::string>();
        }
    }
    std::map<std::string, std::int64_t> ranges_on;  // track name (lanes folded) -> ranges
    std::int64_t collectives = 0;
    for (const json& e : trace["traceEvents"]) {
        if (e["ph"] != "X" || e["pid"] != 1) continue;
        const std::string name = track.at(e["tid"].get<int>());
        ranges_on[name.substr(0, name.find(" (overlap"))] += 1;
        if (e["cat"] == "collective") {
            ++collectives;
            EXPECT_EQ(e["name"], "layer 0 / all-reduce");
            EXPECT_EQ(e["args"]["rank"], 1);
        }
    }
    EXPECT_EQ(ranges_on["ranges"], static_cast<std::int64_t>(rank0));
    EXPECT_EQ(ranges_on["rank 1"], static_cast<std::int64_t>(rank0) + 1);
    EXPECT_EQ(ranges_on.size(), 2u);
    EXPECT_EQ(collectives, 1);
    EXPECT_EQ(trace["otherData"]["tensor_parallel"], 2);
}

// ---- CSV ---------------------------------------------------------------------------------------

// RFC 4180 records; fails the test on a malformed file.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
    std::vector<std::vector<std::string>> records;
    std::vector<std::string> record;
    std::string field;
    bool quoted = false, was_quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            EXPECT_TRUE(field.empty() && !was_quoted) << "quote inside a field at " << i;
            quoted = was_quoted = true;
        } else if (c == ',') {
            record.push_back(std::move(field));
            field.clear();
            was_quoted = false;
        } else if (c == '\r') {
            EXPECT_TRUE(i + 1 < text.size() && text[i + 1] == '\n') << "bare CR at " << i;
        } else if (c == '\n') {
            EXPECT_TRUE(i > 0 && text[i - 1] == '\r') << "LF without CR at " << i;
            record.push_back(std::move(field));
            field.clear();
            was_quoted = false;
            records.push_back(std::move(record));
            record.clear();
        } else {
            field += c;
        }
    }
    EXPECT_FALSE(quoted) << "unterminated quote";
    EXPECT_TRUE(field.empty() && record.empty()) << "last record without CRLF";
    return records;
}

TEST_F(Export, CsvTablesHaveTheDocumentedColumnsAndQuoteProperly) {
    const Profile p = make_profile();
    EXPECT_EQ(csv_paths(dir_ / "run.csv").layers, dir_ / "run.layers.csv");
    EXPECT_EQ(csv_paths(dir_ / "run").tokens, dir_ / "run.tokens.csv");
    const CsvPaths paths = export_csv(p, dir_ / "run.csv");
    EXPECT_FALSE(fs::exists(dir_ / "run.csv"));

    const auto layers = parse_csv(test::read_file(paths.layers));
    ASSERT_EQ(layers.size(), static_cast<std::size_t>(kLayers) + 1);
    const std::vector<std::string> layer_columns = {
        "layer",         "global_fraction", "routed_tokens",        "tokens",
        "pruned",        "kv_bytes",        "kv_bytes_without_l2a", "seconds",
        "local_seconds", "router_seconds",  "global_seconds",       "mlp_seconds",
        "kernels",       "kernel_seconds",  "share_of_run"};
    EXPECT_EQ(layers[0], layer_columns);
    const TimelineSummary s = summarize_timeline(p);
    for (std::int64_t l = 0; l < kLayers; ++l) {
        const auto& row = layers[static_cast<std::size_t>(l) + 1];
        ASSERT_EQ(row.size(), layer_columns.size());
        EXPECT_EQ(row[0], std::to_string(l));
        EXPECT_EQ(std::stod(row[1]), p.metrics.global_fraction[l]);  // exact: shortest round trip
        EXPECT_EQ(std::stoll(row[2]),
                  std::llround(p.metrics.global_fraction[l] * static_cast<double>(p.num_tokens())));
        EXPECT_EQ(row[4], l == kPrunedLayer ? "true" : "false");
        EXPECT_EQ(std::stoll(row[5]), p.metrics.kv[l].local_bytes + p.metrics.kv[l].global_bytes);
        EXPECT_EQ(std::stoll(row[6]), p.metrics.kv_bytes_without_l2a / kLayers);
        EXPECT_EQ(std::stod(row[10]), s.layers[l].phases[2].seconds);
        EXPECT_EQ(std::stoll(row[12]), s.layers[l].kernels);
    }

    const std::string tokens_text = test::read_file(paths.tokens);
    const auto tokens = parse_csv(tokens_text);
    ASSERT_EQ(tokens.size(), static_cast<std::size_t>(p.num_tokens()) + 1);
    EXPECT_EQ(tokens[0], (std::vector<std::string>{"position", "token_id", "byte_begin", "byte_end",
                                                   "text", "nll", "routed_layers",
                                                   "first_routed_layer", "last_routed_layer"}));
    int quoted_specials = 0;
    for (std::int64_t t = 0; t < p.num_tokens(); ++t) {
        const auto& row = tokens[static_cast<std::size_t>(t) + 1];
        ASSERT_EQ(row.size(), 9u);
        const auto i = static_cast<std::size_t>(t);
        EXPECT_EQ(row[1], std::to_string(p.token_ids[i]));
        const std::string piece =
            p.document_text.substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]);
        if (t == 6) {
            EXPECT_EQ(row[4], "caf\xEF\xBF\xBD");  // the half character shown as U+FFFD
        } else if (t != 7) {
            EXPECT_EQ(row[4], piece) << "token " << t;
        }
        quoted_specials += piece.find_first_of(",\"\n") != std::string::npos;
        EXPECT_EQ(row[5].empty(), t == 0);  // NaN: no prediction for token 0
        std::int64_t routed = 0, first = -1;
        for (std::int64_t l = 0; l < kLayers; ++l) {
            if (p.decisions[static_cast<std::size_t>(l * p.num_tokens() + t)]) {
                ++routed;
                if (first < 0) first = l;
            }
        }
        EXPECT_EQ(row[6], std::to_string(routed));
        EXPECT_EQ(row[7], first < 0 ? "" : std::to_string(first));
    }
    EXPECT_GT(quoted_specials, 10);
    EXPECT_NE(tokens_text.find("\"say \"\"hi\"\"\""), std::string::npos);
}

// A table whose file name a folder holds: an error naming it, and none of the three written
// (whichever of the three it is).
TEST_F(Export, CsvWritesNoTableWhenOneNameIsAFolder) {
    const Profile p = make_profile();
    for (const char* taken : {"tokens", "routing", "layers"}) {
        const fs::path dir = dir_ / taken;
        fs::create_directories(dir / (std::string("run.") + taken + ".csv"));
        try {
            export_csv(p, dir / "run.csv");
            ADD_FAILURE() << taken << ": no error";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("is a folder; none of the three tables"),
                      std::string::npos)
                << e.what();
        }
        for (const char* table : {"tokens", "routing", "layers"}) {
            if (std::string(table) == taken) continue;
            EXPECT_FALSE(fs::exists(dir / (std::string("run.") + table + ".csv")))
                << taken << " taken, " << table << " written";
        }
    }
}

TEST_F(Export, CsvRoutingTableHasOneRowPerTokenAndLayer) {
    Profile p = make_profile();
    const std::int64_t tokens = p.num_tokens();
    // Two tokens without a router logit (as a plain model's layers record).
    p.router_logits[static_cast<std::size_t>(1 * tokens + 5)] =
        std::numeric_limits<float>::quiet_NaN();
    p.router_logits[static_cast<std::size_t>(3 * tokens + 9)] =
        std::numeric_limits<float>::quiet_NaN();
    const CsvPaths paths = export_csv(p, dir_ / "run.csv");
    EXPECT_EQ(paths.routing, dir_ / "run.routing.csv");
    EXPECT_EQ(csv_paths(dir_ / "run").routing, dir_ / "run.routing.csv");
    const std::string text = test::read_file(paths.routing);
    EXPECT_EQ(text.rfind("token,layer,router_logit,probability,decision,distant_mass\r\n", 0), 0u);
    EXPECT_EQ(text, profile_routing_csv(p));
    const auto rows = parse_csv(text);
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(tokens * kLayers) + 1);
    const double tau = p.model.sigmoid_temp;
    std::int64_t pruned_above_threshold = 0, routed = 0;
    for (std::int64_t t = 0; t < tokens; ++t) {
        for (std::int64_t l = 0; l < kLayers; ++l) {
            const auto& row = rows[static_cast<std::size_t>(t * kLayers + l) + 1];
            ASSERT_EQ(row.size(), 6u);
            EXPECT_EQ(row[5], "");  // no routing oracle in this profile
            EXPECT_EQ(row[0], std::to_string(t));
            EXPECT_EQ(row[1], std::to_string(l));
            const auto i = static_cast<std::size_t>(l * tokens + t);
            const float z = p.router_logits[i];
            if (std::isnan(z)) {
                EXPECT_EQ(row[2], "") << t << "," << l;
                EXPECT_EQ(row[3], "") << t << "," << l;
            } else {
                EXPECT_EQ(std::stof(row[2]), z);  // the float's shortest text reads back exactly
                const double probability = std::stod(row[3]);
                EXPECT_NEAR(probability, 1.0 / (1.0 + std::exp(-z / tau)), 1e-12);
                if (l == kPrunedLayer && probability >= 0.5) ++pruned_above_threshold;
            }
            EXPECT_EQ(row[4], p.decisions[i] ? "1" : "0");
            routed += p.decisions[i] != 0;
            if (l == kPrunedLayer) {
                EXPECT_EQ(row[4], "0");
            }
        }
    }
    EXPECT_GT(routed, 0);
    // The router wanted some tokens of the pruned layer; its decision is still 0.
    EXPECT_GT(pruned_above_threshold, 0);

    // With the routing oracle, each row's distant mass (the float's shortest text).
    p.distant_mass.resize(p.decisions.size());
    for (std::size_t i = 0; i < p.distant_mass.size(); ++i) {
        p.distant_mass[i] = static_cast<float>(i % 7) / 8.0f;
    }
    const auto with_oracle = parse_csv(profile_routing_csv(p));
    for (std::int64_t t = 0; t < tokens; ++t) {
        for (std::int64_t l = 0; l < kLayers; ++l) {
            const auto& row = with_oracle[static_cast<std::size_t>(t * kLayers + l) + 1];
            ASSERT_EQ(row.size(), 6u);
            EXPECT_EQ(std::stof(row[5]), p.distant_mass[static_cast<std::size_t>(l * tokens + t)]);
        }
    }
}

// ---- the PDF's own text, as poppler's pdftotext reads it -----------------------------------

struct PdfWord {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // points, origin top left
    std::string text;
    int line = 0;  // index into PdfPage::lines
};
struct PdfPage {
    double width = 0, height = 0;
    std::vector<PdfWord> words;
    std::vector<std::string> lines;  // the words of each line, joined by spaces
};

[[maybe_unused]] std::string attribute(const std::string& tag, const std::string& name) {
    const std::size_t at = tag.find(" " + name + "=\"");
    if (at == std::string::npos) return "";
    const std::size_t begin = at + name.size() + 3;
    return tag.substr(begin, tag.find('"', begin) - begin);
}

[[maybe_unused]] std::string unescape_xml(std::string text) {
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"&lt;", "<"},
                                   {"&gt;", ">"},
                                   {"&quot;", "\""},
                                   {"&apos;", "'"},
                                   {"&#39;", "'"},
                                   {"&amp;", "&"}}) {
        for (std::size_t at = text.find(from); at != std::string::npos;
             at = text.find(from, at + to.size())) {
            text.replace(at, from.size(), to);
        }
    }
    return text;
}

[[maybe_unused]] bool have_pdftotext() {
    return std::system("command -v pdftotext >/dev/null 2>&1") == 0;
}

// The pages of `pdf` with each word's box, from `pdftotext -bbox-layout`.
[[maybe_unused]] std::vector<PdfPage> pdf_words(const fs::path& pdf, const fs::path& dir) {
    const fs::path out = dir / (pdf.stem().string() + ".bbox.html");
    const std::string command = "pdftotext -bbox-layout " + test::shell_quote(pdf.string()) + " " +
                                test::shell_quote(out.string()) + " 2>/dev/null";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    const std::string html = test::read_file(out);
    std::vector<PdfPage> pages;
    std::string line_text;
    for (std::size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
        const std::size_t end = html.find('>', at);
        const std::string tag = html.substr(at, end - at + 1);
        if (tag.rfind("<page ", 0) == 0) {
            pages.push_back(
                {std::stod(attribute(tag, "width")), std::stod(attribute(tag, "height")), {}, {}});
        } else if (tag.rfind("<line ", 0) == 0 && !pages.empty()) {
            pages.back().lines.emplace_back();
        } else if (tag.rfind("<word ", 0) == 0 && !pages.empty() && !pages.back().lines.empty()) {
            PdfPage& page = pages.back();
            const std::size_t close = html.find("</word>", end);
            PdfWord w{std::stod(attribute(tag, "xMin")),
                      std::stod(attribute(tag, "yMin")),
                      std::stod(attribute(tag, "xMax")),
                      std::stod(attribute(tag, "yMax")),
                      unescape_xml(html.substr(end + 1, close - end - 1)),
                      static_cast<int>(page.lines.size()) - 1};
            std::string& line = page.lines.back();
            line += (line.empty() ? "" : " ") + w.text;
            page.words.push_back(std::move(w));
        }
    }
    return pages;
}

// The PDF's text, line by line.
[[maybe_unused]] std::string pdf_text(const fs::path& pdf, const fs::path& dir) {
    std::string text;
    for (const PdfPage& page : pdf_words(pdf, dir)) {
        for (const std::string& line : page.lines) text += line + "\n";
    }
    return text;
}

// ---- HTML --------------------------------------------------------------------------------------

struct HtmlCheck {
    bool skipped = false;
    json result;
};

// Runs tests/profiler/report_check.py on `path`; fails the test on malformed input.
HtmlCheck check_with_python(const std::string& mode, const fs::path& path, const fs::path& dir) {
    HtmlCheck check;
    const std::string python = L2A_PYTHON;
    if (python.empty() || !fs::exists(python)) {
        check.skipped = true;
        return check;
    }
    const fs::path script = fs::path(L2A_SOURCE_DIR) / "tests" / "profiler" / "report_check.py";
    const fs::path out = dir / (mode + "-check.json");
    const int status =
        test::run_python_script(script, mode + " " + test::shell_quote(path.string()), out);
    EXPECT_EQ(status, 0) << test::read_file(out);
    if (status == 0) check.result = json::parse(test::read_file(out));
    return check;
}

TEST_F(Export, HtmlIsWellFormedSelfContainedAndComplete) {
    const Profile p = make_profile();
    export_html(p, dir_ / "report.html");
    const std::string html = test::read_file(dir_ / "report.html");
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("<b>&amp;"), std::string::npos) << "document text not escaped";
    EXPECT_NE(html.find("&lt;b&gt;&amp;amp;"), std::string::npos);
    EXPECT_NE(html.find("docs/&lt;report&gt; &amp; co.md"), std::string::npos);
    EXPECT_NE(html.find("what-if comparison"), std::string::npos);
    EXPECT_NE(html.find("NVIDIA H100 80GB HBM3"), std::string::npos);
    EXPECT_NE(html.find("<mark"), std::string::npos) << "no passage highlighted";

    const HtmlCheck check = check_with_python("html", dir_ / "report.html", dir_);
    if (check.skipped) GTEST_SKIP() << "L2A_PYTHON (" << L2A_PYTHON << ") is not available";
    ASSERT_FALSE(check.result.is_null());
    EXPECT_EQ(check.result["ids"],
              json::array({"run", "sparsity", "routing-map", "timing", "what-if", "document"}));
    EXPECT_EQ(check.result["counts"]["svg"], 3);
    // The visible text holds the document (outside the highlights too), unescaped.
    const std::string text = check.result["text"];
    EXPECT_NE(text.find("say \"hi\""), std::string::npos);
    EXPECT_NE(text.find("<b>&amp;"), std::string::npos);
}

// The document section's highlights and note say what the routing was: with sparse routing
// (a few tokens in one layer, far fewer than a tenth) those tokens are highlighted; with none,
// the note says none ran global attention; with every token in the same layers, that none
// stands out. Never that every token ran global attention when few did.
TEST_F(Export, ReportDocumentHighlightsSparseRoutingAndSaysWhatItSaw) {
    Profile p = make_profile();
    const std::int64_t tokens = p.num_tokens();
    std::fill(p.decisions.begin(), p.decisions.end(), 0);
    for (std::int64_t t : {10, 11, 40}) p.decisions[static_cast<std::size_t>(3 * tokens + t)] = 1;
    std::string html = profile_to_html(p);
    EXPECT_NE(html.find("at least 1 of 4 layers (2 passages)"), std::string::npos);
    EXPECT_EQ(html.find("No tokens stand out"), std::string::npos);
    std::size_t marks = 0;
    for (std::size_t at = html.find("<mark"); at != std::string::npos;
         at = html.find("<mark", at + 1)) {
        ++marks;
    }
    EXPECT_EQ(marks, 2u);

    std::fill(p.decisions.begin(), p.decisions.end(), 0);
    html = profile_to_html(p);
    EXPECT_NE(html.find("No token ran global attention in any layer"), std::string::npos);
    EXPECT_EQ(html.find("<mark"), std::string::npos);

    for (std::int64_t t = 0; t < tokens; ++t) p.decisions[static_cast<std::size_t>(t)] = 1;
    html = profile_to_html(p);
    EXPECT_NE(html.find("every token ran global attention in 1 of 4 layers"), std::string::npos);
    EXPECT_EQ(html.find("<mark"), std::string::npos);
}

// The time chart's axis has four round ticks (1, 2 or 5 times a power of ten, each label with no
// more decimals than it needs: "100 ms", not "82.138 ms"), and its top holds the tallest layer
// with that layer's bar at least 40% of the plot's height, whatever the run's time scale.
TEST_F(Export, ReportTimeAxisHasRoundTicks) {
    for (double factor : {1.0, 3.7, 0.013, 260.0}) {
        SCOPED_TRACE(factor);
        Profile p = make_profile();
        for (auto& r : p.ranges) {
            r.begin_ns = static_cast<std::int64_t>(std::llround(r.begin_ns * factor));
            r.end_ns = static_cast<std::int64_t>(std::llround(r.end_ns * factor));
        }
        const std::string html = profile_to_html(p);
        const std::size_t at = html.find("id=\"timing\"");
        ASSERT_NE(at, std::string::npos);
        const std::string svg = html.substr(at, html.find("</svg>", at) - at);
        std::vector<std::string> labels;
        const std::string key = "text-anchor=\"end\">";
        for (std::size_t i = svg.find(key); i != std::string::npos; i = svg.find(key, i + 1)) {
            const std::size_t begin = i + key.size();
            labels.push_back(svg.substr(begin, svg.find('<', begin) - begin));
        }
        ASSERT_EQ(labels.size(), 5u) << svg;
        EXPECT_EQ(labels[0], "0");
        std::vector<double> seconds;
        for (std::size_t i = 1; i < labels.size(); ++i) {
            const std::string& label = labels[i];
            const std::size_t space = label.find(' ');
            ASSERT_NE(space, std::string::npos) << label;
            const std::string number = label.substr(0, space), unit = label.substr(space + 1);
            // No needless decimals: none ends in 0 after the point.
            if (number.find('.') != std::string::npos) {
                EXPECT_NE(number.back(), '0') << label;
            }
            const double scale = unit == "s" ? 1.0 : unit == "ms" ? 1e-3 : 1e-6;
            seconds.push_back(std::stod(number) * scale);
        }
        const double step = seconds[0];
        const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
        EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 ||
                    std::abs(mantissa - 5) < 1e-6)
            << labels[1];
        for (std::size_t i = 0; i < seconds.size(); ++i) {
            EXPECT_NEAR(seconds[i], step * static_cast<double>(i + 1), 1e-9 * seconds[i]);
        }
        // The plot runs from y = 10 (the top tick) to y = 210; the tallest stack's top.
        double highest = 1e9;
        for (std::size_t i = svg.find("<rect x="); i != std::string::npos;
             i = svg.find("<rect x=", i + 1)) {
            const std::size_t y = svg.find("y=\"", i) + 3;
            highest = std::min(highest, std::stod(svg.substr(y, svg.find('"', y) - y)));
        }
        EXPECT_GE(highest, 10.0 - 0.01);
        EXPECT_LE(highest, 10.0 + 200.0 * 0.6);
    }
}

// The per-layer chart's axis ends at the smallest of 1%, 2%, 4%, 10%, 20%, 40%, 100% that holds
// the busiest layer, so that a sparse run's bars stay visible: at 1.5% the axis reads 0-2% and
// the bar stands three quarters high; at 55% it reads 0-100%.
TEST_F(Export, ReportSparsityAxisFitsTheBusiestLayer) {
    Profile p = make_profile();
    p.metrics.global_fraction = {0.0, 0.004, 0.015, 0.0};
    std::string html = profile_to_html(p);
    const auto chart = [&] {
        const std::size_t at = html.find("id=\"sparsity\"");
        return html.substr(at, html.find("</svg>", at) - at);
    };
    std::string svg = chart();
    for (const char* label : {">0%<", ">0.5%<", ">1%<", ">1.5%<", ">2%<"}) {
        EXPECT_NE(svg.find(label), std::string::npos) << label;
    }
    EXPECT_EQ(svg.find(">100%<"), std::string::npos);
    EXPECT_NE(svg.find("height=\"150.00\" fill=\"#3b6fb6\"><title>layer 2: 1.5%"),
              std::string::npos)
        << svg;
    p.metrics.global_fraction = {0.0, 0.1, 0.55, 0.3};
    html = profile_to_html(p);
    svg = chart();
    for (const char* label : {">25%<", ">100%<"}) EXPECT_NE(svg.find(label), std::string::npos);
    p.metrics.global_fraction = {0.0, 0.008, 0.0, 0.0};
    html = profile_to_html(p);
    svg = chart();
    for (const char* label : {">0.25%<", ">0.75%<", ">1%<"}) {
        EXPECT_NE(svg.find(label), std::string::npos) << label;
    }
    p.metrics.global_fraction = {0.0, 0.07, 0.0, 0.0};
    html = profile_to_html(p);
    svg = chart();
    for (const char* label : {">2.5%<", ">7.5%<", ">10%<"}) {
        EXPECT_NE(svg.find(label), std::string::npos) << label;
    }
}

TEST_F(Export, HtmlRoutingMapMaxPoolsSoARoutedTokenNeverDisappears) {
    Profile p = make_profile(8000);  // 16000 tokens, about 57 KB of text
    const std::int64_t tokens = p.num_tokens();
    ASSERT_GT(tokens, kHtmlMapColumns * 4);
    std::fill(p.decisions.begin(), p.decisions.end(), 0);
    p.decisions[static_cast<std::size_t>(1 * tokens + 4321)] = 1;
    p.metrics.global_fraction.assign(kLayers, 0.0);
    const std::string html = profile_to_html(p);
    const std::size_t map = html.find("id=\"routing-map\"");
    const std::size_t map_end = html.find("</svg>", map);
    ASSERT_NE(map, std::string::npos);
    const std::string svg = html.substr(map, map_end - map);
    std::size_t red = 0;
    for (std::size_t at = svg.find("fill=\"#c0392b\""); at != std::string::npos;
         at = svg.find("fill=\"#c0392b\"", at + 1)) {
        ++red;
    }
    EXPECT_EQ(red, 1u);
    EXPECT_NE(html.find("Downsampled to 1200 x 4 cells"), std::string::npos);

    // The long document is trimmed with a note, and stays bounded in size.
    EXPECT_NE(html.find("tokens omitted"), std::string::npos);
    EXPECT_NE(html.find("around its most-routed passages"), std::string::npos);
    EXPECT_LT(html.size(), 400000u);
}

TEST_F(Export, HtmlCompareShowsTheWhatIf) {
    const Profile base = make_profile();
    Profile variant = base;
    variant.options.prune = {0, static_cast<int>(kPrunedLayer)};
    std::fill(variant.decisions.begin(), variant.decisions.begin() + base.num_tokens(), 0);
    variant.metrics.global_fraction[0] = 0.0;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) variant.token_nll[t] += 0.5f;
    variant.token_nll[17] += 3.0f;
    variant.metrics.mean_nll = 5.6;
    const std::string html = profile_to_html(base, &variant);
    EXPECT_NE(html.find("NLL change per token"), std::string::npos);
    EXPECT_NE(html.find("at token 17"), std::string::npos);
    EXPECT_NE(html.find("tokens decided differently"), std::string::npos);
    EXPECT_NE(html.find("<td>0.5000</td>"), std::string::npos);        // Δ mean NLL
    EXPECT_NE(html.find("<td>variant only</td>"), std::string::npos);  // layer 0

    Profile other = base;
    other.token_ids[0] += 1;
    EXPECT_CONTAINS(test::message_of([&] { profile_to_html(base, &other); }), "--compare");

    write_text_atomically(dir_ / "compare.html", html);
    const HtmlCheck check = check_with_python("html", dir_ / "compare.html", dir_);
    if (check.skipped) GTEST_SKIP() << "L2A_PYTHON (" << L2A_PYTHON << ") is not available";
    EXPECT_EQ(check.result["counts"]["svg"], 4);
}

// The first token past the first window whose text is `text` and that stayed local in
// `layer`; -1 when there is none.
std::int64_t local_token_with_text(const Profile& p, std::int64_t layer, const std::string& text) {
    const std::int64_t tokens = p.num_tokens();
    for (std::int64_t t = 16; t < tokens; ++t) {
        const auto i = static_cast<std::size_t>(t);
        if (p.document_text.substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]) == text &&
            p.decisions[static_cast<std::size_t>(layer * tokens + t)] == 0) {
            return t;
        }
    }
    return -1;
}

TEST_F(Export, ReportsShowTheRoutingOracleOnlyWithDistantMasses) {
    Profile p = make_profile();
    const std::string without = profile_to_html(p);
    EXPECT_EQ(without.find("Routing oracle"), std::string::npos);
    EXPECT_EQ(without.find("id=\"oracle\""), std::string::npos);

    add_distant_mass(p);
    const std::int64_t tokens = p.num_tokens();
    auto mass = [&](std::int64_t layer, std::int64_t t) -> float& {
        return p.distant_mass[static_cast<std::size_t>(layer * tokens + t)];
    };
    // The two tokens the router missed most, with text that must be escaped or kept on a line;
    // a pruned layer runs no global attention by choice, so its tokens are no misses.
    const std::int64_t markup = local_token_with_text(p, 0, "<b>&amp;");
    const std::int64_t broken = local_token_with_text(p, 1, "line\nbreak");
    ASSERT_GE(markup, 0);
    ASSERT_GE(broken, 0);
    mass(0, markup) = 0.999f;
    mass(1, broken) = 0.998f;
    mass(kPrunedLayer, 20) = 1.0f;

    const std::string html = profile_to_html(p);
    const std::size_t begin = html.find("<section id=\"oracle\"><h2>Routing oracle</h2>");
    ASSERT_NE(begin, std::string::npos);
    const std::string section = html.substr(begin, html.find("</section>", begin) - begin);
    EXPECT_NE(section.find("at least 50% of its global query"), std::string::npos);
    EXPECT_NE(section.find("older than the local window of 64 tokens"), std::string::npos);
    EXPECT_NE(section.find("0.5 is chance"), std::string::npos);
    EXPECT_NE(section.find("ceiling: the ratio of the best choice"), std::string::npos);

    // Per layer, the numbers of score_layer.
    for (std::int64_t l = 0; l < kLayers; ++l) {
        const auto row = static_cast<std::size_t>(l * tokens);
        const auto T = static_cast<std::size_t>(tokens);
        const LayerOracle o =
            score_layer({p.distant_mass.data() + row, T}, {p.router_logits.data() + row, T},
                        {p.decisions.data() + row, T}, 0.5);
        const std::string cells =
            "<tr><td>" + std::to_string(l) + (l == kPrunedLayer ? " (pruned)" : "") + "</td><td>" +
            format_percent(p.metrics.global_fraction[static_cast<std::size_t>(l)]) + "</td><td>" +
            format_fixed(o.auc, 3) + "</td><td>" + format_fixed(o.precision, 3) + "</td><td>" +
            format_fixed(o.recall, 3) + "</td><td>" + format_fixed(o.mean_distant_mass_routed, 3) +
            "</td><td>" + format_fixed(o.mean_distant_mass_local, 3) + "</td><td>" +
            format_fixed(o.ratio, 2) + "</td><td>" + format_fixed(o.ceiling_ratio, 2) +
            "</td><td>" + group_digits(o.positives) + "</td></tr>";
        EXPECT_NE(section.find(cells), std::string::npos) << cells << "\n" << section;
        if (l == kPrunedLayer) {
            EXPECT_TRUE(std::isnan(o.precision));
        }
    }
    // The pruned layer routed nothing: its precision and routed mean read n/a, never "nan".
    EXPECT_NE(section.find("<td>n/a</td>"), std::string::npos);
    EXPECT_EQ(section.find("nan"), std::string::npos);

    // Missed: the local tokens at or above min_mass of every layer but the pruned one, highest
    // first, eight of them.
    struct Miss {
        float mass;
        std::int64_t layer, token;
    };
    std::vector<Miss> expected;
    for (std::int64_t l = 0; l < kLayers; ++l) {
        for (std::int64_t t = 0; t < tokens && l != kPrunedLayer; ++t) {
            if (p.decisions[static_cast<std::size_t>(l * tokens + t)] == 0 && mass(l, t) >= 0.5f) {
                expected.push_back({mass(l, t), l, t});
            }
        }
    }
    std::stable_sort(expected.begin(), expected.end(),
                     [](const Miss& a, const Miss& b) { return a.mass > b.mass; });
    ASSERT_GT(expected.size(), 8u);
    EXPECT_NE(section.find(group_digits(static_cast<std::int64_t>(expected.size())) +
                           " token-layers ran local attention though"),
              std::string::npos);
    expected.resize(8);
    EXPECT_EQ(expected[0].token, markup);
    EXPECT_EQ(expected[1].token, broken);
    std::size_t at = section.find("<h3>Missed tokens</h3>");
    ASSERT_NE(at, std::string::npos);
    std::size_t rows = 0;
    for (std::size_t r = section.find("<tr>", at); r != std::string::npos;
         r = section.find("<tr>", r + 1)) {
        ++rows;
    }
    EXPECT_EQ(rows, 9u);  // the header and eight tokens
    for (const Miss& m : expected) {
        const std::string cells = "<tr><td>" + std::to_string(m.layer) + "</td><td>" +
                                  std::to_string(m.token) + "</td><td>" + format_fixed(m.mass, 3) +
                                  "</td><td class=\"text\">";
        const std::size_t found = section.find(cells, at);
        EXPECT_NE(found, std::string::npos) << cells << " missing or out of order";
        if (found != std::string::npos) at = found + 1;
    }
    EXPECT_NE(section.find("<td class=\"text\">&quot;&lt;b&gt;&amp;amp;&quot;</td>"),
              std::string::npos);
    EXPECT_NE(section.find("<td class=\"text\">&quot;line↵break&quot;</td>"), std::string::npos);

    // With --compare: the variant's scores too when it has them, and the section says whose.
    Profile plain = p;
    plain.distant_mass.clear();
    const std::string base_only = profile_to_html(p, &plain);
    EXPECT_NE(base_only.find("the variant (--compare) has no routing oracle"), std::string::npos);
    EXPECT_EQ(base_only.find("Variant: routing oracle"), std::string::npos);
    EXPECT_EQ(profile_to_html(plain, &p).find("id=\"oracle\""), std::string::npos);
    Profile scored = p;
    scored.oracle_min_mass = 0.25;
    const std::string both = profile_to_html(p, &scored);
    EXPECT_NE(both.find("<h3>Variant: routing oracle</h3>"), std::string::npos);
    EXPECT_NE(both.find("<h3>Variant: missed tokens</h3>"), std::string::npos);
    EXPECT_NE(both.find("from a distant mass of 25%"), std::string::npos);

    write_text_atomically(dir_ / "oracle.html", both);
    const HtmlCheck check = check_with_python("html", dir_ / "oracle.html", dir_);
    if (!check.skipped) {
        EXPECT_EQ(check.result["ids"], json::array({"run", "sparsity", "routing-map", "oracle",
                                                    "timing", "what-if", "document"}));
    }

#if L2A_TEST_PDF
    if (!have_pdftotext()) GTEST_SKIP() << "no pdftotext on PATH (poppler-utils)";
    export_pdf(p, dir_ / "oracle.pdf", &scored);
    const std::string text = pdf_text(dir_ / "oracle.pdf", dir_);
    for (const char* line :
         {"\nRouting oracle\n", "\nMissed tokens\n", "\nVariant: routing oracle\n", "\"<b>&amp;\"",
          "\"line↵break\"", "0.5 is chance", "n/a"}) {
        EXPECT_NE(text.find(line), std::string::npos) << line;
    }
    EXPECT_EQ(text.find(" nan"), std::string::npos);
    export_pdf(plain, dir_ / "plain.pdf");
    EXPECT_EQ(pdf_text(dir_ / "plain.pdf", dir_).find("Routing oracle"), std::string::npos);
#endif
}

TEST_F(Export, ReportsSayWhenTheNllChartIsClipped) {
    // 16000 tokens in 1200 bins of up to 14: one token far above its bin's mean.
    const Profile base = make_profile(8000);
    Profile variant = base;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) variant.token_nll[t] += 0.25f;
    variant.token_nll[4321] += 4.0f;
    const std::string html = profile_to_html(base, &variant);
    EXPECT_NE(html.find("Clipped: the scale ends at ±"), std::string::npos);
    EXPECT_NE(html.find("single tokens in 1 bin go beyond it, up to +4.250"), std::string::npos);
    EXPECT_NE(html.find("mean NLL change per bin of up to 14 tokens (clipped at ±"),
              std::string::npos);
    std::size_t marks = 0;
    for (std::size_t at = html.find("class=\"beyond\""); at != std::string::npos;
         at = html.find("class=\"beyond\"", at + 1)) {
        ++marks;
    }
    EXPECT_EQ(marks, 1u);
    // The axis label is the largest bin mean, below the single token's change.
    const std::size_t label = html.find("text-anchor=\"end\">+", html.find("NLL change per token"));
    ASSERT_NE(label, std::string::npos);
    const double scale = std::stod(html.substr(label + 19, 8));
    EXPECT_GT(scale, 0.25);
    EXPECT_LT(scale, 4.25);

    // One token per bin: the bars are the tokens, nothing lies beyond the scale.
    const Profile small = make_profile(150);
    Profile small_variant = small;
    for (std::size_t t = 1; t < small_variant.token_nll.size(); ++t)
        small_variant.token_nll[t] += 0.25f;
    small_variant.token_nll[17] += 4.0f;
    const std::string plain = profile_to_html(small, &small_variant);
    EXPECT_EQ(plain.find("Clipped"), std::string::npos);
    EXPECT_EQ(plain.find("class=\"beyond\""), std::string::npos);
    EXPECT_NE(plain.find(">NLL change per token</text>"), std::string::npos);

#if L2A_TEST_PDF
    if (!have_pdftotext()) GTEST_SKIP() << "no pdftotext on PATH (poppler-utils)";
    export_pdf(base, dir_ / "clipped.pdf", &variant);
    const std::string text = pdf_text(dir_ / "clipped.pdf", dir_);
    EXPECT_NE(text.find("Clipped: the scale ends at ±"), std::string::npos) << text;
    EXPECT_NE(text.find("(clipped at ±"), std::string::npos);
    export_pdf(small, dir_ / "plain.pdf", &small_variant);
    EXPECT_EQ(pdf_text(dir_ / "plain.pdf", dir_).find("lipped"), std::string::npos);
#endif
}

TEST_F(Export, ReportsNeverSetTimesOfDifferentRunsAgainstEachOther) {
    Profile base = make_profile(100);
    base.options.device = "cpu";
    base.device = "cpu";
    base.cpu_threads = 2;
    base.wall_seconds = 22.96;
    Profile variant = base;
    variant.cpu_threads = 1;
    variant.wall_seconds = 2.89;
    const std::string html = profile_to_html(base, &variant);
    EXPECT_NE(html.find("<th>wall time of the run (s)</th><td>22.9600</td><td>2.8900</td>"
                        "<td class=\"warn\">⚠ not comparable: 2 vs 1 CPU threads</td>"),
              std::string::npos);
    EXPECT_EQ(html.find("-20.0700"), std::string::npos) << "the difference is shown as a change";
    EXPECT_NE(html.find("2 vs 1 CPU threads): their times are shown side by side"),
              std::string::npos);
    EXPECT_EQ(html.find("time to first token"), std::string::npos);
    EXPECT_EQ(html.find("TTFT"), std::string::npos);

    // Device and backend too; a composed variant time says how it was obtained.
    variant.cpu_threads = 2;
    variant.options.device = "cuda:0";
    variant.options.backend = "sdpa";
    variant.time_basis = "base layers 0-2 reused (20.1 s) + re-run from layer 3 (0.5 s)";
    const std::string other = profile_to_html(base, &variant);
    EXPECT_NE(other.find("not comparable: device cpu vs cuda:0; backend kernels vs sdpa; time "
                         "of one run measured end to end vs base layers 0-2 reused (20.1 s) + "
                         "re-run from layer 3 (0.5 s)"),
              std::string::npos);
    // A composed time alone (same device, backend and threads) is not set against a measured one.
    variant = base;
    variant.time_basis = "base layers 0-2 reused (20.1 s) + re-run from layer 3 (0.5 s)";
    variant.wall_seconds = 20.6;
    const std::string composed = profile_to_html(base, &variant);
    EXPECT_NE(composed.find("<td>22.9600</td><td>20.6000</td><td class=\"warn\">⚠ not "
                            "comparable: time of one run measured end to end vs base layers"),
              std::string::npos);

    // Weights in another precision (recorded since format 4; unrecorded is not a difference).
    variant = base;
    base.dtype = "bf16";
    variant.dtype = "fp16";
    EXPECT_NE(profile_to_html(base, &variant).find("not comparable: weights bf16 vs fp16"),
              std::string::npos);
    variant.dtype = "";
    EXPECT_EQ(profile_to_html(base, &variant).find("not comparable"), std::string::npos);
    base.dtype = "";

    // The same settings: a plain change, no warning.
    Profile same = base;
    same.wall_seconds = 20.0;
    const std::string fine = profile_to_html(base, &same);
    EXPECT_NE(fine.find("<td>22.9600</td><td>20.0000</td><td>-2.9600</td>"), std::string::npos);
    EXPECT_EQ(fine.find("not comparable"), std::string::npos);
    EXPECT_NE(fine.find("<th>CPU threads</th><td>2</td>"), std::string::npos);
    EXPECT_NE(fine.find("one run measured end to end, per-token NLL pass included"),
              std::string::npos);

#if L2A_TEST_PDF
    if (!have_pdftotext()) GTEST_SKIP() << "no pdftotext on PATH (poppler-utils)";
    variant = base;
    variant.cpu_threads = 1;
    export_pdf(base, dir_ / "threads.pdf", &variant);
    const std::string text = pdf_text(dir_ / "threads.pdf", dir_);
    EXPECT_NE(text.find("not comparable: 2 vs 1 CPU threads"), std::string::npos) << text;
#endif
}

// docs/PROFILE_FORMAT.md's Python example, run as it stands against a saved profile.
TEST_F(Export, ProfileFormatDocExampleRuns) {
    if (!test::python_can_import("numpy, safetensors")) {
        GTEST_SKIP() << "L2A_PYTHON (" << L2A_PYTHON << ") cannot import numpy and safetensors";
    }
    const std::string doc =
        test::read_file(fs::path(L2A_SOURCE_DIR) / "docs" / "PROFILE_FORMAT.md");
    const std::size_t begin = doc.find("```python\n");
    ASSERT_NE(begin, std::string::npos) << "no Python example in docs/PROFILE_FORMAT.md";
    const std::size_t end = doc.find("```\n", begin + 10);
    ASSERT_NE(end, std::string::npos);
    write_text_atomically(dir_ / "read_profile.py", doc.substr(begin + 10, end - begin - 10));

    Profile p = make_profile(60);
    p.token_nll[11] = 42.5f;  // the highest NLL, at a token whose text is known
    save_profile(p, dir_ / "run.l2a");
    const int status = test::run_python_script(
        dir_ / "read_profile.py", test::shell_quote((dir_ / "run.l2a").string()), dir_ / "out.txt");
    const std::string out = test::read_file(dir_ / "out.txt");
    ASSERT_EQ(status, 0) << out;

    double sum = 0.0;
    int counted = 0;
    for (float v : p.token_nll) {
        if (std::isfinite(v)) {
            sum += v;
            ++counted;
        }
    }
    char expected[160];
    std::snprintf(expected, sizeof expected, "%lld tokens, %lld layers, mean NLL %.4f\n",
                  static_cast<long long>(p.num_tokens()), static_cast<long long>(kLayers),
                  sum / counted);
    EXPECT_EQ(out.rfind(expected, 0), 0u) << out;
    for (std::int64_t l = 0; l < kLayers; ++l) {
        std::snprintf(expected, sizeof expected, "layer %lld: %.4f of tokens global\n",
                      static_cast<long long>(l),
                      static_cast<double>(export_support_routed(p, l)) / p.num_tokens());
        EXPECT_NE(out.find(expected), std::string::npos) << expected << "\n" << out;
    }
    EXPECT_NE(out.find("highest NLL 42.5000 at token 11: "), std::string::npos) << out;
    if (test::python_can_import("pandas")) {
        EXPECT_NE(out.find("{0: "), std::string::npos) << "the pandas part printed nothing";
    }
}

TEST_F(Export, ExportersRejectInconsistentProfiles) {
    Profile p = make_profile(10);
    p.decisions.pop_back();
    EXPECT_CONTAINS(test::message_of([&] { profile_to_html(p); }), "do not match");
    EXPECT_CONTAINS(test::message_of([&] { profile_to_chrome_trace(p); }), "do not match");
    EXPECT_CONTAINS(test::message_of([&] { export_csv(p, dir_ / "x.csv"); }), "do not match");
    EXPECT_FALSE(fs::exists(dir_ / "x.layers.csv"));
    EXPECT_FALSE(fs::exists(dir_ / "x.routing.csv"));
    Profile q = make_profile(10);
    add_distant_mass(q);
    q.distant_mass.pop_back();
    EXPECT_CONTAINS(test::message_of([&] { profile_to_html(q); }), "distant masses do not match");
    EXPECT_CONTAINS(test::message_of([&] { export_csv(q, dir_ / "y.csv"); }),
                    "distant masses do not match");
}

TEST_F(Export, ExportersHandleTinyAndPlainProfiles) {
    // One token of a plain model, no text, no timings; and a run of no layers.
    Profile p;
    p.model.model_type = "qwen3";
    p.num_layers = 2;
    p.token_ids = {42};
    p.token_begin = {0};
    p.token_end = {0};
    p.decisions = {1, 1};
    p.router_logits = {0.0f, 0.0f};
    p.token_nll = {std::numeric_limits<float>::quiet_NaN()};
    p.metrics.mean_nll = std::numeric_limits<double>::quiet_NaN();
    for (const Profile& q : {p, [&] {
                                 Profile none = p;
                                 none.num_layers = 0;
                                 none.decisions.clear();
                                 none.router_logits.clear();
                                 return none;
                             }()}) {
        const std::string html = profile_to_html(q);
        EXPECT_NE(html.find("token ids only"), std::string::npos);
        EXPECT_NE(html.find("recorded no layer timings"), std::string::npos);
        const json trace = json::parse(profile_to_chrome_trace(q));
        std::int64_t counters = 0;
        for (const json& e : trace["traceEvents"]) counters += e["ph"] == "C";
        EXPECT_EQ(counters, q.num_layers);
        EXPECT_EQ(parse_csv(profile_layers_csv(q)).size(),
                  static_cast<std::size_t>(q.num_layers) + 1);
        const auto tokens = parse_csv(profile_tokens_csv(q));
        ASSERT_EQ(tokens.size(), 2u);
        EXPECT_EQ(tokens[1][5], "");  // NaN NLL
        EXPECT_EQ(tokens[1][6], std::to_string(q.num_layers));
        const TimelineSummary s = summarize_timeline(q);
        EXPECT_EQ(s.layers.size(), static_cast<std::size_t>(q.num_layers));
        EXPECT_EQ(s.run_seconds, 0.0);
    }
}

// The first of the usual Chromium names on PATH, or "".
std::string find_chromium() {
    for (const char* name :
         {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
        const std::string command = std::string("command -v ") + name + " >/dev/null 2>&1";
        if (std::system(command.c_str()) == 0) return name;
    }
    return "";
}

TEST_F(Export, HtmlRendersInHeadlessChromium) {
    const std::string chromium = find_chromium();
    if (chromium.empty()) {
        GTEST_SKIP() << "no Chromium on PATH (chromium, chromium-browser, google-chrome): "
                        "install the chromium package (scripts/setup does) to render the report";
    }
    export_html(make_profile(), dir_ / "report.html");
    const fs::path png = dir_ / "report.png";
    // A private profile folder: a desktop session's Chromium must not be touched.
    const std::string command =
        "timeout 120 " + chromium + " --headless --no-sandbox --disable-gpu --hide-scrollbars " +
        "--no-first-run --user-data-dir=" + test::shell_quote((dir_ / "chromium").string()) +
        " --screenshot=" + test::shell_quote(png.string()) + " --window-size=1200,2000 " +
        test::shell_quote("file://" + (dir_ / "report.html").string()) + " > " +
        test::shell_quote((dir_ / "chromium.log").string()) + " 2>&1";
    const int status = std::system(command.c_str());
    ASSERT_TRUE(fs::exists(png)) << "exit " << status << "\n"
                                 << test::read_file(dir_ / "chromium.log");

    const HtmlCheck check = check_with_python("png", png, dir_);
    if (check.skipped) GTEST_SKIP() << "L2A_PYTHON (" << L2A_PYTHON << ") is not available";
    ASSERT_FALSE(check.result.is_null());
    EXPECT_EQ(check.result["width"], 1200);
    EXPECT_EQ(check.result["height"], 2000);
    EXPECT_GT(check.result["colours"].get<int>(), 16) << "the screenshot is (nearly) blank";
    EXPECT_LT(check.result["dominant_share"].get<double>(), 0.97);
}

// ---- PDF (builds with Qt) ----------------------------------------------------------------------

#if L2A_TEST_PDF
// Pixels of `image` within `tolerance` (per channel) of `colour`.
std::int64_t count_colour(const QImage& image, QRgb colour, int tolerance = 6) {
    std::int64_t n = 0;
    for (int y = 0; y < image.height(); ++y) {
        const auto* row = reinterpret_cast<const QRgb*>(image.constScanLine(y));
        for (int x = 0; x < image.width(); ++x) {
            n += std::abs(qRed(row[x]) - qRed(colour)) <= tolerance &&
                 std::abs(qGreen(row[x]) - qGreen(colour)) <= tolerance &&
                 std::abs(qBlue(row[x]) - qBlue(colour)) <= tolerance;
        }
    }
    return n;
}

std::int64_t non_white(const QImage& image) {
    return image.width() * static_cast<std::int64_t>(image.height()) -
           count_colour(image, qRgb(255, 255, 255), 0);
}

// PDF page objects ("/Type /Page", not "/Type /Pages").
int pdf_pages(const std::string& pdf) {
    int pages = 0;
    for (std::size_t at = pdf.find("/Type /Page"); at != std::string::npos;
         at = pdf.find("/Type /Page", at + 1)) {
        pages += pdf.compare(at, 12, "/Type /Pages") != 0;
    }
    return pages;
}

TEST_F(Export, PdfIsAWholeDocumentWithOnePagePerReportPage) {
    const Profile p = make_profile(400);
    ASSERT_TRUE(pdf_export_available());
    export_pdf(p, dir_ / "report.pdf");
    const std::string pdf = test::read_file(dir_ / "report.pdf");
    EXPECT_EQ(pdf.rfind("%PDF-1.", 0), 0u);
    EXPECT_NE(pdf.find("%%EOF", pdf.size() - 16), std::string::npos) << "truncated PDF";
    const int pages = report_page_count(p);
    EXPECT_GE(pages, 2);
    EXPECT_EQ(pdf_pages(pdf), pages);
    // The comparison adds its tables and chart.
    Profile variant = p;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) variant.token_nll[t] += 0.5f;
    export_pdf(p, dir_ / "compare.pdf", &variant);
    EXPECT_GT(report_page_count(p, &variant), pages - 1);
    EXPECT_EQ(pdf_pages(test::read_file(dir_ / "compare.pdf")), report_page_count(p, &variant));
}

TEST_F(Export, PdfPagesShowTheChartsAndTheHighlightedDocument) {
    const Profile p = make_profile(400);
    Profile variant = p;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) {
        variant.token_nll[t] += t % 3 == 0 ? -0.4f : 0.6f;
    }
    const int pages = report_page_count(p, &variant);
    std::int64_t bars = 0, routed = 0, phases = 0, better = 0, marks = 0;
    for (int page = 0; page < pages; ++page) {
        const QImage image = render_report_page(p, &variant, page, 96);
        EXPECT_EQ(image.width(), 794);  // A4 at 96 dpi
        // For a look at the layout: L2A_REPORT_PAGES_DIR=folder keeps the rendered pages.
        if (const char* keep = std::getenv("L2A_REPORT_PAGES_DIR")) {
            image.save(QString::fromStdString(
                (fs::path(keep) / ("page-" + std::to_string(page) + ".png")).string()));
        }
        EXPECT_GT(non_white(image), 2000) << "page " << page << " is blank";
        bars += count_colour(image, qRgb(0x3b, 0x6f, 0xb6));    // sparsity bars
        routed += count_colour(image, qRgb(0xc0, 0x39, 0x2b));  // routing map, worse tokens
        phases += count_colour(image, qRgb(0x8b, 0xbf, 0x72));  // mlp phase of the timing chart
        better += count_colour(image, qRgb(0x2e, 0x8b, 0x57));  // tokens the variant improved
        marks += count_colour(image, qRgb(0xed, 0x89, 0x36)) +  // highlighted passages
                 count_colour(image, qRgb(0xfd, 0xe9, 0xc4));
    }
    EXPECT_GT(bars, 300);
    EXPECT_GT(routed, 300);
    EXPECT_GT(phases, 100);
    EXPECT_GT(better, 20);
    EXPECT_GT(marks, 50);
    EXPECT_CONTAINS(test::message_of([&] { render_report_page(p, nullptr, 99, 96); }),
                    "does not exist");
}

// The report's headings: the only text that may be larger than the body.
const std::set<std::string> kHeadings = {"L2A Studio report",
                                         "Run",
                                         "Global attention per layer",
                                         "Routing map",
                                         "Routing oracle",
                                         "Missed tokens",
                                         "Variant: routing oracle",
                                         "Variant: missed tokens",
                                         "Time per layer and phase",
                                         "What-if comparison",
                                         "NLL change per token (variant - base)",
                                         "Routing per layer",
                                         "Document"};

// Every word of every page: the size of the body text (headings aside), inside the page's
// printable area, and clear of every other word.
void expect_readable_pages(const std::vector<PdfPage>& pages) {
    // A word's box is its font's ascent + descent high, in proportion to the font size, so
    // heights compare as font sizes do. The body: the most common height.
    std::map<long, int> heights;
    for (const PdfPage& page : pages) {
        for (const PdfWord& w : page.words) ++heights[std::lround((w.y1 - w.y0) * 10)];
    }
    ASSERT_FALSE(heights.empty()) << "the PDF has no text";
    const double body =
        std::max_element(heights.begin(), heights.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; })
            ->first /
        10.0;
    int checked = 0;
    for (std::size_t n = 0; n < pages.size(); ++n) {
        const PdfPage& page = pages[n];
        EXPECT_NEAR(page.width, 595.0, 1.0);  // A4
        EXPECT_NEAR(page.height, 842.0, 1.0);
        for (std::size_t i = 0; i < page.words.size(); ++i) {
            const PdfWord& w = page.words[i];
            const std::string& line = page.lines[static_cast<std::size_t>(w.line)];
            const double ratio = (w.y1 - w.y0) / body;
            const bool heading = kHeadings.count(line) > 0;
            ++checked;
            if (heading) {
                EXPECT_LE(ratio, 2.4) << "page " << n + 1 << ": heading '" << line << "'";
            } else {
                EXPECT_TRUE(ratio >= 0.6 && ratio <= 1.2)
                    << "page " << n + 1 << ": '" << w.text << "' (in '" << line << "') is " << ratio
                    << " times the body text's size";
            }
            // Inside the 15 mm margins (42.5 pt), footer included.
            EXPECT_TRUE(w.x0 >= 40 && w.x1 <= page.width - 40 && w.y0 >= 40 &&
                        w.y1 <= page.height - 40)
                << "page " << n + 1 << ": '" << w.text << "' at " << w.x0 << "," << w.y0 << "-"
                << w.x1 << "," << w.y1 << " lies outside the printable area";
            for (std::size_t k = i + 1; k < page.words.size(); ++k) {
                const PdfWord& o = page.words[k];
                const double ox = std::min(w.x1, o.x1) - std::max(w.x0, o.x0);
                const double oy = std::min(w.y1, o.y1) - std::max(w.y0, o.y0);
                if (ox <= 0 || oy <= 0) continue;
                const double smaller =
                    std::min((w.x1 - w.x0) * (w.y1 - w.y0), (o.x1 - o.x0) * (o.y1 - o.y0));
                EXPECT_LT(ox * oy, 0.2 * smaller)
                    << "page " << n + 1 << ": '" << w.text << "' overlaps '" << o.text << "'";
            }
        }
    }
    EXPECT_GT(checked, 500);
}

TEST_F(Export, PdfTextIsTheBodySizeInsideThePageOnEveryPage) {
    if (!have_pdftotext()) {
        GTEST_SKIP() << "no pdftotext on PATH: install poppler-utils (scripts/setup does) to "
                        "read the PDF's text boxes";
    }
    Profile p = make_profile(400);
    add_distant_mass(p);
    Profile variant = p;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) variant.token_nll[t] += 0.3f;
    export_pdf(p, dir_ / "report.pdf", &variant);
    const std::vector<PdfPage> pages = pdf_words(dir_ / "report.pdf", dir_);
    ASSERT_EQ(static_cast<int>(pages.size()), report_page_count(p, &variant));
    expect_readable_pages(pages);

    // Every section is there, in the HTML report's order, and the charts' labels with them.
    std::string all;
    for (const PdfPage& page : pages) {
        for (const std::string& line : page.lines) all += line + "\n";
    }
    std::size_t at = 0;
    for (const char* section :
         {"Run", "Global attention per layer", "Routing map", "Routing oracle", "Missed tokens",
          "Variant: routing oracle", "Variant: missed tokens", "Time per layer and phase",
          "What-if comparison", "NLL change per token (variant - base)", "Routing per layer",
          "Document"}) {
        const std::size_t found = all.find(std::string("\n") + section + "\n", at);
        EXPECT_NE(found, std::string::npos)
            << "section '" << section << "' missing or out of order";
        if (found != std::string::npos) at = found + 1;
    }
    for (const char* label : {"25%", "layer (P: pruned)", "token 0", "mlp", "router",
                              "NLL change per token", "\nsay \"hi\"", "naïve"}) {
        EXPECT_NE(all.find(label), std::string::npos) << label;
    }
}

TEST_F(Export, PdfOfTheDeepLongRunStaysReadable) {
    if (!have_pdftotext()) GTEST_SKIP() << "no pdftotext on PATH (poppler-utils)";
    // 36 layers and 16000 tokens: every layer label of the map and the charts at their size.
    Profile p = make_profile(8000);
    const std::int64_t tokens = p.num_tokens();
    p.num_layers = p.model.num_layers = 36;
    p.router_logits.resize(static_cast<std::size_t>(36 * tokens), 0.5f);
    p.decisions.resize(static_cast<std::size_t>(36 * tokens), 0);
    for (std::int64_t t = 0; t < tokens; t += 7)
        p.decisions[static_cast<std::size_t>(30 * tokens + t)] = 1;
    p.metrics.global_fraction.clear();
    p.metrics.kv.clear();
    add_distant_mass(p);
    Profile variant = p;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) {
        variant.token_nll[t] += t % 500 == 0 ? 4.0f : 0.05f;
    }
    export_pdf(p, dir_ / "deep.pdf", &variant);
    const std::vector<PdfPage> pages = pdf_words(dir_ / "deep.pdf", dir_);
    ASSERT_EQ(static_cast<int>(pages.size()), report_page_count(p, &variant));
    expect_readable_pages(pages);
}

// The same page at two resolutions is the same picture, scaled, text included: the bands of
// the page (1/72 inch high, 1/8 of the width wide) that hold ink are the same.
TEST_F(Export, PdfPagesLookTheSameAtAnyResolution) {
    const Profile p = make_profile(400);
    Profile variant = p;
    for (std::size_t t = 1; t < variant.token_nll.size(); ++t) variant.token_nll[t] += 0.3f;
    const int pages = report_page_count(p, &variant);
    constexpr int kRows = 842, kColumns = 8;
    auto inked = [](const QImage& image) {
        std::vector<char> cells(kRows * kColumns, 0);
        for (int y = 0; y < image.height(); ++y) {
            const auto* line = reinterpret_cast<const QRgb*>(image.constScanLine(y));
            const int row = std::min(kRows - 1, static_cast<int>(y * 841.89 / image.height()));
            for (int x = 0; x < image.width(); ++x) {
                if (qGray(line[x]) < 200) cells[row * kColumns + x * kColumns / image.width()] = 1;
            }
        }
        return cells;
    };
    for (int page = 0; page < pages; ++page) {
        const std::vector<char> low = inked(render_report_page(p, &variant, page, 100));
        const std::vector<char> high = inked(render_report_page(p, &variant, page, 300));
        // A cell inked at one resolution must be inked at the other within a point.
        auto unmatched = [](const std::vector<char>& a, const std::vector<char>& b) {
            int count = 0, total = 0;
            for (int r = 0; r < kRows; ++r) {
                for (int c = 0; c < kColumns; ++c) {
                    if (!a[r * kColumns + c]) continue;
                    ++total;
                    bool near = false;
                    for (int d = -1; d <= 1; ++d) {
                        const int rr = std::clamp(r + d, 0, kRows - 1);
                        near = near || b[rr * kColumns + c];
                    }
                    count += !near;
                }
            }
            return std::pair{count, total};
        };
        const auto [missing, inked_high] = unmatched(high, low);
        const auto [extra, inked_low] = unmatched(low, high);
        ASSERT_GT(inked_high, 100) << "page " << page + 1 << " is (nearly) blank";
        EXPECT_LT(missing + extra, (inked_high + inked_low) / 50)
            << "page " << page + 1 << ": " << missing << " + " << extra
            << " bands inked at only one of 100 and 300 dpi";
    }
}

TEST_F(Export, PdfErrorsNameTheFileAndLeaveNothingBehind) {
    const Profile p = make_profile(20);
    const fs::path missing = dir_ / "no-such-folder" / "report.pdf";
    EXPECT_CONTAINS(test::message_of([&] { export_pdf(p, missing); }), "report.pdf");
    EXPECT_FALSE(fs::exists(missing.parent_path()));
    Profile broken = p;
    broken.decisions.pop_back();
    EXPECT_CONTAINS(test::message_of([&] { export_pdf(broken, dir_ / "x.pdf"); }), "do not match");
    EXPECT_FALSE(fs::exists(dir_ / "x.pdf"));
    for (const auto& entry : fs::directory_iterator(dir_)) {
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos)
            << "temporary file left: " << entry.path();
    }
}
#else
TEST_F(Export, PdfSaysItNeedsQt) {
    EXPECT_FALSE(pdf_export_available());
    EXPECT_CONTAINS(test::message_of([&] { export_pdf(make_profile(10), dir_ / "r.pdf"); }),
                    "needs a build with Qt 6");
    EXPECT_FALSE(fs::exists(dir_ / "r.pdf"));
}
#endif

}  // namespace
}  // namespace l2a
