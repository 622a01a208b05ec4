// Tensor parallel: every rank's timeline (host ranges, GPU kernels, memory operations) merged
// into one profile, as the study does after a run split across processes, and the Chrome trace
// of such a profile: a process per rank's GPU, with that rank's kernels on it.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "l2a/engine/profile.h"
#include "l2a/profiler/export.h"
#include "l2a/profiler/rank_timeline.h"
#include "test_support.h"

namespace l2a {
namespace {

using json = nlohmann::json;

// What one rank recorded of a two-layer run on its GPU (`rank`), with times since its own start.
Profile rank_part(int rank) {
    Profile p;
    p.ranges = {{Phase::Embed, -1, 0, 100, 0, {}},
                {Phase::Layer, 0, 100, 500, 0, {}},
                {Phase::AllReduce, 0, 400, 480, 1, {}},
                {Phase::Other, -1, 500, 600, 0, "rank " + std::to_string(rank) + " own"}};
    p.kernels = {{"embedding", 7, rank, 10, 90, 0},
                 {"gemm", 7, rank, 120, 380, 1},
                 {"nccl:all_reduce", 9, rank, 410, 470, 2},
                 {"outside", 7, rank, 700, 720, -1}};
    p.memory_ops = {{MemoryOpKind::CopyHostToDevice, 4096, 7, rank, 5, 8, 0}};
    return p;
}

// Rank 1 started 250 ns after rank 0 on the shared clock.
Profile merged() {
    Profile p = rank_part(0);
    merge_rank_timelines(p, {encode_rank_timeline(rank_part(0), 1'000'000),
                             encode_rank_timeline(rank_part(1), 1'000'250)});
    return p;
}

TEST(RankTimeline, MergesEveryRanksRecordsRankZeroFirst) {
    const Profile p = merged();
    EXPECT_EQ(p.tensor_parallel, 2);
    ASSERT_EQ(p.ranges.size(), 8u);
    ASSERT_EQ(p.kernels.size(), 8u);
    ASSERT_EQ(p.memory_ops.size(), 2u);
    // Rank 0's as they were.
    const Profile zero = rank_part(0);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(p.ranges[i], zero.ranges[i]) << "range " << i;
        EXPECT_EQ(p.kernels[i], zero.kernels[i]) << "kernel " << i;
    }
    EXPECT_EQ(p.memory_ops[0], zero.memory_ops[0]);
    // Rank 1's: moved onto rank 0's clock, tagged, and pointing at its own ranges.
    const Profile one = rank_part(1);
    for (std::size_t i = 0; i < 4; ++i) {
        const TimedRange& r = p.ranges[4 + i];
        EXPECT_EQ(r.rank, 1);
        EXPECT_EQ(r.phase, one.ranges[i].phase);
        EXPECT_EQ(r.layer, one.ranges[i].layer);
        EXPECT_EQ(r.depth, one.ranges[i].depth);
        EXPECT_EQ(r.begin_ns, one.ranges[i].begin_ns + 250);
        EXPECT_EQ(r.end_ns, one.ranges[i].end_ns + 250);
        EXPECT_EQ(r.other_name, one.ranges[i].other_name);
        const KernelRecord& k = p.kernels[4 + i];
        EXPECT_EQ(k.rank, 1);
        EXPECT_EQ(k.name, one.kernels[i].name);
        EXPECT_EQ(k.device_id, 1);
        EXPECT_EQ(k.stream_id, one.kernels[i].stream_id);
        EXPECT_EQ(k.begin_ns, one.kernels[i].begin_ns + 250);
        EXPECT_EQ(k.end_ns, one.kernels[i].end_ns + 250);
        EXPECT_EQ(k.range, one.kernels[i].range < 0 ? -1 : one.kernels[i].range + 4);
        if (k.range >= 0) {
            EXPECT_EQ(p.ranges[static_cast<std::size_t>(k.range)].rank, 1);
        }
    }
    EXPECT_EQ(p.memory_ops[1].rank, 1);
    EXPECT_EQ(p.memory_ops[1].device_id, 1);
    EXPECT_EQ(p.memory_ops[1].range, 4);
    EXPECT_EQ(p.memory_ops[1].begin_ns, 255);
    EXPECT_EQ(range_name(p.ranges[7]), "rank 1 own");
}

TEST(RankTimeline, TheMergedProfileSavesAndLoadsWithItsRanks) {
    Profile p = merged();
    p.num_layers = 1;
    const auto path = test::scratch_dir("tensor_parallel_profile") / "merged.l2a";
    save_profile(p, path);
    const Profile loaded = load_profile(path);
    EXPECT_EQ(loaded.tensor_parallel, 2);
    EXPECT_EQ(loaded.ranges, p.ranges);
    EXPECT_EQ(loaded.kernels, p.kernels);
    EXPECT_EQ(loaded.memory_ops, p.memory_ops);
}

TEST(RankTimeline, ADamagedPartNamesItsRank) {
    std::vector<std::byte> good = encode_rank_timeline(rank_part(1), 0);
    std::vector<std::byte> cut(good.begin(), good.end() - 3);
    Profile p = rank_part(0);
    const std::string message =
        test::thrown_error([&] {
            merge_rank_timelines(p, {encode_rank_timeline(rank_part(0), 0), cut});
        }).value_or("");
    EXPECT_NE(message.find("tensor parallel: the timeline rank 1 sent is damaged"),
              std::string::npos)
        << message;
    // A kernel that names a range its rank does not have.
    Profile bad = rank_part(1);
    bad.kernels[0].range = 4;
    const std::string range_message =
        test::thrown_error([&] {
            merge_rank_timelines(
                p, {encode_rank_timeline(rank_part(0), 0), encode_rank_timeline(bad, 0)});
        }).value_or("");
    EXPECT_NE(range_message.find("rank 1 sent is damaged (range index 4 of 4 ranges)"),
              std::string::npos)
        << range_message;
}

// The Chrome trace shows a process per rank's GPU ("rank 1, GPU 1: ..."), each with its rank's
// kernels and memory operations, and the host ranges of each rank on tracks of their own.
TEST(RankTimeline, TheChromeTraceHasATrackPerGpu) {
    Profile p = merged();
    p.num_layers = 1;
    p.device = "NVIDIA H100 80GB HBM3";
    const json trace = json::parse(profile_to_chrome_trace(p));
    std::map<int, std::string> process_names;
    std::map<int, std::set<std::string>> thread_names;  // pid -> names
    for (const json& e : trace.at("traceEvents")) {
        if (e.at("ph") != "M") continue;
        if (e.at("name") == "process_name")
            process_names[e.at("pid")] = e.at("args").at("name").get<std::string>();
        if (e.at("name") == "thread_name")
            thread_names[e.at("pid")].insert(e.at("args").at("name").get<std::string>());
    }
    int gpu0 = -1;
    int gpu1 = -1;
    for (const auto& [pid, name] : process_names) {
        if (name == "rank 0, GPU 0: NVIDIA H100 80GB HBM3") gpu0 = pid;
        if (name == "rank 1, GPU 1: NVIDIA H100 80GB HBM3") gpu1 = pid;
    }
    ASSERT_GE(gpu0, 0) << trace.dump(1);
    ASSERT_GE(gpu1, 0) << trace.dump(1);
    EXPECT_NE(gpu0, gpu1);
    EXPECT_EQ(thread_names[gpu1], (std::set<std::string>{"stream 7", "stream 9"}));
    std::map<int, int> kernels_on;  // pid -> kernels
    for (const json& e : trace.at("traceEvents")) {
        if (e.at("ph") != "X" || e.at("cat") != "kernel") continue;
        const int pid = e.at("pid");
        ++kernels_on[pid];
        EXPECT_EQ(e.at("args").at("rank"), pid == gpu0 ? 0 : 1) << e.dump();
    }
    EXPECT_EQ(kernels_on[gpu0], 4);
    EXPECT_EQ(kernels_on[gpu1], 4);
    EXPECT_EQ(kernels_on.size(), 2u);
    // Host tracks: rank 0's "ranges" and rank 1's own.
    EXPECT_TRUE(thread_names[1].count("ranges")) << trace.dump(1);
    EXPECT_TRUE(thread_names[1].count("rank 1")) << trace.dump(1);
}

// A run of one process keeps its labels: "GPU 0: <name>", no ranks in the events.
TEST(RankTimeline, ASingleProcessTraceIsUnchanged) {
    Profile p = rank_part(0);
    p.num_layers = 1;
    p.device = "NVIDIA H100 80GB HBM3";
    const json trace = json::parse(profile_to_chrome_trace(p));
    bool found = false;
    for (const json& e : trace.at("traceEvents")) {
        if (e.at("ph") == "M" && e.at("name") == "process_name" &&
            e.at("args").at("name") == "GPU 0: NVIDIA H100 80GB HBM3") {
            found = true;
        }
        if (e.at("ph") == "X" && e.at("cat") == "kernel") {
            EXPECT_FALSE(e.at("args").contains("rank"));
        }
    }
    EXPECT_TRUE(found) << trace.dump(1);
}

}  // namespace
}  // namespace l2a
