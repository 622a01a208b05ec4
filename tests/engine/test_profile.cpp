#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

fs::path scratch_dir() { return test::scratch_dir("profile"); }

// Three layers, five tokens; layer 0 behaves like a plain layer (NaN logits), the text is not
// ASCII, and several doubles are chosen to catch any rounding on the way through JSON.
Profile sample_profile() {
    Profile p;
    p.model.path = "/models/qwen3-l2a-tiny";
    p.model.model_type = "l2a_qwen3";
    p.model.num_layers = 3;
    p.model.hidden_size = 64;
    p.model.intermediate_size = 176;
    p.model.num_heads = 4;
    p.model.num_kv_heads = 2;
    p.model.head_dim = 16;
    p.model.vocab_size = 300;
    p.model.parameter_count = 123456789012;
    p.model.is_l2a = true;
    p.model.untrained = true;
    p.model.sliding_window = 4095;
    p.model.sigmoid_temp = 0.1;
    p.model.sigmoid_threshold = 0.5;
    p.model.router_input = "hidden_linearproj";

    p.document_path = "docs/naïve 文書.md";
    p.document_text = "Grüße, 世界! 🙂";
    p.replaced_sequences = 2;
    p.tokens_before_truncation = 9;
    p.token_ids = {11, 0, 299, 42, 7};
    p.token_begin = {0, 5, 8, 16, 18};
    p.token_end = {5, 8, 16, 18, static_cast<std::uint32_t>(p.document_text.size())};

    p.num_layers = 3;
    p.router_logits = {kNaN,
                       kNaN,
                       kNaN,
                       kNaN,
                       kNaN,  //
                       -1.5f,
                       0.0f,
                       -0.0f,
                       3.25f,
                       1e-30f,  //
                       std::numeric_limits<float>::infinity(),
                       -2.0f,
                       0.1f,
                       7.0f,
                       -7.0f};
    p.decisions = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0};
    p.token_nll = {kNaN, 5.5f, 0.25f, 12.0f, 1.0f / 3.0f};

    p.options.max_tokens = 5;
    p.options.threshold = 0.3;
    p.options.routing = {RoutingKind::Random, 1.0 / 3.0};
    p.options.prune = {0, 2};
    p.options.seed = std::numeric_limits<std::uint64_t>::max();
    p.options.chunk_size = 128;
    p.options.device = "cpu";
    p.options.backend = "reference";
    p.options.kv_bytes_per_element = 2;

    p.metrics.mean_nll = std::numeric_limits<double>::quiet_NaN();
    p.metrics.perplexity = std::numeric_limits<double>::infinity();
    p.metrics.global_fraction = {1.0, 0.8, 1.0 / 3.0};
    p.metrics.global_fraction_overall = 0.1 + 0.2;  // 0.30000000000000004
    p.metrics.kv = {{640, 0}, {640, 1600}, {640, 0}};
    p.metrics.kv_bytes_total = 3520;
    p.metrics.kv_bytes_without_l2a = 4800;

    p.ranges = {{Phase::Embed, -1, 0, 1000, 0, {}},
                {Phase::Layer, 0, 1000, 5000, 0, {}},
                {Phase::Local, 0, 1100, 2000, 1, {}},
                {Phase::Global, 0, 2000, 4000, 1, {}},
                {Phase::Global, 1, 6000, 6500, 1, {}}};
    p.wall_seconds = 5e-324;  // the smallest subnormal double
    p.time_basis = "what-if: layers 0-0 reused from the base run (0.001 s) + re-run";
    p.cpu_threads = 3;
    p.created_at = "2026-11-22T04:12:00Z";
    p.tool_version = "0.1.0";
    return p;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_equal(const Profile& a, const Profile& b) {
    EXPECT_EQ(a.model.path, b.model.path);
    EXPECT_EQ(a.model.model_type, b.model.model_type);
    EXPECT_EQ(a.model.num_layers, b.model.num_layers);
    EXPECT_EQ(a.model.hidden_size, b.model.hidden_size);
    EXPECT_EQ(a.model.intermediate_size, b.model.intermediate_size);
    EXPECT_EQ(a.model.num_heads, b.model.num_heads);
    EXPECT_EQ(a.model.num_kv_heads, b.model.num_kv_heads);
    EXPECT_EQ(a.model.head_dim, b.model.head_dim);
    EXPECT_EQ(a.model.vocab_size, b.model.vocab_size);
    EXPECT_EQ(a.model.parameter_count, b.model.parameter_count);
    EXPECT_EQ(a.model.is_l2a, b.model.is_l2a);
    EXPECT_EQ(a.model.untrained, b.model.untrained);
    EXPECT_EQ(a.model.sliding_window, b.model.sliding_window);
    EXPECT_TRUE(same_bits(a.model.sigmoid_temp, b.model.sigmoid_temp));
    EXPECT_TRUE(same_bits(a.model.sigmoid_threshold, b.model.sigmoid_threshold));
    EXPECT_EQ(a.model.router_input, b.model.router_input);

    EXPECT_EQ(a.document_path, b.document_path);
    EXPECT_EQ(a.document_text, b.document_text);
    EXPECT_EQ(a.replaced_sequences, b.replaced_sequences);
    EXPECT_EQ(a.tokens_before_truncation, b.tokens_before_truncation);
    EXPECT_EQ(a.token_ids, b.token_ids);
    EXPECT_EQ(a.token_begin, b.token_begin);
    EXPECT_EQ(a.token_end, b.token_end);
    EXPECT_EQ(a.num_layers, b.num_layers);
    EXPECT_TRUE(same_bits(a.router_logits, b.router_logits));
    EXPECT_EQ(a.decisions, b.decisions);
    EXPECT_TRUE(same_bits(a.token_nll, b.token_nll));

    EXPECT_EQ(a.options.max_tokens, b.options.max_tokens);
    ASSERT_EQ(a.options.threshold.has_value(), b.options.threshold.has_value());
    if (a.options.threshold) {
        EXPECT_TRUE(same_bits(*a.options.threshold, *b.options.threshold));
    }
    EXPECT_EQ(a.options.routing.kind, b.options.routing.kind);
    EXPECT_TRUE(same_bits(a.options.routing.fraction, b.options.routing.fraction));
    EXPECT_EQ(a.options.prune, b.options.prune);
    EXPECT_EQ(a.options.seed, b.options.seed);
    EXPECT_EQ(a.options.chunk_size, b.options.chunk_size);
    EXPECT_EQ(a.options.device, b.options.device);
    EXPECT_EQ(a.options.backend, b.options.backend);
    EXPECT_EQ(a.options.kv_bytes_per_element, b.options.kv_bytes_per_element);

    EXPECT_TRUE(same_bits(a.metrics.mean_nll, b.metrics.mean_nll));
    EXPECT_TRUE(same_bits(a.metrics.perplexity, b.metrics.perplexity));
    EXPECT_TRUE(same_bits(a.metrics.global_fraction, b.metrics.global_fraction));
    EXPECT_TRUE(same_bits(a.metrics.global_fraction_overall, b.metrics.global_fraction_overall));
    ASSERT_EQ(a.metrics.kv.size(), b.metrics.kv.size());
    for (std::size_t i = 0; i < a.metrics.kv.size(); ++i) {
        EXPECT_EQ(a.metrics.kv[i].local_bytes, b.metrics.kv[i].local_bytes);
        EXPECT_EQ(a.metrics.kv[i].global_bytes, b.metrics.kv[i].global_bytes);
    }
    EXPECT_EQ(a.metrics.kv_bytes_total, b.metrics.kv_bytes_total);
    EXPECT_EQ(a.metrics.kv_bytes_without_l2a, b.metrics.kv_bytes_without_l2a);

    ASSERT_EQ(a.ranges.size(), b.ranges.size());
    for (std::size_t i = 0; i < a.ranges.size(); ++i) {
        EXPECT_EQ(a.ranges[i].phase, b.ranges[i].phase);
        EXPECT_EQ(a.ranges[i].layer, b.ranges[i].layer);
        EXPECT_EQ(a.ranges[i].other_name, b.ranges[i].other_name);
        EXPECT_EQ(a.ranges[i].begin_ns, b.ranges[i].begin_ns);
        EXPECT_EQ(a.ranges[i].end_ns, b.ranges[i].end_ns);
        EXPECT_EQ(a.ranges[i].depth, b.ranges[i].depth);
        EXPECT_EQ(a.ranges[i].rank, b.ranges[i].rank);
    }
    EXPECT_TRUE(same_bits(a.wall_seconds, b.wall_seconds));
    EXPECT_EQ(a.time_basis, b.time_basis);
    EXPECT_EQ(a.cpu_threads, b.cpu_threads);
    EXPECT_EQ(a.tensor_parallel, b.tensor_parallel);
    EXPECT_EQ(a.created_at, b.created_at);
    EXPECT_EQ(a.tool_version, b.tool_version);
}

// Copies a saved profile, letting the test change its metadata JSON and drop or replace
// tensors, to produce the damaged files a loader must reject.
void rewrite(const fs::path& from, const fs::path& to, const std::function<void(json&)>& edit_meta,
             const std::string& drop = "",
             const std::function<void(SafetensorsWriter&)>& extra = nullptr) {
    SafetensorsFile file = SafetensorsFile::open(from);
    json meta = json::parse(file.metadata().at("l2a.profile"));
    edit_meta(meta);
    SafetensorsWriter writer(to);
    writer.set_metadata("l2a.profile", meta.dump());
    for (const TensorInfo& info : file.tensors()) {
        if (info.name == drop) continue;
        TensorView view = file.view(info);
        writer.add(info.name, info.dtype, info.shape,
                   std::span<const std::byte>(view.data, view.size_bytes()));
    }
    if (extra) extra(writer);
    writer.finish();
}

// The message of the l2a::Error that loading `path` throws ("" when it does not throw).
std::string load_error(const fs::path& path) {
    return test::thrown_error([&] { load_profile(path); }).value_or("");
}

TEST(Profile, RoundTripsLosslessly) {
    const fs::path dir = scratch_dir();
    const Profile original = sample_profile();
    save_profile(original, dir / "run.l2a");
    const Profile loaded = load_profile(dir / "run.l2a");
    expect_equal(original, loaded);

    // A second save of the loaded profile is byte-identical: nothing drifts on the way through.
    save_profile(loaded, dir / "again.l2a");
    EXPECT_EQ(fs::file_size(dir / "run.l2a"), fs::file_size(dir / "again.l2a"));
    expect_equal(original, load_profile(dir / "again.l2a"));
}

// The in-memory bytes (what the remote engine sends) are the file's bytes, and load back.
TEST(Profile, InMemoryBytesAreTheFilesBytes) {
    const fs::path dir = scratch_dir();
    const Profile original = sample_profile();
    save_profile(original, dir / "run.l2a");
    std::ifstream in(dir / "run.l2a", std::ios::binary);
    const std::string file{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const std::vector<std::byte> bytes = profile_to_bytes(original, "memory");
    ASSERT_EQ(bytes.size(), file.size());
    EXPECT_EQ(std::memcmp(bytes.data(), file.data(), file.size()), 0);
    expect_equal(original, load_profile_from_bytes(bytes, "memory"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Profile, RoundTripsDoublesExactly) {
    const fs::path dir = scratch_dir();
    Profile p = sample_profile();
    for (double value : {0.1, 1.0 / 3.0, 2.0 / 3.0, 1e-300, -0.0, 1.7976931348623157e308,
                         0.30000000000000004, 123456.789e-7, std::nextafter(1.0, 2.0)}) {
        p.metrics.mean_nll = value;
        p.options.threshold = value;
        p.wall_seconds = -value;
        save_profile(p, dir / "d.l2a");
        const Profile q = load_profile(dir / "d.l2a");
        EXPECT_TRUE(same_bits(q.metrics.mean_nll, value)) << value;
        EXPECT_TRUE(same_bits(*q.options.threshold, value)) << value;
        EXPECT_TRUE(same_bits(q.wall_seconds, -value)) << value;
    }
}

TEST(Profile, EmptyThresholdAndDefaultOptionsRoundTrip) {
    const fs::path dir = scratch_dir();
    Profile p = sample_profile();
    p.options = RunOptions{};
    save_profile(p, dir / "o.l2a");
    const Profile q = load_profile(dir / "o.l2a");
    EXPECT_FALSE(q.options.threshold.has_value());
    EXPECT_EQ(q.options, RunOptions{});
}

TEST(Profile, StoresArraysAsTypedTensors) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "t.l2a");
    SafetensorsFile file = SafetensorsFile::open(dir / "t.l2a");
    auto expect_tensor = [&](const char* name, DType dtype, std::vector<std::int64_t> shape) {
        const TensorInfo* info = file.find(name);
        ASSERT_NE(info, nullptr) << name;
        EXPECT_EQ(info->dtype, dtype) << name;
        EXPECT_EQ(info->shape, shape) << name;
    };
    expect_tensor("token_ids", DType::I32, {5});
    expect_tensor("token_begin", DType::I64, {5});
    expect_tensor("token_end", DType::I64, {5});
    expect_tensor("router_logits", DType::F32, {3, 5});
    expect_tensor("decisions", DType::U8, {3, 5});
    expect_tensor("token_nll", DType::F32, {5});
    const json meta = json::parse(file.metadata().at("l2a.profile"));
    EXPECT_EQ(meta.at("format_version"), kProfileFormatVersion);
    EXPECT_EQ(meta.at("metrics").at("mean_nll"), "nan");
    EXPECT_EQ(meta.at("document").at("text"), "Grüße, 世界! 🙂");
}

TEST(Profile, RangeNamesComeFromPhaseAndLayer) {
    EXPECT_EQ(range_name(Phase::Global, 7), "layer 7 / global");
    EXPECT_EQ(range_name(Phase::Layer, 7), "layer 7");
    EXPECT_EQ(range_name(Phase::Embed, -1), "embed");
    EXPECT_EQ(range_name(Phase::LmHead, -1), "lm_head");
    EXPECT_EQ(range_name(TimedRange{Phase::Other, -1, 0, 0, 0, "final_norm"}), "final_norm");
    for (Phase phase : {Phase::Local, Phase::Router, Phase::Global, Phase::Mlp, Phase::Layer,
                        Phase::Embed, Phase::LmHead, Phase::Other}) {
        EXPECT_EQ(parse_phase(phase_name(phase)), phase) << phase_name(phase);
    }
    EXPECT_FALSE(parse_phase("attention").has_value());
    for (int i = 0; i < kNumPhases; ++i) EXPECT_EQ(static_cast<int>(kLayerPhases[i]), i);
}

TEST(Profile, StoresRangesAsPhaseAndLayer) {
    const fs::path dir = scratch_dir();
    Profile p = sample_profile();
    p.ranges.push_back({Phase::Other, -1, 6500, 6600, 0, "final_norm"});
    save_profile(p, dir / "a.l2a");
    const json meta =
        json::parse(SafetensorsFile::open(dir / "a.l2a").metadata().at("l2a.profile"));
    const json& ranges = meta.at("ranges");
    ASSERT_EQ(ranges.size(), p.ranges.size());
    EXPECT_EQ(ranges[3].at("phase"), "global");
    EXPECT_EQ(ranges[3].at("layer"), 0);
    EXPECT_FALSE(ranges[3].contains("name"));
    EXPECT_EQ(ranges[0].at("phase"), "embed");
    EXPECT_EQ(ranges[0].at("layer"), -1);
    EXPECT_EQ(ranges[5].at("phase"), "other");
    EXPECT_EQ(ranges[5].at("name"), "final_norm");
    EXPECT_EQ(load_profile(dir / "a.l2a").ranges, p.ranges);
}

// Versions 1 and 2 stored each range by its name; the loader derives phase and layer from the
// names the engine wrote and keeps any other name as it is.
TEST(Profile, FormatTwoRangesGetPhaseAndLayerFromTheirNames) {
    const fs::path dir = scratch_dir();
    const Profile p = sample_profile();
    save_profile(p, dir / "a.l2a");
    const std::vector<std::string> names = {"embed", "layer 0", "layer 0 / local",
                                            "layer 0 / global", "layer 1 / global"};
    const std::vector<std::string> odd = {
        "final_norm", "layer 07", "layer 2 / attention", "layer -1", "layer", "local", "other"};
    rewrite(dir / "a.l2a", dir / "v2.l2a", [&](json& m) {
        m["format_version"] = 2;
        json ranges = json::array();
        std::int64_t t = 0;
        for (const auto* list : {&names, &odd}) {
            for (const std::string& name : *list) {
                ranges.push_back(
                    {{"name", name}, {"begin_ns", t}, {"end_ns", t + 10}, {"depth", 0}});
                t += 10;
            }
        }
        m["ranges"] = ranges;
    });
    const Profile q = load_profile(dir / "v2.l2a");
    ASSERT_EQ(q.ranges.size(), names.size() + odd.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(q.ranges[i].phase, p.ranges[i].phase) << names[i];
        EXPECT_EQ(q.ranges[i].layer, p.ranges[i].layer) << names[i];
        EXPECT_EQ(range_name(q.ranges[i]), names[i]);
    }
    for (std::size_t i = 0; i < odd.size(); ++i) {
        const TimedRange& r = q.ranges[names.size() + i];
        EXPECT_EQ(r.phase, Phase::Other) << odd[i];
        EXPECT_EQ(r.layer, -1) << odd[i];
        EXPECT_EQ(range_name(r), odd[i]);
    }
    // Saved again, it is a current file with the same ranges.
    save_profile(q, dir / "v3.l2a");
    EXPECT_EQ(load_profile(dir / "v3.l2a").ranges, q.ranges);
}

// A run saved by the format 2 writer (the fuzzing seed): its named ranges load typed.
TEST(Profile, LoadsASavedFormatTwoRun) {
    const fs::path file = fs::path(L2A_SOURCE_DIR) / "tests/data/fuzz/profile/demo-run.l2a";
    const json meta = json::parse(SafetensorsFile::open(file).metadata().at("l2a.profile"));
    ASSERT_EQ(meta.at("format_version"), 2);
    const Profile p = load_profile(file);
    ASSERT_EQ(p.ranges.size(), meta.at("ranges").size());
    std::int32_t layer = -1;
    for (std::size_t i = 0; i < p.ranges.size(); ++i) {
        const TimedRange& r = p.ranges[i];
        EXPECT_EQ(range_name(r), meta["ranges"][i]["name"].get<std::string>());
        EXPECT_NE(r.phase, Phase::Other) << range_name(r);
        if (r.phase == Phase::Layer) {
            EXPECT_EQ(r.layer, ++layer);
            EXPECT_EQ(r.depth, 0);
        } else if (is_layer_part(r.phase)) {
            EXPECT_EQ(r.layer, layer) << range_name(r);
            EXPECT_EQ(r.depth, 1);
        } else {
            EXPECT_EQ(r.layer, -1);
        }
    }
    EXPECT_EQ(layer, p.num_layers - 1);
    EXPECT_EQ(p.ranges.front().phase, Phase::Embed);
    EXPECT_EQ(p.ranges.back().phase, Phase::LmHead);
    // The one routed layer of this run (layer 4) has its global attention timed.
    const TimelineSummary s = summarize_timeline(p);
    EXPECT_GT(s.layers[4].phases[static_cast<int>(Phase::Global)].seconds, 0.0);
    EXPECT_EQ(s.layers[3].phases[static_cast<int>(Phase::Global)].seconds, 0.0);
    ASSERT_EQ(s.stages.size(), 2u);
    EXPECT_EQ(s.stages[0].name, "embed");
    EXPECT_EQ(s.stages[1].name, "lm_head");
}

TEST(Profile, RejectsRangesWhosePhaseAndLayerDisagree) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");
    rewrite(dir / "a.l2a", dir / "nolayer.l2a", [](json& m) { m["ranges"][2]["layer"] = -1; });
    std::string error = load_error(dir / "nolayer.l2a");
    EXPECT_NE(error.find("nolayer.l2a"), std::string::npos) << error;
    EXPECT_NE(error.find("range 2"), std::string::npos) << error;
    EXPECT_NE(error.find("phase local and layer -1"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "embed.l2a", [](json& m) { m["ranges"][0]["layer"] = 3; });
    error = load_error(dir / "embed.l2a");
    EXPECT_NE(error.find("phase embed and layer 3"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "phase.l2a", [](json& m) { m["ranges"][1]["phase"] = "warp"; });
    error = load_error(dir / "phase.l2a");
    EXPECT_NE(error.find("unknown phase 'warp'"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "other.l2a", [](json& m) { m["ranges"][1]["phase"] = "other"; });
    error = load_error(dir / "other.l2a");
    EXPECT_NE(error.find("ranges.name"), std::string::npos) << error;

    Profile bad = sample_profile();
    bad.ranges[4].layer = -1;
    try {
        save_profile(bad, dir / "bad.l2a");
        ADD_FAILURE() << "a global range without a layer was saved";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot save: range 4"), std::string::npos)
            << e.what();
    }
}

// A tensor-parallel run: every rank's ranges (rank 0's first) and all-reduce ranges inside the
// layer parts. They round-trip; the run's timing is rank 0's alone, as if the others' ranges
// and the all-reduces were not there.
Profile tensor_parallel_profile() {
    Profile p = sample_profile();
    p.tensor_parallel = 2;
    p.ranges.push_back({Phase::AllReduce, 0, 3500, 3900, 2, {}});
    p.ranges.push_back({Phase::Layer, 0, 900, 5400, 0, {}, 1});
    p.ranges.push_back({Phase::Global, 0, 1900, 4100, 1, {}, 1});
    p.ranges.push_back({Phase::AllReduce, 0, 3600, 4000, 2, {}, 1});
    p.ranges.push_back({Phase::LmHead, -1, 6000, 9000, 0, {}, 1});
    return p;
}

TEST(Profile, TensorParallelRanksRoundTripAndRankZeroTimesTheRun) {
    const fs::path dir = scratch_dir();
    const Profile p = tensor_parallel_profile();
    save_profile(p, dir / "tp.l2a");
    const json meta =
        json::parse(SafetensorsFile::open(dir / "tp.l2a").metadata().at("l2a.profile"));
    EXPECT_EQ(meta.at("format_version"), 6);
    EXPECT_EQ(meta.at("tensor_parallel"), 2);
    EXPECT_FALSE(meta.at("ranges")[0].contains("rank"));
    EXPECT_EQ(meta.at("ranges")[5].at("phase"), "all-reduce");
    EXPECT_EQ(meta.at("ranges")[6].at("rank"), 1);
    const Profile loaded = load_profile(dir / "tp.l2a");
    expect_equal(p, loaded);
    EXPECT_EQ(loaded.ranges, p.ranges);
    EXPECT_EQ(range_name(loaded.ranges[5]), "layer 0 / all-reduce");

    const TimelineSummary with = summarize_timeline(p);
    const TimelineSummary without = summarize_timeline(sample_profile());
    ASSERT_EQ(with.layers.size(), without.layers.size());
    for (std::size_t l = 0; l < with.layers.size(); ++l) {
        EXPECT_EQ(with.layers[l].seconds, without.layers[l].seconds) << "layer " << l;
        for (int phase = 0; phase < kNumPhases; ++phase) {
            EXPECT_EQ(with.layers[l].phases[phase].seconds, without.layers[l].phases[phase].seconds)
                << "layer " << l << ", phase " << phase;
        }
    }
    ASSERT_EQ(with.stages.size(), without.stages.size());  // rank 1's lm_head is not a stage
    EXPECT_EQ(with.run_seconds, without.run_seconds);
    const json exported = json::parse(profile_to_json(p));
    EXPECT_EQ(exported.at("run").at("tensor_parallel"), 2);
    EXPECT_FALSE(exported.at("timing").at("ranges").contains("lm_head"));
    EXPECT_EQ(exported.at("timing").at("ranges").at("layer 0 / all-reduce").at("count"), 1);
    // One stage for every layer's all-reduces, as for the layers' parts.
    EXPECT_EQ(exported.at("timing").at("stages").at("all-reduce").at("count"), 1);
    EXPECT_FALSE(exported.at("timing").at("stages").contains("layer 0 / all-reduce"));
}

TEST(Profile, RejectsRanksOutsideTheWorld) {
    const fs::path dir = scratch_dir();
    save_profile(tensor_parallel_profile(), dir / "tp.l2a");
    rewrite(dir / "tp.l2a", dir / "rank.l2a", [](json& m) { m["ranges"][6]["rank"] = 2; });
    std::string error = load_error(dir / "rank.l2a");
    EXPECT_NE(error.find("rank.l2a"), std::string::npos) << error;
    EXPECT_NE(error.find("range 6 ('layer 0') was recorded by rank 2 of a run over 2 processes"),
              std::string::npos)
        << error;
    rewrite(dir / "tp.l2a", dir / "world.l2a", [](json& m) { m["tensor_parallel"] = 0; });
    error = load_error(dir / "world.l2a");
    EXPECT_NE(error.find("invalid tensor_parallel 0"), std::string::npos) << error;
    rewrite(dir / "tp.l2a", dir / "nolayer.l2a", [](json& m) { m["ranges"][5]["layer"] = -1; });
    error = load_error(dir / "nolayer.l2a");
    EXPECT_NE(error.find("phase all-reduce and layer -1"), std::string::npos) << error;

    // Version 5 had no ranks: a file of that version loads as a run of one process.
    save_profile(sample_profile(), dir / "one.l2a");
    rewrite(dir / "one.l2a", dir / "v5.l2a", [](json& m) {
        m["format_version"] = 5;
        m.erase("tensor_parallel");
    });
    const Profile v5 = load_profile(dir / "v5.l2a");
    EXPECT_EQ(v5.tensor_parallel, 1);
    EXPECT_EQ(v5.ranges, sample_profile().ranges);
}

// A tensor-parallel run on GPUs: every rank's kernels and memory operations, each with its rank
// (in the optional tensors kernel_ranks and memory_op_ranks, which a run of one process does not
// write). They round-trip; the run's kernel counts and times are rank 0's alone.
Profile tensor_parallel_gpu_profile() {
    Profile p = tensor_parallel_profile();
    p.kernels = {{"gemm", 7, 0, 1200, 1800, 2},
                 {"flash", 7, 0, 2100, 3000, 3},
                 {"nccl:all_reduce", 9, 0, 3500, 3900, 5},
                 {"gemm", 7, 1, 1150, 1900, 7, 1},
                 {"nccl:all_reduce", 9, 1, 3600, 4000, 8, 1},
                 {"late", 7, 1, 9000, 12000, -1, 1}};
    p.memory_ops = {{MemoryOpKind::CopyHostToDevice, 64, 7, 0, 100, 200, 0},
                    {MemoryOpKind::Set, 32, 7, 1, 150, 250, -1, 1}};
    return p;
}

TEST(Profile, TensorParallelKernelRanksRoundTripAndRankZeroCountsTheKernels) {
    const fs::path dir = scratch_dir();
    const Profile p = tensor_parallel_gpu_profile();
    save_profile(p, dir / "tp-gpu.l2a");
    const SafetensorsFile file = SafetensorsFile::open(dir / "tp-gpu.l2a");
    ASSERT_NE(file.find("kernel_ranks"), nullptr);
    EXPECT_EQ(file.find("kernel_ranks")->shape, (std::vector<std::int64_t>{6}));
    ASSERT_NE(file.find("memory_op_ranks"), nullptr);
    const Profile loaded = load_profile(dir / "tp-gpu.l2a");
    expect_equal(p, loaded);
    EXPECT_EQ(loaded.kernels, p.kernels);
    EXPECT_EQ(loaded.memory_ops, p.memory_ops);

    Profile rank0 = p;
    std::erase_if(rank0.kernels, [](const KernelRecord& k) { return k.rank != 0; });
    std::erase_if(rank0.memory_ops, [](const MemoryOpRecord& m) { return m.rank != 0; });
    const TimelineSummary with = summarize_timeline(p);
    const TimelineSummary without = summarize_timeline(rank0);
    EXPECT_EQ(with.kernels, 3);
    EXPECT_EQ(with.kernels, without.kernels);
    EXPECT_EQ(with.kernel_seconds, without.kernel_seconds);
    EXPECT_EQ(with.unattributed_kernels, 0);  // rank 1's "late" is not rank 0's
    EXPECT_EQ(with.run_seconds, without.run_seconds);

    // A file of one process holds no rank tensors: what older versions wrote and still read.
    save_profile(rank0, dir / "one-gpu.l2a");
    EXPECT_EQ(SafetensorsFile::open(dir / "one-gpu.l2a").find("kernel_ranks"), nullptr);
    EXPECT_EQ(load_profile(dir / "one-gpu.l2a").kernels, rank0.kernels);
    // The two are written together: one without the other is a damaged file.
    rewrite(
        dir / "tp-gpu.l2a", dir / "no-ranks.l2a", [](json&) {}, "kernel_ranks");
    std::string error = load_error(dir / "no-ranks.l2a");
    EXPECT_NE(error.find("memory_op_ranks without kernel_ranks"), std::string::npos) << error;
    // Without both, every record is rank 0's: rank 1's kernels then lie in ranges of another
    // rank, which the loader refuses rather than count them as rank 0's.
    rewrite(
        dir / "no-ranks.l2a", dir / "no-ranks-at-all.l2a", [](json&) {}, "memory_op_ranks");
    error = load_error(dir / "no-ranks-at-all.l2a");
    EXPECT_NE(error.find("kernel 3 of rank 0 names range 7, which rank 1 recorded"),
              std::string::npos)
        << error;
}

TEST(Profile, RejectsKernelRanksThatDoNotFit) {
    const fs::path dir = scratch_dir();
    Profile p = tensor_parallel_gpu_profile();
    p.kernels[3].rank = 0;  // its range (7) is rank 1's
    EXPECT_NE(test::thrown_error([&] { save_profile(p, dir / "bad.l2a"); })
                  .value_or("")
                  .find("cannot save: kernel 3 of rank 0 names range 7, which rank 1 recorded"),
              std::string::npos);

    save_profile(tensor_parallel_gpu_profile(), dir / "tp-gpu.l2a");
    const std::vector<std::int32_t> ranks = {0, 0, 0, 1, 1, 2};
    rewrite(
        dir / "tp-gpu.l2a", dir / "rank2.l2a", [](json&) {}, "kernel_ranks",
        [&](SafetensorsWriter& w) {
            w.add("kernel_ranks", DType::I32, {6}, std::as_bytes(std::span(ranks)));
        });
    std::string error = load_error(dir / "rank2.l2a");
    EXPECT_NE(error.find("rank2.l2a"), std::string::npos) << error;
    EXPECT_NE(error.find("kernel 5 was recorded by rank 2 of a run over 2 processes"),
              std::string::npos)
        << error;
    const std::vector<std::int32_t> short_ranks = {0, 1};
    rewrite(
        dir / "tp-gpu.l2a", dir / "short.l2a", [](json&) {}, "kernel_ranks",
        [&](SafetensorsWriter& w) {
            w.add("kernel_ranks", DType::I32, {2}, std::as_bytes(std::span(short_ranks)));
        });
    error = load_error(dir / "short.l2a");
    EXPECT_NE(error.find("kernel_ranks"), std::string::npos) << error;
}

TEST(Profile, AcceptsThirtyTwoBitOffsets) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");
    const std::vector<std::int32_t> begin = {0, 1, 2, 3, 4};
    rewrite(
        dir / "a.l2a", dir / "b.l2a", [](json&) {}, "token_begin",
        [&](SafetensorsWriter& w) {
            w.add("token_begin", DType::I32, {5}, std::as_bytes(std::span(begin)));
        });
    const Profile p = load_profile(dir / "b.l2a");
    EXPECT_EQ(p.token_begin, (std::vector<std::uint32_t>{0, 1, 2, 3, 4}));
}

TEST(Profile, RejectsNewerFormatVersion) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");
    const int newer = kProfileFormatVersion + 1;
    rewrite(dir / "a.l2a", dir / "newer.l2a", [&](json& m) { m["format_version"] = newer; });
    const std::string error = load_error(dir / "newer.l2a");
    EXPECT_NE(error.find((dir / "newer.l2a").string()), std::string::npos) << error;
    EXPECT_NE(error.find("version " + std::to_string(newer)), std::string::npos) << error;
    EXPECT_NE(error.find("newer"), std::string::npos) << error;
}

TEST(Profile, RejectsInconsistentSizes) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");

    rewrite(dir / "a.l2a", dir / "layers.l2a", [](json& m) { m["num_layers"] = 4; });
    std::string error = load_error(dir / "layers.l2a");
    EXPECT_NE(error.find((dir / "layers.l2a").string()), std::string::npos) << error;
    EXPECT_NE(error.find("router_logits"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "tokens.l2a", [](json& m) { m["num_tokens"] = 6; });
    error = load_error(dir / "tokens.l2a");
    EXPECT_NE(error.find("num_tokens"), std::string::npos) << error;

    const std::vector<float> short_nll = {1.0f, 2.0f};
    rewrite(
        dir / "a.l2a", dir / "nll.l2a", [](json&) {}, "token_nll",
        [&](SafetensorsWriter& w) {
            w.add("token_nll", DType::F32, {2}, std::as_bytes(std::span(short_nll)));
        });
    error = load_error(dir / "nll.l2a");
    EXPECT_NE(error.find("token_nll"), std::string::npos) << error;
    EXPECT_NE(error.find("[2]"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "kv.l2a", [](json& m) { m["metrics"]["kv"].erase(0); });
    error = load_error(dir / "kv.l2a");
    EXPECT_NE(error.find("metrics.kv"), std::string::npos) << error;
}

// Arrays that agree with each other but claim 10^12 layers of zero tokens: nothing bounds the
// count but a limit, which must be checked before anything is sized by it.
TEST(Profile, RejectsAbsurdLayerCountBeforeAllocating) {
    const fs::path dir = scratch_dir();
    Profile empty = sample_profile();
    empty.document_text.clear();
    empty.token_ids.clear();
    empty.token_begin.clear();
    empty.token_end.clear();
    empty.token_nll.clear();
    empty.router_logits.clear();
    empty.decisions.clear();
    empty.options.prune.clear();
    empty.metrics.global_fraction.clear();
    empty.metrics.kv.clear();
    save_profile(empty, dir / "empty.l2a");
    ASSERT_EQ(load_error(dir / "empty.l2a"), "");  // three layers of no tokens are fine

    static constexpr std::int64_t kLayers = 1'000'000'000'000;
    const std::vector<float> no_floats;
    const std::vector<std::uint8_t> no_bytes;
    auto absurd = [&](const fs::path& to, const std::function<void(json&)>& edit) {
        SafetensorsFile file = SafetensorsFile::open(dir / "empty.l2a");
        json meta = json::parse(file.metadata().at("l2a.profile"));
        edit(meta);
        SafetensorsWriter writer(to);
        writer.set_metadata("l2a.profile", meta.dump());
        for (const TensorInfo& info : file.tensors()) {
            if (info.name == "router_logits") {
                writer.add(info.name, DType::F32, {kLayers, 0},
                           std::as_bytes(std::span(no_floats)));
            } else if (info.name == "decisions") {
                writer.add(info.name, DType::U8, {kLayers, 0}, std::as_bytes(std::span(no_bytes)));
            } else {
                TensorView view = file.view(info);
                writer.add(info.name, info.dtype, info.shape,
                           std::span<const std::byte>(view.data, view.size_bytes()));
            }
        }
        writer.finish();
    };
    absurd(dir / "layers.l2a", [](json& m) { m["num_layers"] = kLayers; });
    std::string error = load_error(dir / "layers.l2a");
    EXPECT_NE(error.find((dir / "layers.l2a").string()), std::string::npos) << error;
    EXPECT_NE(error.find("num_layers = 1000000000000"), std::string::npos) << error;
    EXPECT_NE(error.find("at most " + std::to_string(kMaxProfileLayers)), std::string::npos)
        << error;

    absurd(dir / "model.l2a", [](json& m) {
        m["num_layers"] = kLayers;
        m["model"]["num_layers"] = kLayers;
    });
    error = load_error(dir / "model.l2a");
    EXPECT_NE(error.find("num_layers = 1000000000000"), std::string::npos) << error;

    rewrite(dir / "empty.l2a", dir / "model-only.l2a",
            [](json& m) { m["model"]["num_layers"] = kLayers; });
    error = load_error(dir / "model-only.l2a");
    EXPECT_NE(error.find("model.num_layers"), std::string::npos) << error;

    rewrite(dir / "empty.l2a", dir / "kv.l2a",
            [](json& m) { m["options"]["kv_bytes_per_element"] = 0; });
    error = load_error(dir / "kv.l2a");
    EXPECT_NE(error.find("kv_bytes_per_element"), std::string::npos) << error;
}

TEST(Profile, RejectsMissingPiecesAndBadOffsets) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");

    rewrite(
        dir / "a.l2a", dir / "nodec.l2a", [](json&) {}, "decisions");
    std::string error = load_error(dir / "nodec.l2a");
    EXPECT_NE(error.find("missing tensor 'decisions'"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "nofield.l2a", [](json& m) { m.erase("options"); });
    error = load_error(dir / "nofield.l2a");
    EXPECT_NE(error.find("options"), std::string::npos) << error;

    rewrite(dir / "a.l2a", dir / "text.l2a", [](json& m) { m["document"]["text"] = "short"; });
    error = load_error(dir / "text.l2a");
    EXPECT_NE(error.find("outside the document text"), std::string::npos) << error;

    SafetensorsWriter plain(dir / "plain.safetensors");
    const std::vector<float> w = {1.0f};
    plain.add("w", DType::F32, {1}, std::as_bytes(std::span(w)));
    plain.finish();
    error = load_error(dir / "plain.safetensors");
    EXPECT_NE(error.find("not an L2A profile"), std::string::npos) << error;
    EXPECT_NE(error.find("plain.safetensors"), std::string::npos) << error;

    error = load_error(dir / "does-not-exist.l2a");
    EXPECT_NE(error.find("does-not-exist.l2a"), std::string::npos) << error;
}

TEST(Profile, MalformedMetadataSaysWhereWithoutLibraryTags) {
    const fs::path dir = scratch_dir();
    SafetensorsWriter writer(dir / "broken.l2a");
    writer.set_metadata("l2a.profile", "{\"format_version\": 2,\n \"model\": }");
    writer.finish();
    const std::string error = load_error(dir / "broken.l2a");
    EXPECT_EQ(error.rfind((dir / "broken.l2a").string() +
                              ": profile metadata: malformed JSON at line 2, column 11: ",
                          0),
              0u)
        << error;
    EXPECT_EQ(error.find("json.exception"), std::string::npos) << error;
}

TEST(Profile, SaveRejectsInconsistentArrays) {
    const fs::path dir = scratch_dir();
    Profile p = sample_profile();
    p.decisions.pop_back();
    try {
        save_profile(p, dir / "bad.l2a");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bad.l2a"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "bad.l2a"));
}

TEST(Profile, ExportJsonHasTheDocumentedShape) {
    Profile p = sample_profile();
    const json j = json::parse(profile_to_json(p));
    for (const char* key : {"model", "document", "run", "layers", "metrics", "timing"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["model"]["model_type"], "l2a_qwen3");
    EXPECT_EQ(j["model"]["num_layers"], 3);
    EXPECT_EQ(j["model"]["hidden_size"], 64);
    EXPECT_EQ(j["model"]["untrained"], true);
    EXPECT_EQ(j["document"]["path"], p.document_path);
    EXPECT_EQ(j["document"]["num_tokens"], 5);
    EXPECT_EQ(j["document"]["replaced_sequences"], 2);
    EXPECT_EQ(j["document"]["truncated"], true);
    EXPECT_EQ(j["run"]["routing"], p.options.routing.to_string());
    EXPECT_DOUBLE_EQ(j["run"]["threshold"].get<double>(), 0.3);
    EXPECT_EQ(j["run"]["threshold_overridden"], true);
    EXPECT_EQ(j["run"]["prune"], json::array({0, 2}));
    EXPECT_EQ(j["run"]["seed"].get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(j["run"]["max_tokens"], 5);
    EXPECT_EQ(j["run"]["cpu_threads"], 3);
    EXPECT_EQ(j["timing"]["time_basis"], p.time_basis);

    ASSERT_EQ(j["layers"].size(), 3u);
    EXPECT_EQ(j["layers"][1]["index"], 1);
    EXPECT_DOUBLE_EQ(j["layers"][1]["global_fraction"].get<double>(), 0.8);
    EXPECT_EQ(j["layers"][1]["kv_bytes"], 2240);
    EXPECT_EQ(j["layers"][1]["kv_local_bytes"], 640);
    EXPECT_EQ(j["layers"][1]["kv_global_bytes"], 1600);
    EXPECT_EQ(j["layers"][0]["pruned"], true);
    EXPECT_EQ(j["layers"][1]["pruned"], false);

    EXPECT_TRUE(j["metrics"]["mean_nll"].is_null());  // NaN is not JSON
    EXPECT_TRUE(j["metrics"]["perplexity"].is_null());
    EXPECT_EQ(j["metrics"]["kv_bytes_total"], 3520);
    EXPECT_EQ(j["metrics"]["kv_bytes_without_l2a"], 4800);
    EXPECT_DOUBLE_EQ(j["metrics"]["global_fraction"].get<double>(), 0.1 + 0.2);

    EXPECT_EQ(j["timing"]["stages"]["global"]["count"], 2);
    EXPECT_NEAR(j["timing"]["stages"]["global"]["seconds"].get<double>(), 2.5e-6, 1e-15);
    EXPECT_EQ(j["timing"]["ranges"]["layer 0 / global"]["count"], 1);
    EXPECT_EQ(j["timing"]["stages"]["layers"]["count"], 1);
    EXPECT_FALSE(j["timing"]["stages"].contains("layer 0"));
    EXPECT_EQ(j["detail"], "full");
    EXPECT_TRUE(j.contains("tokens"));

    // The summary is the same document without the per-token and per-layer arrays.
    json summary = json::parse(profile_to_json(p, 2, JsonDetail::Summary));
    EXPECT_EQ(summary["detail"], "summary");
    EXPECT_FALSE(summary.contains("tokens"));
    for (const json& layer : summary["layers"]) {
        EXPECT_FALSE(layer.contains("decisions"));
        EXPECT_FALSE(layer.contains("router_logits"));
    }
    json trimmed = j;
    trimmed.erase("tokens");
    for (json& layer : trimmed["layers"]) {
        layer.erase("decisions");
        layer.erase("router_logits");
    }
    trimmed["detail"] = "summary";
    EXPECT_EQ(trimmed, summary);

    // Without an override the effective threshold is the model's.
    p.options.threshold.reset();
    const json k = json::parse(profile_to_json(p));
    EXPECT_DOUBLE_EQ(k["run"]["threshold"].get<double>(), 0.5);
    EXPECT_EQ(k["run"]["threshold_overridden"], false);
    // A full run says how its time was measured.
    p.time_basis.clear();
    EXPECT_EQ(json::parse(profile_to_json(p))["timing"]["time_basis"], "one full run, measured");
}

TEST(Profile, ThreadsAndTimeBasisMayBeAbsentButNotInvalid) {
    const fs::path dir = scratch_dir();
    save_profile(sample_profile(), dir / "a.l2a");
    rewrite(dir / "a.l2a", dir / "old.l2a", [](json& meta) {
        meta.erase("cpu_threads");
        meta.erase("time_basis");
    });
    const Profile old = load_profile(dir / "old.l2a");
    EXPECT_EQ(old.cpu_threads, 0);
    EXPECT_EQ(old.time_basis, "");
    rewrite(dir / "a.l2a", dir / "bad.l2a", [](json& meta) { meta["cpu_threads"] = -4; });
    try {
        load_profile(dir / "bad.l2a");
        ADD_FAILURE() << "negative thread count accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cpu_threads"), std::string::npos) << e.what();
    }
}

TEST(Profile, ExportJsonFullHoldsEveryTokenAndEveryRoutingDecision) {
    const Profile p = sample_profile();
    const json j = json::parse(profile_to_json(p));
    const std::int64_t tokens = p.num_tokens();
    ASSERT_EQ(j["tokens"].size(), static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) {
        const auto i = static_cast<std::size_t>(t);
        const json& token = j["tokens"][i];
        EXPECT_EQ(token["index"], t);
        EXPECT_EQ(token["id"], p.token_ids[i]);
        EXPECT_EQ(token["byte_begin"], p.token_begin[i]);
        EXPECT_EQ(token["byte_end"], p.token_end[i]);
        if (std::isnan(p.token_nll[i])) {
            EXPECT_TRUE(token["nll"].is_null());
        } else {
            // The float comes back exactly from its shortest decimal.
            EXPECT_EQ(static_cast<float>(token["nll"].get<double>()), p.token_nll[i]) << t;
        }
    }
    // Token 0 ends inside "ß": its half character reads U+FFFD; the others are their bytes.
    EXPECT_EQ(j["tokens"][0]["text"], "Grü\xEF\xBF\xBD");
    EXPECT_EQ(j["tokens"][2]["text"], " 世界!");
    EXPECT_EQ(j["tokens"][1]["nll"].dump(), "5.5");

    ASSERT_EQ(j["layers"].size(), static_cast<std::size_t>(p.num_layers));
    for (std::int64_t l = 0; l < p.num_layers; ++l) {
        const json& layer = j["layers"][static_cast<std::size_t>(l)];
        ASSERT_EQ(layer["decisions"].size(), static_cast<std::size_t>(tokens));
        ASSERT_EQ(layer["router_logits"].size(), static_cast<std::size_t>(tokens));
        for (std::int64_t t = 0; t < tokens; ++t) {
            const auto i = static_cast<std::size_t>(l * tokens + t);
            EXPECT_EQ(layer["decisions"][static_cast<std::size_t>(t)], p.decisions[i] ? 1 : 0);
            const json& z = layer["router_logits"][static_cast<std::size_t>(t)];
            if (std::isfinite(p.router_logits[i])) {
                EXPECT_EQ(static_cast<float>(z.get<double>()), p.router_logits[i]) << l << "," << t;
            } else {
                EXPECT_TRUE(z.is_null()) << l << "," << t;  // NaN (no router) and infinity
            }
        }
    }
    EXPECT_EQ(j["layers"][2]["router_logits"][2].dump(), "0.1");  // not 0.10000000149011612

    // Arrays that do not fit the profile's counts are refused, not read past their end.
    Profile bad = p;
    bad.router_logits.pop_back();
    bad.decisions.pop_back();
    try {
        profile_to_json(bad);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("do not match"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace l2a
