// `--tensor-parallel N` end to end: build/bin/l2a started as a user would, starting its other
// ranks itself. A split run gives the single-process result (the same decisions, per-token loss
// and logits within 1e-5) for an L2A model and a plain qwen3 model over 2 and 3 processes, its
// profile holds every rank's ranges and the all-reduces, a what-if under tensor parallel equals
// one in a single process, bench prefill --shape splits a published shape's random model as one
// process holds it, and a rank that dies makes l2a fail naming it, never hang. Every
// l2a is run under a hard time limit (timeout -s KILL): a hang fails the test.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../engine/test_support.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/safetensors.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using l2a::test::read_file;
using l2a::test::shell_quote;
using l2a::test::write_file;

const fs::path kBinary = fs::path(L2A_BIN_DIR) / "l2a";
// Past this an l2a still running is killed, and the test fails.
constexpr int kHardLimitSeconds = 50;
// Tokens of the demo document each run takes: more than the window (256), so local attention
// is windowed and some tokens route global.
constexpr int kTokens = 300;

fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "cli_tensor_parallel"; }

// The untrained demo model: 6 L2A layers, 4 query / 2 KV heads, intermediate size 704.
const fs::path& demo_dir() {
    static const fs::path dir = l2a::ensure_untrained_model(work_dir() / "demo");
    return dir;
}

// A tensor's values as floats (every tensor of the demo model is F32).
std::vector<float> floats_of(const l2a::TensorView& view) {
    std::vector<float> values(view.size_bytes() / sizeof(float));
    std::memcpy(values.data(), view.data, values.size() * sizeof(float));
    return values;
}

// Writes a copy of the demo model into `out` with `config` edited and, through `tensor`, each
// tensor's name, shape and values replaced or left alone (an empty name leaves it out).
struct TensorEdit {
    std::string name;
    std::vector<std::int64_t> shape;
    std::vector<float> values;
};
void derive_model(const fs::path& out, const std::function<void(json&)>& config,
                  const std::function<void(TensorEdit&)>& tensor) {
    // Made once (ctest runs cases as processes side by side): in a folder of this process's
    // own, renamed into place; a process that loses the race drops its copy.
    if (fs::exists(out / "model.safetensors")) return;
    const fs::path partial = out.string() + ".partial." + std::to_string(::getpid());
    fs::remove_all(partial);
    fs::create_directories(partial);
    json c = json::parse(read_file(demo_dir() / "config.json"));
    config(c);
    write_file(partial / "config.json", c.dump(2));
    fs::copy_file(demo_dir() / "tokenizer.json", partial / "tokenizer.json");
    const l2a::SafetensorsFile source =
        l2a::SafetensorsFile::open(demo_dir() / "model.safetensors");
    l2a::SafetensorsWriter writer(partial / "model.safetensors");
    for (const l2a::TensorInfo& info : source.tensors()) {
        TensorEdit edit{info.name, info.shape, floats_of(source.view(info))};
        tensor(edit);
        if (edit.name.empty()) continue;
        writer.add(edit.name, l2a::DType::F32, edit.shape, std::as_bytes(std::span(edit.values)));
    }
    writer.finish();
    std::error_code error;
    fs::rename(partial, out, error);
    if (error) fs::remove_all(partial);
}

// The demo model as a plain qwen3 model (the global set and the router left out).
const fs::path& plain_dir() {
    static const fs::path dir = [] {
        const fs::path out = work_dir() / "plain";
        derive_model(
            out, [](json& c) { c["model_type"] = "qwen3"; },
            [](TensorEdit& t) {
                if (t.name.find("_global") != std::string::npos ||
                    t.name.find("sigmoid_linear") != std::string::npos) {
                    t.name.clear();
                }
            });
        return out;
    }();
    return dir;
}

// The demo model's shape with 6 query and 3 KV heads and an intermediate size of 768, which 2
// and 3 processes divide; the resized projections get new seeded weights of the same scale.
const fs::path& six_heads_dir() {
    static const fs::path dir = [] {
        const fs::path out = work_dir() / "six-heads";
        derive_model(
            out,
            [](json& c) {
                c["num_attention_heads"] = 6;
                c["num_key_value_heads"] = 3;
                c["intermediate_size"] = 768;
            },
            [seed = std::uint64_t{12345}](TensorEdit& t) mutable {
                const auto has = [&](const char* part) {
                    return t.name.find(part) != std::string::npos;
                };
                std::vector<std::int64_t> shape = t.shape;
                if (has("q_proj")) shape = {6 * 64, 256};
                if (has("k_proj") || has("v_proj")) shape = {3 * 64, 256};
                if (has("o_proj")) shape = {256, 6 * 64};
                if (has("gate_proj") || has("up_proj")) shape = {768, 256};
                if (has("down_proj")) shape = {256, 768};
                if (shape == t.shape) return;
                t.shape = shape;
                t.values.assign(static_cast<std::size_t>(shape[0] * shape[1]), 0.0f);
                for (float& v : t.values) {  // uniform in [-0.035, 0.035): std 0.02
                    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                    v = (static_cast<float>(seed >> 40) / static_cast<float>(1 << 24) - 0.5f) *
                        0.07f;
                }
            });
        return out;
    }();
    return dir;
}

struct Result {
    int status = -1;
    std::string out;
    std::string err;
    double seconds = 0;
};

// Runs `l2a <args>` (shell-quoted where needed) in `dir` with `env` (e.g. "NAME=value ") before
// it, killed after kHardLimitSeconds. One CPU thread per process (`threads`: a command that
// computes): the ranks share the cores.
Result l2a(const std::string& args, const fs::path& dir, const std::string& env = "",
           bool threads = true) {
    const fs::path out = dir / "stdout.txt";
    const fs::path err = dir / "stderr.txt";
    const std::string command = "cd " + shell_quote(dir.string()) + " && " + env +
                                "timeout -s KILL " + std::to_string(kHardLimitSeconds) + " " +
                                shell_quote(kBinary.string()) + " " + args +
                                (threads ? " --threads 1" : "") + " >" + shell_quote(out.string()) +
                                " 2>" + shell_quote(err.string()) + " </dev/null";
    const auto start = std::chrono::steady_clock::now();
    const int raw = std::system(command.c_str());
    Result result;
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    result.out = read_file(out);
    result.err = read_file(err);
    EXPECT_NE(result.status, 137) << "l2a " << args << " still running after " << kHardLimitSeconds
                                  << " s: killed\n"
                                  << result.err;
    return result;
}

bool contains(const std::string& text, const std::string& piece) {
    return text.find(piece) != std::string::npos;
}

#define SKIP_WITHOUT_GLOO()                                                                  \
    if (!::l2a::process_groups_available())                                                  \
    GTEST_SKIP() << "this build has no c10d Gloo (install libgloo-dev and reconfigure): no " \
                    "tensor parallel to test"

// Each test in its own folder, with the demo document as doc.txt.
class CliTensorParallel : public l2a::test::ScratchDirTest {
protected:
    CliTensorParallel() : ScratchDirTest("cli_tensor_parallel") {}
    void SetUp() override {
        ScratchDirTest::SetUp();
        write_file(dir_ / "doc.txt", l2a::demo_document(4096));
    }
};

// What a run gave: its JSON export, its saved profile and its logits.
struct RunOutcome {
    json report;
    l2a::Profile profile;
    std::vector<float> logits;
};

RunOutcome run_model(const fs::path& model, int processes, const fs::path& dir) {
    const fs::path sub = dir / ("n" + std::to_string(processes));
    fs::create_directories(sub);
    const Result r = l2a("run --model " + shell_quote(model.string()) +
                             " --doc ../doc.txt --max-tokens " + std::to_string(kTokens) +
                             " --json --quiet --out p.l2a --logits-out logits.safetensors "
                             "--tensor-parallel " +
                             std::to_string(processes),
                         sub);
    EXPECT_EQ(r.status, 0) << r.err;
    RunOutcome run;
    if (r.status != 0) return run;
    run.report = json::parse(r.out);
    run.profile = l2a::load_profile(sub / "p.l2a");
    run.logits = floats_of(l2a::SafetensorsFile::open(sub / "logits.safetensors").view("logits"));
    return run;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    }
    return worst;
}

struct Case {
    const char* model;
    int processes;
};

class CliTensorParallelRun : public CliTensorParallel,
                             public ::testing::WithParamInterface<Case> {};

// The split run equals the single-process run, and its profile holds every rank's ranges.
TEST_P(CliTensorParallelRun, EqualsTheSingleProcessRun) {
    SKIP_WITHOUT_GLOO();
    const Case c = GetParam();
    const std::string name = c.model;
    const fs::path model = name == "demo"    ? demo_dir()
                           : name == "plain" ? plain_dir()
                                             : six_heads_dir();
    const RunOutcome one = run_model(model, 1, dir_);
    const RunOutcome split = run_model(model, c.processes, dir_);
    if (HasFatalFailure() || HasFailure()) return;

    // The same decisions and router logits, per-token loss and logits within 1e-5.
    EXPECT_EQ(split.profile.decisions, one.profile.decisions);
    const double nll = max_difference(split.profile.token_nll, one.profile.token_nll);
    const double router = max_difference(split.profile.router_logits, one.profile.router_logits);
    const double logits = max_difference(split.logits, one.logits);
    EXPECT_LT(nll, 1e-5);
    EXPECT_LT(router, 1e-5);
    EXPECT_LT(logits, 1e-5);
    EXPECT_EQ(split.report["run"]["tensor_parallel"], c.processes);
    EXPECT_EQ(one.report["run"]["tensor_parallel"], 1);
    // The metrics count the whole model (every head's KV cache), not one rank's part.
    EXPECT_EQ(split.report["metrics"]["kv_bytes_total"], one.report["metrics"]["kv_bytes_total"]);
    EXPECT_EQ(split.report["metrics"]["kv_bytes_without_l2a"],
              one.report["metrics"]["kv_bytes_without_l2a"]);
    EXPECT_EQ(split.report["metrics"]["global_fraction"], one.report["metrics"]["global_fraction"]);
    EXPECT_NEAR(split.report["metrics"]["mean_nll"].get<double>(),
                one.report["metrics"]["mean_nll"].get<double>(), 1e-6);
    ASSERT_EQ(split.report["layers"].size(), one.report["layers"].size());
    for (std::size_t l = 0; l < one.report["layers"].size(); ++l) {
        for (const char* key :
             {"kv_bytes", "kv_global_bytes", "kv_local_bytes", "global_fraction"}) {
            EXPECT_EQ(split.report["layers"][l][key], one.report["layers"][l][key])
                << "layer " << l << ": " << key;
        }
    }
    std::printf("    %s over %d: max |diff| token NLL %.2e, router %.2e, logits %.2e\n", c.model,
                c.processes, nll, router, logits);

    // Every rank's ranges, each with every layer and an all-reduce in every layer; rank 0's
    // first. The single-process run has neither ranks nor all-reduces.
    const l2a::Profile& p = split.profile;
    EXPECT_EQ(p.tensor_parallel, c.processes);
    const std::int64_t layers = p.num_layers;
    std::vector<std::set<std::int32_t>> layer_ranges(static_cast<std::size_t>(c.processes));
    std::vector<std::set<std::int32_t>> all_reduces(static_cast<std::size_t>(c.processes));
    std::int32_t previous_rank = 0;
    for (const l2a::TimedRange& r : p.ranges) {
        ASSERT_GE(r.rank, previous_rank) << "ranges of rank 0 first, then each other rank's";
        previous_rank = r.rank;
        ASSERT_LT(r.rank, c.processes);
        if (r.phase == l2a::Phase::Layer) layer_ranges[r.rank].insert(r.layer);
        if (r.phase == l2a::Phase::AllReduce) all_reduces[r.rank].insert(r.layer);
    }
    for (int rank = 0; rank < c.processes; ++rank) {
        EXPECT_EQ(static_cast<std::int64_t>(layer_ranges[rank].size()), layers) << "rank " << rank;
        EXPECT_EQ(static_cast<std::int64_t>(all_reduces[rank].size()), layers) << "rank " << rank;
    }
    for (const l2a::TimedRange& r : one.profile.ranges) {
        EXPECT_EQ(r.rank, 0);
        EXPECT_NE(r.phase, l2a::Phase::AllReduce);
    }
    // The ranks' clocks line up: the k-th all-reduce ends at about the same time on every rank
    // (the median gap well under a millisecond on an idle machine; a loaded one is allowed 25).
    std::vector<std::vector<std::int64_t>> ends(static_cast<std::size_t>(c.processes));
    for (const l2a::TimedRange& r : p.ranges) {
        if (r.phase == l2a::Phase::AllReduce) ends[r.rank].push_back(r.end_ns);
    }
    for (int rank = 1; rank < c.processes; ++rank) {
        ASSERT_EQ(ends[rank].size(), ends[0].size()) << "rank " << rank;
        std::vector<double> gaps;
        for (std::size_t k = 0; k < ends[0].size(); ++k) {
            gaps.push_back(std::abs(static_cast<double>(ends[rank][k] - ends[0][k])) * 1e-6);
        }
        std::sort(gaps.begin(), gaps.end());
        EXPECT_LT(gaps[gaps.size() / 2], 25.0) << "rank " << rank << ": median gap in ms";
    }
    // The run's timing is rank 0's: one "layer 0" range counted, not one per rank.
    EXPECT_EQ(split.report["timing"]["ranges"]["layer 0"]["count"], 1);
    EXPECT_TRUE(split.report["timing"]["ranges"].contains("layer 0 / all-reduce"));

    // The Chrome trace puts the other ranks on tracks of their own.
    const fs::path sub = dir_ / ("n" + std::to_string(c.processes));
    const Result trace =
        l2a("export --profile p.l2a --format chrome --out trace.json", sub, "", false);
    ASSERT_EQ(trace.status, 0) << trace.err;
    const std::string text = read_file(sub / "trace.json");
    EXPECT_TRUE(contains(text, "\"rank " + std::to_string(c.processes - 1) + "\""));
}

// The demo model's 4 query / 2 KV heads split over 2 only; the six-head model over 2 and 3.
INSTANTIATE_TEST_SUITE_P(Models, CliTensorParallelRun,
                         ::testing::Values(Case{"demo", 2}, Case{"plain", 2}, Case{"six_heads", 3}),
                         [](const auto& info) {
                             return std::string(info.param.model) + "_Over" +
                                    std::to_string(info.param.processes);
                         });

// A what-if under tensor parallel (base re-run keeping checkpoints, variant from the first
// changed layer) equals the same what-if in one process.
TEST_F(CliTensorParallel, WhatIfEqualsTheSingleProcessWhatIf) {
    SKIP_WITHOUT_GLOO();
    const std::string model = shell_quote(demo_dir().string());
    Result r = l2a("run --model " + model + " --doc doc.txt --max-tokens " +
                       std::to_string(kTokens) + " --quiet --out base.l2a",
                   dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    json whatif[2];
    for (int processes : {1, 2}) {
        r = l2a("whatif --profile base.l2a --model " + model +
                    " --prune 3 --ttft-repeats 0 --json --quiet --out variant" +
                    std::to_string(processes) + ".l2a --tensor-parallel " +
                    std::to_string(processes),
                dir_);
        ASSERT_EQ(r.status, 0) << r.err;
        whatif[processes - 1] = json::parse(r.out);
    }
    const json& one = whatif[0];
    const json& two = whatif[1];
    ASSERT_TRUE(one.contains("mean_nll")) << one.dump(2);
    EXPECT_EQ(two["start_layer"], 3);
    EXPECT_EQ(two["start_layer"], one["start_layer"]);
    for (const char* which : {"base", "variant", "delta"}) {
        EXPECT_NEAR(two["mean_nll"][which].get<double>(), one["mean_nll"][which].get<double>(),
                    1e-6)
            << which;
    }
    EXPECT_NEAR(two["kl"]["mean"].get<double>(), one["kl"]["mean"].get<double>(), 1e-6);
    EXPECT_EQ(two["top1_agreement"], one["top1_agreement"]);
    EXPECT_EQ(two["kv_bytes"], one["kv_bytes"]);
    EXPECT_EQ(two["layers"], one["layers"]);
    const l2a::Profile v1 = l2a::load_profile(dir_ / "variant1.l2a");
    const l2a::Profile v2 = l2a::load_profile(dir_ / "variant2.l2a");
    EXPECT_EQ(v2.decisions, v1.decisions);
    EXPECT_LT(max_difference(v2.token_nll, v1.token_nll), 1e-5);
    EXPECT_EQ(v2.tensor_parallel, 2);
    EXPECT_EQ(v1.tensor_parallel, 1);
}

// A rank that dies in the middle of the run (the test hook L2A_TEST_EXIT_AT=RANK:LAYER) makes
// l2a exit 1 with one error line naming it, within seconds; nothing is written.
TEST_F(CliTensorParallel, ARankThatDiesFailsTheRunNamingIt) {
    SKIP_WITHOUT_GLOO();
    const Result r =
        l2a("run --model " + shell_quote(demo_dir().string()) + " --doc doc.txt --max-tokens " +
                std::to_string(kTokens) + " --quiet --out p.l2a --tensor-parallel 2",
            dir_, "L2A_TEST_EXIT_AT=1:2 ");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, "l2a: error: tensor parallel: rank 1 of 2 exited with status 3"))
        << r.err;
    EXPECT_LT(r.seconds, 30.0) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "p.l2a"));
}

// The children of process `pid` (/proc/PID/task/PID/children).
std::vector<pid_t> children_of(pid_t pid) {
    const std::string path =
        "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
    std::istringstream in(read_file(path));
    std::vector<pid_t> out;
    for (pid_t child = 0; in >> child;) out.push_back(child);
    return out;
}

// Whether `pid` is gone (or a zombie waiting to be reaped by whoever inherited it).
bool gone(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const std::size_t close = stat.rfind(')');
    return stat.empty() ||
           (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z');
}

// A signal stops the run as in a single process (130, "cancelled", nothing written) and no
// rank outlives it: SIGTERM to rank 0 alone (which ends the rank it started), and Ctrl-C's
// SIGINT to every process of the terminal's group (each rank stops; a collective that fails
// because another stopped first is no error).
struct SignalCase {
    const char* name;
    int signal;
    bool to_group;
};

class CliTensorParallelSignal : public CliTensorParallel,
                                public ::testing::WithParamInterface<SignalCase> {};

TEST_P(CliTensorParallelSignal, StopsEveryRankAsCancelled) {
    SKIP_WITHOUT_GLOO();
    const SignalCase c = GetParam();
    // Long enough that the run is still under way when the signal comes (a few seconds on any
    // machine with one thread per rank).
    write_file(dir_ / "long.txt", l2a::demo_document(200000));
    const std::string command = "cd " + shell_quote(dir_.string()) + " && exec " +
                                shell_quote(kBinary.string()) + " run --model " +
                                shell_quote(demo_dir().string()) +
                                " --doc long.txt --quiet --threads 1 --out p.l2a "
                                "--tensor-parallel 2 >stdout.txt 2>stderr.txt </dev/null";
    std::vector<std::string> args = {"/bin/sh", "-c", command};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // A process group of its own (as a terminal's job), with the signal's default action (a
    // test runner may have it ignored).
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, c.signal);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, "/bin/sh", nullptr, &attributes, argv.data(), environ);
    posix_spawnattr_destroy(&attributes);
    ASSERT_EQ(spawned, 0);
    using Clock = std::chrono::steady_clock;
    auto start = Clock::now();
    std::vector<pid_t> ranks;
    while (ranks.empty() && Clock::now() - start < std::chrono::seconds(20)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ranks = children_of(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the run under way
    ::kill(c.to_group ? -pid : pid, c.signal);
    int raw = 0;
    start = Clock::now();
    while (::waitpid(pid, &raw, WNOHANG) == 0) {
        if (Clock::now() - start > std::chrono::seconds(kHardLimitSeconds)) {
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, &raw, 0);
            FAIL() << "l2a still running " << kHardLimitSeconds << " s after the signal: killed";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const std::string err = read_file(dir_ / "stderr.txt");
    ASSERT_EQ(ranks.size(), 1u) << "rank 0 started no other rank: " << err;
    ASSERT_TRUE(WIFEXITED(raw)) << "killed by the signal instead of stopping cleanly";
    ASSERT_NE(WEXITSTATUS(raw), 0) << "the run finished before the signal: make the document "
                                      "longer";
    EXPECT_EQ(WEXITSTATUS(raw), 130) << err;
    EXPECT_TRUE(contains(err, "l2a: cancelled")) << err;
    EXPECT_FALSE(contains(err, "l2a: error")) << err;
    EXPECT_FALSE(fs::exists(dir_ / "p.l2a"));
    start = Clock::now();
    while (!gone(ranks[0]) && Clock::now() - start < std::chrono::seconds(5)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(gone(ranks[0])) << "rank 1 (process " << ranks[0] << ") outlived rank 0";
}

INSTANTIATE_TEST_SUITE_P(Signals, CliTensorParallelSignal,
                         ::testing::Values(SignalCase{"SigtermToRankZero", SIGTERM, false},
                                           SignalCase{"CtrlCToEveryRank", SIGINT, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// Mistakes are usage errors before any process starts; each names the problem.
TEST_F(CliTensorParallel, MistakesAreUsageErrors) {
    SKIP_WITHOUT_GLOO();  // without process groups --tensor-parallel N > 1 says so first
    const std::string demo = "--model " + shell_quote(demo_dir().string()) + " --doc doc.txt";
    const struct {
        std::string args;
        std::string message;
    } cases[] = {
        {"run " + demo + " --tensor-parallel 3",
         "--tensor-parallel 3: the model's query heads, KV heads and intermediate size (4, 2, "
         "704) must each be a multiple of 3; not: query heads 4, KV heads 2, intermediate size "
         "704"},
        {"run " + demo + " --tensor-parallel 0", "--tensor-parallel"},
        {"run " + demo + " --tensor-parallel 2 --engine tcp://127.0.0.1:1",
         "does not go with a remote --engine"},
        {"run " + demo + " --tensor-parallel 2 --device cuda:1",
         "--tensor-parallel 2: --device cuda:1: tensor parallel puts rank r on cuda:r; give "
         "--device cuda"},
        {"run " + demo + " --tensor-parallel 2 --dtype bf16",
         "--tensor-parallel 2: tensor parallel on the CPU runs in fp32 (--dtype bf16"},
        {"run " + demo + " --tp-rank 1 --tp-port 5000",
         "--tp-rank, --tp-port and --tp-run are for"},
        {"run --model " + shell_quote(demo_dir().string()) + " --doc /dev/null --tensor-parallel 2",
         "--doc /dev/null is not a regular file; every process reads the input itself"},
        {"bench prefill --shape qwen2.5-0.5b --device cpu --tensor-parallel 4",
         "--tensor-parallel 4: shape qwen2.5-0.5b's query heads, KV heads and intermediate size "
         "(14, 2, 4864) must each be a multiple of 4; not: query heads 14, KV heads 2"},
        {"bench prefill --shape qwen2.5-0.5b --device cpu --dtype bf16 --tensor-parallel 2",
         "--tensor-parallel 2: tensor parallel on the CPU runs in fp32 (--dtype bf16"},
    };
    std::vector<std::pair<std::string, std::string>> more;
    for (const auto& c : cases) more.emplace_back(c.args, c.message);
    // GPUs: a build without NCCL process groups says so; one with them needs a GPU per process.
    if (!l2a::nccl_process_groups_available()) {
        more.emplace_back("run " + demo + " --tensor-parallel 2 --device cuda",
                          "--tensor-parallel 2: --device cuda: tensor parallel on CUDA devices "
                          "needs NCCL process groups (c10d NCCL), which this build lacks");
    } else {
        // One more process than GPUs, and at least 2 (1 is no split).
        const int n = std::max(2, l2a::cuda_device_count() + 1);
        more.emplace_back(
            "run " + demo + " --tensor-parallel " + std::to_string(n) + " --device cuda",
            std::to_string(n) + " processes need a GPU each (rank r runs on cuda:r), and ");
    }
    for (const auto& [args, message] : more) {
        SCOPED_TRACE(args);
        const Result r = l2a(args, dir_);
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_TRUE(contains(r.err, message)) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }

    // `l2a serve --tensor-parallel N --device cuda`: the same checks as `run`, before it listens.
    const std::string serve = "serve --listen 127.0.0.1:0 --quiet";
    std::vector<std::pair<std::string, std::string>> serving = {
        {serve + " --device cuda",
         "l2a serve: --device applies to --tensor-parallel (without it, each client's request "
         "names its device)"},
        {serve + " --tensor-parallel 2 --device gpu",
         "--device gpu: expected cpu or cuda (tensor parallel puts rank r on cuda:r"},
        {serve + " --tensor-parallel 2 --device cuda:1", "--device cuda:1: expected cpu or cuda"},
    };
    if (!l2a::nccl_process_groups_available()) {
        serving.emplace_back(serve + " --tensor-parallel 2 --device cuda",
                             "--tensor-parallel 2: --device cuda: tensor parallel on CUDA "
                             "devices needs NCCL process groups (c10d NCCL), which this build "
                             "lacks");
    } else {
        const int n = std::max(2, l2a::cuda_device_count() + 1);
        serving.emplace_back(
            serve + " --tensor-parallel " + std::to_string(n) + " --device cuda",
            std::to_string(n) + " processes need a GPU each (rank r runs on cuda:r), and ");
    }
    for (const auto& [args, message] : serving) {
        SCOPED_TRACE(args);
        const Result r = l2a(args, dir_, "", false);
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_TRUE(contains(r.err, message)) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
}

// On two GPUs (a CUDA build with NCCL process groups): `l2a run --tensor-parallel 2 --device
// cuda` in bf16 gives the single-GPU run's decisions and nearly its loss, and its profile holds
// both ranks' ranges and kernels, each rank's on its own GPU (rank r on cuda:r), which the Chrome
// trace shows as a process per GPU. A what-if of it runs split as well.
TEST_F(CliTensorParallel, RunsOnTwoGpusThroughNccl) {
    SKIP_WITHOUT_TWO_NCCL_GPUS();
    const std::string run = "run --model " + shell_quote(demo_dir().string()) +
                            " --doc doc.txt --max-tokens " + std::to_string(kTokens) +
                            " --device cuda --dtype bf16 --json --quiet";
    const Result one = l2a(run + " --out one.l2a", dir_);
    ASSERT_EQ(one.status, 0) << one.err;
    const Result split = l2a(run + " --tensor-parallel 2 --out split.l2a", dir_);
    ASSERT_EQ(split.status, 0) << split.err;
    EXPECT_EQ(json::parse(split.out)["run"]["tensor_parallel"], 2);
    const l2a::Profile a = l2a::load_profile(dir_ / "one.l2a");
    const l2a::Profile p = l2a::load_profile(dir_ / "split.l2a");
    EXPECT_EQ(p.tensor_parallel, 2);
    EXPECT_EQ(p.dtype, "bf16");
    // bf16 sums in another order: the loss may move a little, not the run.
    EXPECT_LT(max_difference(p.token_nll, a.token_nll), 0.1);

    // Both ranks' kernels, rank r's on GPU r and inside rank r's ranges; rank 0 counts the run.
    std::set<std::pair<std::int32_t, std::int32_t>> rank_devices;
    for (const l2a::KernelRecord& k : p.kernels) {
        rank_devices.insert({k.rank, k.device_id});
        if (k.range >= 0) {
            EXPECT_EQ(p.ranges[static_cast<std::size_t>(k.range)].rank, k.rank);
        }
    }
    if (p.timeline_source == "cupti") {
        EXPECT_EQ(rank_devices, (std::set<std::pair<std::int32_t, std::int32_t>>{{0, 0}, {1, 1}}));
        const Result trace =
            l2a("export --profile split.l2a --format chrome --out trace.json", dir_, "", false);
        ASSERT_EQ(trace.status, 0) << trace.err;
        const std::string text = read_file(dir_ / "trace.json");
        EXPECT_TRUE(contains(text, "\"rank 0, GPU 0")) << text.substr(0, 2000);
        EXPECT_TRUE(contains(text, "\"rank 1, GPU 1")) << text.substr(0, 2000);
    } else {
        std::printf("    no kernel timeline: %s\n", p.timeline_source.c_str());
    }

    const Result whatif =
        l2a("whatif --profile split.l2a --prune 3 --ttft-repeats 0 --json "
            "--quiet --tensor-parallel 2",
            dir_);
    EXPECT_EQ(whatif.status, 0) << whatif.err;
}

// bench prefill splits its runs as well, and says so.
TEST_F(CliTensorParallel, BenchPrefillRunsSplit) {
    SKIP_WITHOUT_GLOO();
    const Result r = l2a("bench prefill --model " + shell_quote(demo_dir().string()) +
                             " --tokens 256 --repeat 1 --json --quiet --tensor-parallel 2",
                         dir_);
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["tensor_parallel"], 2);
    ASSERT_EQ(j["results"].size(), 1u);
    EXPECT_GT(j["results"][0]["tokens_per_second"].get<double>(), 0.0);
    // The largest of the ranks' peak resident memory: each holds at least the model's shard.
    EXPECT_GT(j["results"][0]["peak_rss_mib"].get<double>(), 1.0);
}

// bench prefill --shape splits the random model of a published shape (the smallest, with a
// short window and few tokens to keep it quick): each rank holds its shard of the same model,
// rank 0 reports each rank's peak memory, and the learned routing decides as in one process.
TEST_F(CliTensorParallel, BenchPrefillShapeEqualsTheSingleProcessRun) {
    SKIP_WITHOUT_GLOO();
    const std::string bench =
        "bench prefill --shape qwen2.5-0.5b --device cpu --window 32 --tokens 64 --repeat 1 "
        "--routing learned --json --quiet";
    const Result one = l2a(bench, dir_);
    ASSERT_EQ(one.status, 0) << one.err;
    const Result split = l2a(bench + " --tensor-parallel 2", dir_);
    ASSERT_EQ(split.status, 0) << split.err;
    const json a = json::parse(one.out);
    const json j = json::parse(split.out);
    EXPECT_EQ(a["tensor_parallel"], 1);
    EXPECT_EQ(j["tensor_parallel"], 2);
    EXPECT_EQ(j["dtype"], "fp32");
    EXPECT_EQ(j["parameters"], a["parameters"]);  // the summary is the whole model's
    ASSERT_EQ(j["results"].size(), 1u);
    const json& row = j["results"][0];
    EXPECT_EQ(row["tokens"], 64);
    EXPECT_GT(row["ours_median_seconds"].get<double>(), 0.0);
    EXPECT_GT(row["base_median_seconds"].get<double>(), 0.0);
    // The same decisions as one process (fp32 sums in another order could flip a decision that
    // sits on the threshold: 1 of the 24 x 64 would move the fraction by 0.00065).
    const double global = row["ours_global_fraction"].get<double>();
    EXPECT_GT(global, 0.0);
    EXPECT_LT(global, 1.0);
    EXPECT_NEAR(global, a["results"][0]["ours_global_fraction"].get<double>(), 1e-3);
    // Each rank's peak resident memory: at least the replicated embedding (151,936 x 896 fp32,
    // 519 MiB), less than the single process's whole model.
    ASSERT_EQ(row["ranks"].size(), 2u);
    const double whole = a["results"][0]["ranks"][0]["peak_rss_mib"].get<double>();
    for (int rank = 0; rank < 2; ++rank) {
        const json& r = row["ranks"][rank];
        EXPECT_EQ(r["rank"], rank);
        EXPECT_GT(r["peak_rss_mib"].get<double>(), 519.0) << r;
        EXPECT_LT(r["peak_rss_mib"].get<double>(), whole * 1.1) << r;
        EXPECT_EQ(r["ours_peak_device_bytes"], 0);  // the CPU engine does not track them
    }
}

}  // namespace
