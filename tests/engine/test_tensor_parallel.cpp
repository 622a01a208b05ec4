// Tensor parallel on the CPU (Gloo): 2 and 3 processes, each running its shard of one model
// through run_prefill_parallel, give the single-process result (logits, per-token loss and
// router logits within 1e-5, the same decisions) for an L2A model and a plain qwen3 model. The
// ranks are tensor_parallel_peer processes on a free port of the loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/demo.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/safetensors.h"
#include "l2a/engine/tensor_parallel.h"
#include "tensor_parallel_models.h"
#include "test_support.h"

extern char** environ;

namespace l2a {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Every group is killed after this, and the test fails: nothing may hang.
constexpr auto kHardLimit = std::chrono::seconds(120);
constexpr double kTimeoutSeconds = 30;
constexpr double kTolerance = 1e-5;

#define SKIP_WITHOUT_GLOO()                                                                  \
    if (!process_groups_available())                                                         \
    GTEST_SKIP() << "this build has no c10d Gloo (install libgloo-dev and reconfigure): no " \
                    "process groups to test"

fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "tensor_parallel"; }

// The untrained demo model: 6 L2A layers, 4 query / 2 KV heads of 64, intermediate 704.
const fs::path& demo_dir() {
    static const fs::path dir = ensure_untrained_model(work_dir() / "demo");
    return dir;
}

// The demo model's base as a plain qwen3 folder (the global set and the router left out).
const fs::path& plain_dir() {
    static const fs::path dir = [] {
        const fs::path out = work_dir() / "plain";
        fs::create_directories(out);
        ModelConfig config = load_model_config(demo_dir() / "config.json");
        config.model_type = ModelType::Qwen3;
        test::write_file(out / "config.json", model_config_to_json(config));
        const auto source = SafetensorsFile::open(demo_dir() / "model.safetensors");
        SafetensorsWriter writer(out / "model.safetensors");
        for (const TensorInfo& info : source.tensors()) {
            if (info.name.find("_global") != std::string::npos ||
                info.name.find("sigmoid_linear") != std::string::npos) {
                continue;
            }
            const TensorView view = source.view(info);
            writer.add(info.name, info.dtype, info.shape, {view.data, view.size_bytes()});
        }
        writer.finish();
        return out;
    }();
    return dir;
}

std::string six_heads() { return "random-six-heads:" + demo_dir().string(); }

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t size = sizeof address;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
        port = ntohs(address.sin_port);
    }
    ::close(fd);
    return port;
}

// What one run gives, from run_prefill or a peer's file.
struct Outcome {
    std::vector<float> token_nll;
    std::vector<float> router_logits;
    std::vector<std::uint8_t> decisions;
    std::vector<float> logits;  // [T, V]
};

Outcome single_process(const Model& model) {
    const std::vector<std::int32_t> tokens = test::tensor_parallel_tokens();
    const std::int64_t vocab = model.config().vocab_size;
    Outcome out;
    out.logits.resize(tokens.size() * static_cast<std::size_t>(vocab));
    PrefillHooks hooks;
    hooks.logits_sink = [&](std::int64_t r0, std::int64_t n, std::int64_t v, const float* p) {
        std::copy(p, p + n * v, out.logits.begin() + r0 * v);
    };
    const PrefillResult result = run_prefill(model, tokens, {}, hooks);
    out.token_nll = result.token_nll;
    out.router_logits = result.router_logits;
    out.decisions = result.decisions;
    return out;
}

template <typename T>
bool read_into(const std::string& bytes, std::size_t& at, std::vector<T>& v, std::size_t n) {
    if (at + n * sizeof(T) > bytes.size()) return false;
    v.resize(n);
    std::memcpy(v.data(), bytes.data() + at, n * sizeof(T));
    at += n * sizeof(T);
    return true;
}

std::optional<Outcome> read_outcome(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::nullopt;
    const std::string bytes = test::read_file(path);
    std::size_t at = 0;
    std::vector<std::int64_t> shape;
    Outcome o;
    if (!read_into(bytes, at, shape, 3)) return std::nullopt;
    const auto t = static_cast<std::size_t>(shape[0]), l = static_cast<std::size_t>(shape[1]),
               v = static_cast<std::size_t>(shape[2]);
    if (!read_into(bytes, at, o.token_nll, t) || !read_into(bytes, at, o.router_logits, l * t) ||
        !read_into(bytes, at, o.decisions, l * t) || !read_into(bytes, at, o.logits, t * v)) {
        return std::nullopt;
    }
    return o;
}

// Largest |a - b| over elements where both are finite; NaN in exactly one counts as infinite.
double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
        worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    }
    return worst;
}

struct Peer {
    pid_t pid = -1;
    fs::path log;
    fs::path result;
    std::optional<int> status;
    double seconds = 0;  // from the start of all ranks to this one's exit
};

// Starts `world` tensor_parallel_peer ranks over `model` and waits for them (killing them all
// and failing past kHardLimit). `quitter`: a rank that exits once the group is joined.
std::vector<Peer> start_and_wait(const std::string& model, int world, const std::string& tag,
                                 double timeout_seconds, int quitter = -1) {
    const fs::path dir = work_dir() / tag;
    fs::create_directories(dir);
    const int port = free_port();
    EXPECT_GT(port, 0) << "no free port on the loopback";
    std::vector<Peer> peers(static_cast<std::size_t>(world));
    for (int rank = 0; rank < world; ++rank) {
        Peer& peer = peers[static_cast<std::size_t>(rank)];
        peer.log = dir / ("rank" + std::to_string(rank) + ".log");
        peer.result = dir / ("rank" + std::to_string(rank) + ".bin");
        fs::remove(peer.result);
        std::vector<std::string> args = {L2A_TENSOR_PARALLEL_PEER,
                                         std::to_string(rank),
                                         std::to_string(world),
                                         std::to_string(port),
                                         std::to_string(timeout_seconds),
                                         model,
                                         peer.result.string()};
        if (rank == quitter) args.push_back("quit");
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, peer.log.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        if (posix_spawn(&peer.pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
            peer.pid = -1;
            ADD_FAILURE() << "cannot start " << argv[0];
        }
        posix_spawn_file_actions_destroy(&actions);
    }
    const auto start = Clock::now();
    int running = 0;
    for (const Peer& peer : peers) running += peer.pid > 0 ? 1 : 0;
    while (running > 0 && Clock::now() - start < kHardLimit) {
        for (Peer& peer : peers) {
            int raw = 0;
            if (peer.pid > 0 && !peer.status && ::waitpid(peer.pid, &raw, WNOHANG) == peer.pid) {
                peer.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
                peer.seconds = std::chrono::duration<double>(Clock::now() - start).count();
                --running;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (Peer& peer : peers) {
        if (peer.pid > 0 && !peer.status) {
            ADD_FAILURE() << "rank " << (&peer - peers.data()) << " still running after "
                          << kHardLimit.count() << " s: killed";
            ::kill(peer.pid, SIGKILL);
            ::waitpid(peer.pid, nullptr, 0);
        }
    }
    return peers;
}

// Every rank's outcome (nullopt where it failed).
std::vector<std::optional<Outcome>> run_ranks(const std::string& model, int world,
                                              const std::string& tag) {
    std::vector<std::optional<Outcome>> out;
    const std::vector<Peer> peers = start_and_wait(model, world, tag, kTimeoutSeconds);
    for (const Peer& peer : peers) {
        const int rank = static_cast<int>(&peer - peers.data());
        const std::string log = fs::exists(peer.log) ? test::read_file(peer.log) : "";
        EXPECT_EQ(peer.status, std::optional<int>(0)) << "rank " << rank << ": " << log;
        out.push_back(peer.status == std::optional<int>(0) ? read_outcome(peer.result)
                                                           : std::nullopt);
        EXPECT_TRUE(out.back().has_value()) << "rank " << rank << ": no result; " << log;
    }
    return out;
}

struct Case {
    const char* name;
    int world;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " over " << c.world; }

class TensorParallel : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallel, EveryRankGivesTheSingleProcessResult) {
    SKIP_WITHOUT_GLOO();
    const Case c = GetParam();
    const std::string name = c.name;
    const std::string model_name = name == "demo"    ? demo_dir().string()
                                   : name == "plain" ? plain_dir().string()
                                                     : six_heads();
    const Outcome want = single_process(test::tensor_parallel_model(model_name));
    std::size_t routed = 0;
    for (std::uint8_t d : want.decisions) routed += d;
    std::printf("    %s: %zu of %zu (layer, token) decisions global\n", c.name, routed,
                want.decisions.size());
    const std::vector<std::optional<Outcome>> ranks =
        run_ranks(model_name, c.world, name + "_world" + std::to_string(c.world));
    for (std::size_t rank = 0; rank < ranks.size(); ++rank) {
        if (!ranks[rank]) continue;
        const Outcome& got = *ranks[rank];
        const double nll = max_difference(got.token_nll, want.token_nll);
        const double logits = max_difference(got.logits, want.logits);
        const double router = max_difference(got.router_logits, want.router_logits);
        std::printf("    %s, rank %zu of %d: max |diff| token NLL %.3g, logits %.3g, router %.3g\n",
                    c.name, rank, c.world, nll, logits, router);
        EXPECT_LE(nll, kTolerance) << "rank " << rank;
        EXPECT_LE(logits, kTolerance) << "rank " << rank;
        EXPECT_LE(router, kTolerance) << "rank " << rank;
        EXPECT_EQ(got.decisions, want.decisions) << "rank " << rank;
        // Every rank holds the same all-reduced numbers.
        if (ranks[0]) {
            EXPECT_EQ(got.decisions, ranks[0]->decisions) << "rank " << rank;
            EXPECT_EQ(max_difference(got.logits, ranks[0]->logits), 0.0) << "rank " << rank;
        }
    }
}

// The demo model's heads (4 query, 2 KV) split over 2 ranks only; the six-head model over 2 and 3.
INSTANTIATE_TEST_SUITE_P(Models, TensorParallel,
                         ::testing::Values(Case{"demo", 2}, Case{"plain", 2}, Case{"six_heads", 2},
                                           Case{"six_heads", 3}),
                         [](const auto& info) {
                             return std::string(info.param.name) + "_World" +
                                    std::to_string(info.param.world);
                         });

// A rank that dies once the group is joined: every other rank's run stops with an l2a::Error at
// its first all-reduce, within the collectives' timeout (5 s here), never a hang.
TEST(TensorParallelFailure, ARankThatDiesStopsTheOthersWithAnError) {
    SKIP_WITHOUT_GLOO();
    const int world = 3;
    const std::vector<Peer> peers = start_and_wait(six_heads(), world, "quit_world3", 5, 1);
    for (const Peer& peer : peers) {
        const int rank = static_cast<int>(&peer - peers.data());
        const std::string log = fs::exists(peer.log) ? test::read_file(peer.log) : "";
        if (rank == 1) {
            EXPECT_EQ(peer.status, std::optional<int>(0)) << log;
            continue;
        }
        EXPECT_EQ(peer.status, std::optional<int>(3)) << "rank " << rank << ": " << log;
        EXPECT_CONTAINS(log, "error after");
        EXPECT_CONTAINS(log, "rank " + std::to_string(rank) + " of 3: ");
        EXPECT_CONTAINS(log, "failed");
        EXPECT_LT(peer.seconds, 20.0) << log;
        std::printf("    rank %d (exit after %.1f s): %s\n", rank, peer.seconds,
                    log.substr(0, log.find('\n')).c_str());
    }
}

TEST(TensorParallelShard, RefusesAWorldThatDoesNotDivideTheHeads) {
    const Model model = Model::load(demo_dir());
    const std::string message = test::message_of([&] { shard_for_rank(model, 0, 3); });
    EXPECT_CONTAINS(message,
                    "tensor parallel over 3 ranks: num_attention_heads (4) is not a "
                    "multiple of 3");
    EXPECT_CONTAINS(test::message_of([&] { shard_for_rank(model, 2, 2); }),
                    "rank 2 is not in 0..1");
}

TEST(TensorParallelShard, SplitsTheHeadsAndTheMlp) {
    const Model model = Model::load(demo_dir());
    const Model shard = shard_for_rank(model, 1, 2);
    EXPECT_EQ(shard.config().num_attention_heads, 2);
    EXPECT_EQ(shard.config().num_key_value_heads, 1);
    EXPECT_EQ(shard.config().intermediate_size, 352);
    EXPECT_EQ(shard_info(shard).rank, 1);
    EXPECT_EQ(shard_info(shard).world, 2);
    EXPECT_EQ(shard.summary().path, model.summary().path);
    EXPECT_EQ(shard_info(shard_for_rank(model, 0, 1)).world, 1);
}

TEST(TensorParallelShard, AShardDoesNotRunAlone) {
    const Model shard = shard_for_rank(Model::load(demo_dir()), 0, 2);
    const std::vector<std::int32_t> tokens = test::tensor_parallel_tokens();
    EXPECT_CONTAINS(test::message_of([&] { run_prefill(shard, tokens, {}); }),
                    "it runs only with the others (run_prefill_parallel)");
}

}  // namespace
}  // namespace l2a
