// `l2a serve` and --engine end to end, as separate processes on loopback: a remote run saves the
// local run's profile; a server killed mid-run is a client error within 5 s with no file left;
// a client killed mid-run leaves the server serving; a server gone between requests is a client
// error, not a hang; a server or client stalled for seconds keeps its session; bench prefill
// through the engine; a wrong token is refused; and the SSH transport against an sshd on 127.0.0.1
// started here (skipped where sshd cannot start).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/profile.h"
#include "test_support.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using l2a::test::read_file;
using l2a::test::write_file;

const fs::path kBinary = fs::path(L2A_BIN_DIR) / "l2a";

fs::path demo_dir() { return fs::path(L2A_TEST_WORK_DIR) / "serve" / "demo-model"; }

bool contains(const std::string& text, const std::string& piece) {
    return text.find(piece) != std::string::npos;
}

// Whether a process whose parent is `parent` has `argument` on its command line (from /proc).
bool has_child_with_argument(pid_t parent, const std::string& argument) {
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const std::string stat = read_file(entry.path() / "stat");
        // "pid (comm) state ppid ...": the parent follows the state, after the last ')'.
        const std::size_t close = stat.rfind(')');
        if (close == std::string::npos) continue;
        int ppid = -1;
        char state = 0;
        if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
        if (ppid != parent) continue;
        std::string command = read_file(entry.path() / "cmdline");
        std::replace(command.begin(), command.end(), '\0', ' ');
        if (contains(command, " " + argument)) return true;
    }
    return false;
}

// A child process with its standard output and error in files.
class Child {
public:
    Child(std::vector<std::string> args, const fs::path& dir, const std::string& name,
          std::vector<std::string> extra_env = {})
        : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        // The extra variables first: they win over the default demo folder and the inherited.
        std::vector<std::string> env = extra_env;
        env.push_back("L2A_DEMO_DIR=" + demo_dir().string());
        for (char** e = environ; *e; ++e) {
            if (std::strncmp(*e, "L2A_DEMO_DIR=", 13) != 0) env.emplace_back(*e);
        }
        std::vector<char*> envp;
        for (std::string& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
        if (posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) {
            pid_ = -1;
        }
        posix_spawn_file_actions_destroy(&actions);
    }
    ~Child() {
        if (pid_ > 0 && !done_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    // The exit status (-1 when killed by a signal) if it has ended, without waiting.
    std::optional<int> poll() {
        int raw = 0;
        if (done_ || ::waitpid(pid_, &raw, WNOHANG) != pid_) return std::nullopt;
        done_ = true;
        return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    }
    std::string out() const { return read_file(out_); }
    std::string err() const { return read_file(err_); }
    void kill(int signal) { ::kill(pid_, signal); }
    // The exit status (-1 when killed by a signal), or nothing when it runs past `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        const auto until = Clock::now() + timeout;
        while (Clock::now() < until) {
            int raw = 0;
            if (::waitpid(pid_, &raw, WNOHANG) == pid_) {
                done_ = true;
                return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return std::nullopt;
    }
    // Waits until `piece` appears in the standard error (or output), up to `timeout`.
    bool wait_for(const std::string& piece, std::chrono::milliseconds timeout,
                  bool in_out = false) {
        const auto until = Clock::now() + timeout;
        while (Clock::now() < until) {
            if (contains(in_out ? out() : err(), piece)) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }

private:
    fs::path out_, err_;
    pid_t pid_ = -1;
    bool done_ = false;
};

class Serve : public l2a::test::ScratchDirTest {
protected:
    Serve() : ScratchDirTest("serve") {}
    void SetUp() override {
        if (!L2A_TEST_REMOTE) GTEST_SKIP() << "this build has no remote engine (no gRPC)";
        ScratchDirTest::SetUp();
        l2a::ensure_untrained_model(demo_dir());
        // A document long enough for a run of a few seconds on one CPU thread.
        std::string text;
        while (text.size() < 40000) text += "All work and no play makes a dull log. ";
        write_file(dir_ / "long.txt", text);
    }

    // Starts `l2a serve` on a free port; its port, or 0 when it did not start.
    int start_server(std::vector<std::string> extra = {}) {
        std::vector<std::string> args = {kBinary.string(), "serve", "--listen", "127.0.0.1:0"};
        args.insert(args.end(), extra.begin(), extra.end());
        server_ = std::make_unique<Child>(args, dir_, "server");
        if (!server_->wait_for("\n", std::chrono::seconds(60), true)) return 0;
        return std::stoi(server_->out());
    }

    // A client run on `device` that the server refuses: it exits 1 with one line that holds
    // `message`.
    void expect_device_refused(const std::string& engine, const std::string& device,
                               const std::string& message) {
        Child client({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens", "300",
                      "--engine", engine, "--device", device, "--quiet"},
                     dir_, device);
        EXPECT_EQ(client.wait(std::chrono::seconds(60)), 1) << client.err() << server_->err();
        const std::string err = client.err();
        EXPECT_TRUE(contains(err, message)) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }

    std::unique_ptr<Child> server_;
};

TEST_F(Serve, ARemoteRunSavesTheLocalRunsProfile) {
    const int port = start_server();
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    Child remote({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens", "300",
                  "--engine", engine, "--out", "remote.l2a", "--quiet"},
                 dir_, "remote");
    Child local({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens", "300",
                 "--out", "local.l2a", "--quiet"},
                dir_, "local");
    ASSERT_EQ(remote.wait(std::chrono::seconds(120)), 0) << remote.err();
    ASSERT_EQ(local.wait(std::chrono::seconds(120)), 0) << local.err();
    EXPECT_TRUE(contains(remote.out(), "on " + engine)) << remote.out();
    const l2a::Profile a = l2a::load_profile(dir_ / "remote.l2a");
    const l2a::Profile b = l2a::load_profile(dir_ / "local.l2a");
    EXPECT_EQ(a.decisions, b.decisions);
    EXPECT_EQ(a.token_ids, b.token_ids);
    EXPECT_EQ(a.document_path, "long.txt");
    for (std::size_t t = 1; t < a.token_nll.size(); ++t) {
        EXPECT_NEAR(a.token_nll[t], b.token_nll[t], 1e-6) << t;
    }
    EXPECT_TRUE(server_->wait_for("session from", std::chrono::seconds(5))) << server_->err();

    // A what-if of the saved profile on the engine.
    Child whatif({kBinary.string(), "whatif", "--profile", "remote.l2a", "--prune", "5", "--engine",
                  engine, "--json", "--quiet", "--ttft-repeats", "0"},
                 dir_, "whatif");
    ASSERT_EQ(whatif.wait(std::chrono::seconds(120)), 0) << whatif.err();
    EXPECT_TRUE(contains(whatif.out(), "\"start_layer\": 5")) << whatif.out();
}

// `l2a serve --tensor-parallel 2`: the server's sessions split across two processes give a
// client the local single-process result (a run and a what-if of it, in two sessions), with
// both ranks' ranges in the profile; SIGTERM stops the server and the rank it started, cleanly.
TEST_F(Serve, ATensorParallelServerGivesTheLocalResult) {
    if (!l2a::process_groups_available()) GTEST_SKIP() << "this build has no c10d Gloo";
    const int port = start_server({"--tensor-parallel", "2"});
    ASSERT_GT(port, 0) << server_->err();
    EXPECT_TRUE(contains(server_->err(), "tensor parallel over 2 processes")) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    Child remote({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens", "300",
                  "--engine", engine, "--out", "remote.l2a", "--quiet", "--threads", "1"},
                 dir_, "remote");
    ASSERT_EQ(remote.wait(std::chrono::seconds(120)), 0) << remote.err() << server_->err();
    Child local({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens", "300",
                 "--out", "local.l2a", "--quiet", "--threads", "1"},
                dir_, "local");
    ASSERT_EQ(local.wait(std::chrono::seconds(120)), 0) << local.err();
    const l2a::Profile a = l2a::load_profile(dir_ / "remote.l2a");
    const l2a::Profile b = l2a::load_profile(dir_ / "local.l2a");
    EXPECT_EQ(a.decisions, b.decisions);
    EXPECT_EQ(a.metrics.kv_bytes_total, b.metrics.kv_bytes_total);
    for (std::size_t t = 1; t < a.token_nll.size(); ++t) {
        EXPECT_NEAR(a.token_nll[t], b.token_nll[t], 1e-5) << t;
    }
    EXPECT_EQ(a.tensor_parallel, 2);
    EXPECT_TRUE(std::any_of(a.ranges.begin(), a.ranges.end(),
                            [](const l2a::TimedRange& r) { return r.rank == 1; }));

    // The ranks sum on the CPU: a client that asks for a GPU is refused in one line naming both
    // devices, and the server goes on serving.
    expect_device_refused(engine, "cuda",
                          "--device cuda: this server runs tensor parallel over 2 processes on "
                          "the CPU (l2a serve --tensor-parallel 2); ask for --device cpu");

    // A what-if of it in a second session, against the same what-if on this computer.
    Child whatif({kBinary.string(), "whatif", "--profile", "remote.l2a", "--prune", "5", "--engine",
                  engine, "--json", "--quiet", "--ttft-repeats", "0"},
                 dir_, "whatif");
    ASSERT_EQ(whatif.wait(std::chrono::seconds(120)), 0) << whatif.err() << server_->err();
    Child whatif_local({kBinary.string(), "whatif", "--profile", "remote.l2a", "--prune", "5",
                        "--json", "--quiet", "--ttft-repeats", "0", "--threads", "1"},
                       dir_, "whatif_local");
    ASSERT_EQ(whatif_local.wait(std::chrono::seconds(120)), 0) << whatif_local.err();
    EXPECT_TRUE(contains(whatif.out(), "\"start_layer\": 5")) << whatif.out();
    const auto mean_nll = [](const std::string& json) {
        const std::size_t at = json.find("\"variant\": ", json.find("\"mean_nll\""));
        return at == std::string::npos ? NAN : std::stod(json.substr(at + 11));
    };
    EXPECT_NEAR(mean_nll(whatif.out()), mean_nll(whatif_local.out()), 1e-6)
        << whatif.out() << whatif_local.out();

    server_->kill(SIGTERM);
    EXPECT_EQ(server_->wait(std::chrono::seconds(30)), 0) << server_->err();
    EXPECT_FALSE(contains(server_->err(), "error")) << server_->err();
}

// `l2a serve --tensor-parallel 2 --device cuda` on two GPUs (a CUDA build with NCCL process
// groups): rank r runs on cuda:r and a client's bf16 run on cuda gives nearly the single-GPU
// run's loss, with both ranks' ranges in the profile; a client that asks for the CPU is refused
// in one line naming both devices, and the server goes on serving.
TEST_F(Serve, ATensorParallelServerOnTwoGpusServesCudaClients) {
    SKIP_WITHOUT_TWO_NCCL_GPUS();
    const int port = start_server({"--tensor-parallel", "2", "--device", "cuda"});
    ASSERT_GT(port, 0) << server_->err();
    EXPECT_TRUE(contains(server_->err(), "tensor parallel over 2 processes on cuda:0 to cuda:1"))
        << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);

    expect_device_refused(engine, "cpu",
                          "--device cpu: this server runs tensor parallel over 2 processes on "
                          "GPUs cuda:0 to cuda:1 (l2a serve --tensor-parallel 2 --device cuda); "
                          "ask for --device cuda");

    const std::vector<std::string> run = {kBinary.string(), "run",          "--demo", "--doc",
                                          "long.txt",       "--max-tokens", "300",    "--device",
                                          "cuda",           "--dtype",      "bf16",   "--quiet"};
    std::vector<std::string> remote_args = run;
    for (const char* a : {"--engine", engine.c_str(), "--out", "remote.l2a"})
        remote_args.emplace_back(a);
    Child remote(remote_args, dir_, "remote");
    ASSERT_EQ(remote.wait(std::chrono::seconds(120)), 0) << remote.err() << server_->err();
    std::vector<std::string> local_args = run;
    for (const char* a : {"--out", "local.l2a"}) local_args.emplace_back(a);
    Child local(local_args, dir_, "local");
    ASSERT_EQ(local.wait(std::chrono::seconds(120)), 0) << local.err();
    const l2a::Profile a = l2a::load_profile(dir_ / "remote.l2a");
    const l2a::Profile b = l2a::load_profile(dir_ / "local.l2a");
    EXPECT_EQ(a.tensor_parallel, 2);
    EXPECT_EQ(a.dtype, "bf16");
    EXPECT_EQ(a.token_ids, b.token_ids);
    ASSERT_EQ(a.token_nll.size(), b.token_nll.size());
    // bf16 sums in another order: the loss may move a little, not the run.
    for (std::size_t t = 1; t < a.token_nll.size(); ++t) {
        EXPECT_NEAR(a.token_nll[t], b.token_nll[t], 0.1) << t;
    }
    EXPECT_TRUE(std::any_of(a.ranges.begin(), a.ranges.end(),
                            [](const l2a::TimedRange& r) { return r.rank == 1; }));

    server_->kill(SIGTERM);
    EXPECT_EQ(server_->wait(std::chrono::seconds(30)), 0) << server_->err();
    EXPECT_FALSE(contains(server_->err(), "error")) << server_->err();
}

TEST_F(Serve, AServerKilledMidRunIsAClientErrorWithinFiveSecondsAndNoFile) {
    const int port = start_server();
    ASSERT_GT(port, 0) << server_->err();
    Child client({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--engine",
                  "tcp://127.0.0.1:" + std::to_string(port), "--out", "p.l2a", "--threads", "1"},
                 dir_, "client", {"L2A_PROGRESS_SECONDS=0"});
    ASSERT_TRUE(client.wait_for("prefill of", std::chrono::seconds(60))) << client.err();
    server_->kill(SIGKILL);
    const auto killed = Clock::now();
    const std::optional<int> status = client.wait(std::chrono::seconds(30));
    ASSERT_TRUE(status.has_value());
    EXPECT_LE(Clock::now() - killed, std::chrono::seconds(5));
    EXPECT_EQ(*status, 1) << client.err();
    EXPECT_TRUE(contains(client.err(), "connection lost")) << client.err();
    for (const auto& entry : fs::directory_iterator(dir_)) {
        EXPECT_FALSE(contains(entry.path().filename().string(), "p.l2a")) << entry.path();
    }
}

TEST_F(Serve, AClientKilledMidRunLeavesTheServerServing) {
    const int port = start_server();
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    {
        Child client({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--engine", engine,
                      "--threads", "1"},
                     dir_, "doomed", {"L2A_PROGRESS_SECONDS=0"});
        ASSERT_TRUE(client.wait_for("prefill of", std::chrono::seconds(60))) << client.err();
        client.kill(SIGKILL);
        client.wait(std::chrono::seconds(10));
    }
    // The server notices, cancels that run, and closes the session.
    EXPECT_TRUE(server_->wait_for("closed", std::chrono::seconds(10))) << server_->err();
    Child next({kBinary.string(), "run", "--demo", "--max-tokens", "64", "--engine", engine,
                "--quiet", "--json"},
               dir_, "next");
    EXPECT_EQ(next.wait(std::chrono::seconds(60)), 0) << next.err();
    EXPECT_TRUE(contains(next.out(), "\"num_tokens\": 64")) << next.out();
}

// Ctrl-C on the client cancels the run on the engine: the client ends as a local run does
// (130, "cancelled"), and the engine is free for the next run at once.
TEST_F(Serve, CtrlCOnTheClientCancelsTheRunOnTheEngine) {
    const int port = start_server();
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    Child client({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--engine", engine,
                  "--threads", "1", "--out", "p.l2a"},
                 dir_, "client", {"L2A_PROGRESS_SECONDS=0"});
    ASSERT_TRUE(client.wait_for("prefill of", std::chrono::seconds(60))) << client.err();
    client.kill(SIGINT);
    const auto asked = Clock::now();
    EXPECT_EQ(client.wait(std::chrono::seconds(30)), 130) << client.err();
    EXPECT_LE(Clock::now() - asked, std::chrono::seconds(5));
    EXPECT_TRUE(contains(client.err(), "cancelled")) << client.err();
    EXPECT_FALSE(fs::exists(dir_ / "p.l2a"));
    Child next(
        {kBinary.string(), "run", "--demo", "--max-tokens", "32", "--engine", engine, "--quiet"},
        dir_, "next");
    EXPECT_EQ(next.wait(std::chrono::seconds(60)), 0) << next.err();
}

// A server or client that stops answering for a few seconds (a busy host, a process swapped
// out) keeps its session: here each is stopped for 12 s during a run, and the run ends as usual.
TEST_F(Serve, APeerThatStallsForSecondsKeepsItsSession) {
    const int port = start_server();
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    for (const bool stop_server : {true, false}) {
        const std::string name = stop_server ? "server-stalls" : "client-stalls";
        Child client({kBinary.string(), "run", "--demo", "--doc", "long.txt", "--max-tokens",
                      "2000", "--engine", engine, "--threads", "1", "--out", name + ".l2a"},
                     dir_, name, {"L2A_PROGRESS_SECONDS=0"});
        ASSERT_TRUE(client.wait_for("prefill of", std::chrono::seconds(60))) << client.err();
        Child& stalled = stop_server ? *server_ : client;
        stalled.kill(SIGSTOP);
        std::this_thread::sleep_for(std::chrono::seconds(12));
        stalled.kill(SIGCONT);
        EXPECT_EQ(client.wait(std::chrono::seconds(120)), 0) << name << ": " << client.err();
        EXPECT_TRUE(fs::exists(dir_ / (name + ".l2a"))) << name;
    }
}

// bench prefill through the engine: the engine times its runs of a published shape (random
// weights) after the warm-up asked for, and --compare-local times the same runs in the client.
TEST_F(Serve, ABenchThroughTheEngineWarmsUpAsAsked) {
    const int port = start_server({"--shape", "qwen2.5-0.5b"});
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    Child bench({kBinary.string(), "bench", "prefill", "--shape", "qwen2.5-0.5b", "--device", "cpu",
                 "--tokens", "64,96", "--repeat", "1", "--warmup", "80", "--engine", engine,
                 "--compare-local", "--json"},
                dir_, "bench");
    ASSERT_EQ(bench.wait(std::chrono::seconds(240)), 0) << bench.err();
    const json j = json::parse(bench.out());
    EXPECT_EQ(j["warmup"], 80) << j;
    EXPECT_TRUE(contains(j["engine"].get<std::string>(), engine)) << j["engine"];
    ASSERT_EQ(j["results"].size(), 2u) << j;
    std::vector<std::int64_t> warmups;
    for (const json& row : j["results"]) {
        warmups.push_back(row["warmup_tokens"].get<std::int64_t>());
        const double engine_s = row["engine_median_seconds"].get<double>();
        EXPECT_GT(engine_s, 0.0) << row;
        // The client's wait holds the engine's run.
        EXPECT_GE(row["client_median_seconds"].get<double>(), engine_s) << row;
        EXPECT_GT(row["local_median_seconds"].get<double>(), 0.0) << row;
    }
    EXPECT_EQ(warmups, (std::vector<std::int64_t>{64, 80}));
    EXPECT_TRUE(contains(bench.err(), "96 tokens: warm-up run of 80 tokens")) << bench.err();
}

// A server that goes away between a client's requests: the client's next request cannot be
// sent, and that is the same one-line error as a connection lost mid-run, not a hang. Here the
// server dies while the client loads its own copy of the model for --compare-local, before the
// first timed run is sent.
TEST_F(Serve, AServerGoneBetweenRequestsIsAClientErrorNotAHang) {
    const int port = start_server({"--shape", "qwen2.5-0.5b"});
    ASSERT_GT(port, 0) << server_->err();
    Child client({kBinary.string(), "bench", "prefill", "--shape", "qwen2.5-0.5b", "--device",
                  "cpu", "--tokens", "64", "--repeat", "1", "--engine",
                  "tcp://127.0.0.1:" + std::to_string(port), "--compare-local"},
                 dir_, "client", {"L2A_PROGRESS_SECONDS=0"});
    // The engine's model loaded, the client's own loading: then the server goes.
    const auto loading_here = [&] {
        const std::string err = client.err();
        const std::size_t first = err.find("loading the model");
        return first != std::string::npos &&
               err.find("loading the model", first + 1) != std::string::npos;
    };
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (!loading_here() && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(loading_here()) << client.err();
    server_->kill(SIGKILL);
    const std::optional<int> status = client.wait(std::chrono::seconds(60));
    ASSERT_TRUE(status.has_value()) << "the client hangs: " << client.err();
    EXPECT_EQ(*status, 1) << client.err();
    EXPECT_TRUE(contains(client.err(), "connection lost")) << client.err();
}

TEST_F(Serve, TokensAndAddressesAreChecked) {
    write_file(dir_ / "token", "right-token\n");
    fs::permissions(dir_ / "token", fs::perms::owner_read | fs::perms::owner_write);
    write_file(dir_ / "wrong", "wrong-token\n");
    fs::permissions(dir_ / "wrong", fs::perms::owner_read | fs::perms::owner_write);
    Child open({kBinary.string(), "serve", "--listen", "0.0.0.0:0"}, dir_, "open");
    EXPECT_EQ(open.wait(std::chrono::seconds(60)), 1);
    EXPECT_TRUE(contains(open.err(), "needs a token")) << open.err();

    const int port = start_server({"--token-file", "token"});
    ASSERT_GT(port, 0) << server_->err();
    const std::string engine = "tcp://127.0.0.1:" + std::to_string(port);
    Child wrong({kBinary.string(), "run", "--demo", "--max-tokens", "16", "--engine", engine,
                 "--token-file", "wrong"},
                dir_, "wrong");
    EXPECT_EQ(wrong.wait(std::chrono::seconds(60)), 1);
    EXPECT_TRUE(contains(wrong.err(), "refused the token")) << wrong.err();
    Child right({kBinary.string(), "run", "--demo", "--max-tokens", "16", "--engine", engine,
                 "--token-file", "token", "--quiet"},
                dir_, "right");
    EXPECT_EQ(right.wait(std::chrono::seconds(60)), 0) << right.err();
    Child bad({kBinary.string(), "run", "--demo", "--engine", "http://x"}, dir_, "bad");
    EXPECT_EQ(bad.wait(std::chrono::seconds(60)), 2);
    EXPECT_TRUE(contains(bad.err(), "expected tcp://HOST:PORT")) << bad.err();

    // Each mistake below is one line on the standard error with this exit status; no crash.
    write_file(dir_ / "accented",
               "s\xc3\xa9"
               "cret\n");
    write_file(dir_ / "tabbed", "tok\twith tab\n");
    write_file(dir_ / "not.pem", "just text\n");
    for (const char* file : {"accented", "tabbed"}) {
        fs::permissions(dir_ / file, fs::perms::owner_read | fs::perms::owner_write);
    }
    const struct {
        std::vector<std::string> args;
        int status;
        const char* error;
    } mistakes[] = {
        {{"run", "--demo", "--max-tokens", "16", "--engine", engine, "--token-file", "accented"},
         1,
         "accented: the token holds a byte that cannot be sent (0xc3 at character 2)"},
        {{"run", "--demo", "--max-tokens", "16", "--engine", engine, "--token-file", "tabbed"},
         1,
         "tabbed: the token holds a byte that cannot be sent (0x09 at character 4)"},
        {{"serve", "--listen", "127.0.0.1:0", "--token-file", "accented"},
         1,
         "the token holds a byte that cannot be sent"},
        {{"serve", "--listen", "127.0.0.1:99999"}, 1, "expected HOST:PORT with a port in 0..65535"},
        {{"serve", "--listen", "127.0.0.1"}, 1, "expected HOST:PORT"},
        {{"serve", "--listen", "unix:"}, 1, "the socket's path is empty"},
        {{"serve", "--listen", "unix:/nonexistent-l2a-folder/s"},
         1,
         "the folder /nonexistent-l2a-folder does not exist"},
        {{"serve", "--listen", "unix:" + dir_.string()}, 1, "is a folder"},
        {{"serve", "--listen", "unix:/tmp/" + std::string(120, 's')},
         1,
         "the socket's path is 125 bytes long; a socket's path has at most 107"},
        {{"run", "--demo", "--engine", "unix:/tmp/" + std::string(120, 's')},
         2,
         "the socket's path is 125 bytes long; a socket's path has at most 107"},
        // A port another server holds (this test's): refused, not shared with it.
        {{"serve", "--listen", "127.0.0.1:" + std::to_string(port)},
         1,
         "could not listen there (address in use"},
        {{"serve", "--listen", "127.0.0.1:0", "--tls-cert", "not.pem", "--tls-key", "not.pem"},
         1,
         "not.pem: not a PEM certificate"},
        {{"run", "--demo", "--engine", "tls://127.0.0.1:" + std::to_string(port), "--tls-ca",
          "not.pem"},
         1,
         "not.pem: not a PEM certificate"},
        {{"run", "--demo", "--engine", engine, "--tls-ca", "not.pem"},
         2,
         "--tls-ca is for tls:// engines"},
        // Nothing can answer: said after a short grace, and why (a plain connection attempt
        // tells).
        {{"run", "--demo", "--engine", "tcp://127.0.0.1:1"},
         1,
         "cannot reach the engine: nothing listens on 127.0.0.1:1 (connection refused"},
        {{"run", "--demo", "--engine", "unix:" + (dir_ / "no-socket").string()},
         1,
         "no-socket (is l2a serve running?)"},
        {{"run", "--demo", "--engine", "tls://127.0.0.1:" + std::to_string(port)},
         1,
         "the TLS handshake failed ("},
    };
    int n = 0;
    for (const auto& m : mistakes) {
        std::vector<std::string> args = {kBinary.string()};
        args.insert(args.end(), m.args.begin(), m.args.end());
        Child child(args, dir_, "mistake" + std::to_string(n++));
        const std::optional<int> status = child.wait(std::chrono::seconds(60));
        const std::string err = child.err();
        EXPECT_EQ(status, m.status) << m.args[0] << " " << m.args.back() << ": " << err;
        EXPECT_TRUE(contains(err, m.error)) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
    // A tensor-parallel server checks where it will listen before it starts its other ranks:
    // no rank process (one with --tp-rank) ever appears.
    if (l2a::process_groups_available()) {
        for (const auto& [listen, error] :
             {std::pair<std::string, std::string>{"127.0.0.1:" + std::to_string(port),
                                                  "could not listen there (address in use"},
              {"0.0.0.0:0", "a non-loopback address needs a token"}}) {
            Child child({kBinary.string(), "serve", "--tensor-parallel", "2", "--listen", listen},
                        dir_, "tensor-parallel");
            ASSERT_TRUE(child.started());
            bool ranks_started = false;
            std::optional<int> status;
            const auto until = Clock::now() + std::chrono::seconds(60);
            while (!(status = child.poll()) && Clock::now() < until) {
                ranks_started = ranks_started || has_child_with_argument(child.pid(), "--tp-rank");
                // A rank lives for its group's rendezvous (tenths of a second) at least.
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
            EXPECT_EQ(status, 1) << child.err();
            EXPECT_FALSE(ranks_started) << listen;
            const std::string err = child.err();
            EXPECT_TRUE(contains(err, "--listen " + listen + ": " + error)) << err;
            EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        }
    }
    // The server still serves the right token.
    Child again({kBinary.string(), "run", "--demo", "--max-tokens", "16", "--engine", engine,
                 "--token-file", "token", "--quiet"},
                dir_, "again");
    EXPECT_EQ(again.wait(std::chrono::seconds(60)), 0) << again.err();
}

// --engine ssh:// against an sshd on 127.0.0.1 with keys made here: l2a serve starts on the
// "remote" host through ssh and the run comes back through the forwarded socket.
TEST_F(Serve, TheSshTransportStartsTheServerThroughSsh) {
    const fs::path sshd = "/usr/sbin/sshd";
    if (!fs::exists(sshd) || std::system("command -v ssh-keygen >/dev/null 2>&1") != 0) {
        GTEST_SKIP() << "openssh-server is not installed (scripts/setup installs it)";
    }
    const fs::path keys = dir_ / "ssh";
    fs::create_directories(keys);
    for (const char* name : {"host_key", "user_key"}) {
        const std::string command = "ssh-keygen -q -t ed25519 -N '' -f " +
                                    l2a::test::shell_quote((keys / name).string()) +
                                    " >/dev/null 2>&1";
        ASSERT_EQ(std::system(command.c_str()), 0);
    }
    fs::copy_file(keys / "user_key.pub", keys / "authorized_keys");
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    const int port = 20000 + static_cast<int>(rng() % 20000);
    write_file(keys / "sshd_config",
               "Port " + std::to_string(port) + "\nListenAddress 127.0.0.1\nHostKey " +
                   (keys / "host_key").string() + "\nAuthorizedKeysFile " +
                   (keys / "authorized_keys").string() + "\nPidFile " +
                   (keys / "sshd.pid").string() +
                   "\nPermitRootLogin prohibit-password\nStrictModes no\n"
                   "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                   "AllowStreamLocalForwarding yes\nLogLevel ERROR\n");
    std::error_code ignored;
    fs::create_directories("/run/sshd", ignored);  // privilege separation (as root)
    Child daemon({sshd.string(), "-D", "-e", "-f", (keys / "sshd_config").string()}, dir_, "sshd");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (daemon.wait(std::chrono::milliseconds(10)).has_value()) {
        GTEST_SKIP() << "sshd could not start here: " << daemon.err();
    }
    const passwd* user = ::getpwuid(::getuid());
    ASSERT_NE(user, nullptr);
    const std::string ssh = "ssh -F /dev/null -i " + (keys / "user_key").string() +
                            " -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no"
                            " -o LogLevel=ERROR -o UserKnownHostsFile=" +
                            (keys / "known_hosts").string();
    const std::string engine = "ssh://" + std::string(user->pw_name) +
                               "@127.0.0.1:" + std::to_string(port) + kBinary.string();
    // Can ssh log in at all here (some sandboxes forbid it)? Asked again for a few seconds: on a
    // busy machine sshd may not listen yet.
    const std::string probe = ssh + " -p " + std::to_string(port) + " " + user->pw_name +
                              "@127.0.0.1 true >/dev/null 2>&1";
    bool logged_in = false;
    for (int attempt = 0; attempt < 20 && !logged_in; ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
        logged_in = std::system(probe.c_str()) == 0;
    }
    if (!logged_in) GTEST_SKIP() << "ssh cannot log in to the test's sshd";

    // The host's demo model (the shipped one: sshd does not pass L2A_DEMO_DIR on).
    Child remote({kBinary.string(), "run", "--demo", "--max-tokens", "64", "--engine", engine,
                  "--out", "ssh.l2a", "--quiet"},
                 dir_, "remote", {"L2A_SSH=" + ssh});
    ASSERT_EQ(remote.wait(std::chrono::seconds(120)), 0) << remote.err();
    EXPECT_TRUE(contains(remote.out(), "on " + engine)) << remote.out();
    Child local(
        {kBinary.string(), "run", "--demo", "--max-tokens", "64", "--out", "local.l2a", "--quiet"},
        dir_, "local", {"L2A_DEMO_DIR=" + l2a::demo_model_dir().string()});
    ASSERT_EQ(local.wait(std::chrono::seconds(120)), 0) << local.err();
    const l2a::Profile a = l2a::load_profile(dir_ / "ssh.l2a");
    const l2a::Profile b = l2a::load_profile(dir_ / "local.l2a");
    EXPECT_EQ(a.decisions, b.decisions);
    EXPECT_NEAR(a.metrics.mean_nll, b.metrics.mean_nll, 1e-6);
    // The server ended with the connection: no l2a serve left behind (the bracket keeps pgrep
    // from finding its own shell).
    bool left = true;
    for (int i = 0; i < 50 && left; ++i) {
        left = std::system("pgrep -f 'l2a serve --listen unix:/tmp/l2a-serv[e]-' >/dev/null") == 0;
        if (left) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_FALSE(left) << "an l2a serve started through ssh is still running";
}

}  // namespace
