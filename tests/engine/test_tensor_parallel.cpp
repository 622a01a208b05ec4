// Tensor parallel on the CPU (Gloo): 2 and 3 processes, each running its shard of one model
// through run_prefill_parallel, give the single-process result (logits, per-token loss and
// router logits within 1e-5, the same decisions) for an L2A model and a plain qwen3 model. The
// ranks are tensor_parallel_peer processes on a free port of the loopback.
#include <gtest/gtest.h>

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
#include "rank_processes.h"
#include "tensor_parallel_models.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

// Every group is killed after this, and the test fails: nothing may hang.
constexpr auto kHardLimit = std::chrono::seconds(120);
constexpr double kTimeoutSeconds = 30;
constexpr double kTolerance = 1e-5;

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

// A rank's process, its log in `log` and what it computed in `result`.
struct Peer : test::RankProcess {
    fs::path result;
};

// Starts `world` tensor_parallel_peer ranks over `model` and waits for them (killing them all
// and failing past kHardLimit). `quitter`: a rank that exits once the group is joined.
std::vector<Peer> start_and_wait(const std::string& model, int world, const std::string& tag,
                                 double timeout_seconds, int quitter = -1) {
    const fs::path dir = work_dir() / tag;
    fs::create_directories(dir);
    const int port = test::free_port();
    EXPECT_GT(port, 0) << "no free port on the loopback";
    std::vector<test::RankProcess> ranks;
    std::vector<fs::path> results;
    for (int rank = 0; rank < world; ++rank) {
        const fs::path result = dir / ("rank" + std::to_string(rank) + ".bin");
        fs::remove(result);
        std::vector<std::string> args = {L2A_TENSOR_PARALLEL_PEER,
                                         std::to_string(rank),
                                         std::to_string(world),
                                         std::to_string(port),
                                         std::to_string(timeout_seconds),
                                         model,
                                         result.string()};
        if (rank == quitter) args.push_back("quit");
        ranks.push_back(
            test::start_rank(std::move(args), dir / ("rank" + std::to_string(rank) + ".log")));
        results.push_back(result);
    }
    test::wait_for_ranks(ranks, kHardLimit);
    std::vector<Peer> peers;
    for (std::size_t i = 0; i < ranks.size(); ++i) peers.push_back({ranks[i], results[i]});
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

// Each rank reads only its slices (load_model_shard, random_model_shard): the same weights as
// cutting the whole model, and a summary of the whole model.
TEST(TensorParallelShard, ASliceReadFromTheFolderEqualsTheCutOfTheWholeModel) {
    for (const fs::path& dir : {demo_dir(), plain_dir()}) {
        SCOPED_TRACE(dir.string());
        const Model whole = Model::load(dir);
        std::vector<std::string> digests;
        for (int rank = 0; rank < 2; ++rank) {
            const Model read = load_model_shard(dir, {}, rank, 2);
            const Model cut = shard_for_rank(whole, rank, 2);
            digests.push_back(weights_digest(read));
            EXPECT_EQ(digests.back(), weights_digest(cut)) << "rank " << rank;
            EXPECT_EQ(read.config().num_attention_heads, cut.config().num_attention_heads);
            EXPECT_EQ(read.config().intermediate_size, cut.config().intermediate_size);
            EXPECT_EQ(shard_info(read).rank, rank);
            EXPECT_EQ(shard_info(read).world, 2);
            EXPECT_EQ(read.summary().parameter_count, whole.summary().parameter_count);
            EXPECT_EQ(read.summary().num_heads, whole.summary().num_heads);
            EXPECT_EQ(read.summary().config_hash, whole.summary().config_hash);
        }
        EXPECT_NE(digests[0], digests[1]);
        EXPECT_NE(digests[0], weights_digest(whole));
        EXPECT_EQ(weights_digest(load_model_shard(dir, {}, 0, 1)), weights_digest(whole));
    }
    const ModelConfig six = test::six_head_config(demo_dir());
    const Model whole = Model::random(six, 1234);
    for (int rank = 0; rank < 3; ++rank) {
        EXPECT_EQ(weights_digest(random_model_shard(six, 1234, {}, rank, 3)),
                  weights_digest(shard_for_rank(whole, rank, 3)))
            << "rank " << rank;
    }
    EXPECT_CONTAINS(test::message_of([&] { load_model_shard(demo_dir(), {}, 0, 3); }),
                    "tensor parallel over 3 ranks: num_attention_heads (4) is not a multiple of 3");
    EXPECT_CONTAINS(test::message_of([&] { load_model_shard(demo_dir(), {}, 3, 3); }),
                    "rank 3 is not in 0..2");
}

TEST(TensorParallelShard, AShardDoesNotRunAlone) {
    const Model shard = shard_for_rank(Model::load(demo_dir()), 0, 2);
    const std::vector<std::int32_t> tokens = test::tensor_parallel_tokens();
    EXPECT_CONTAINS(test::message_of([&] { run_prefill(shard, tokens, {}); }),
                    "it runs only with the others (run_prefill_parallel");
}

}  // namespace
}  // namespace l2a
