// Process groups across real processes: process_group_peer runs one rank each, on a free port of
// the loopback. The collectives give exact sums on every rank, and a rank that exits without
// taking part makes every other rank fail with an l2a::Error within the timeout, never hang.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"
#include "test_support.h"

extern char** environ;

namespace l2a {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Every test ends its children after this, and fails: nothing may hang.
constexpr auto kHardLimit = std::chrono::seconds(30);
constexpr double kTimeoutSeconds = 5;

#define SKIP_WITHOUT_GLOO()                                                                  \
    if (!process_groups_available())                                                         \
    GTEST_SKIP() << "this build has no c10d Gloo (install libgloo-dev and reconfigure): no " \
                    "process groups to test"

// A TCP port of the loopback that nothing listens on now (the kernel's pick for port 0).
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

// One process_group_peer, its output in a file.
struct Peer {
    pid_t pid = -1;
    fs::path out;
    std::optional<int> status;  // exit code, -1 when killed by a signal
    double seconds = 0;         // from the start of all peers to this one's exit
};

class ProcessGroupTest : public test::ScratchDirTest {
protected:
    ProcessGroupTest() : ScratchDirTest("process_group") {}

    // Starts ranks 0 .. world - 1 with `quitter_mode` ("quit" or "hang") for `quitter` and
    // "sum" for the others, and waits for all to exit. A "hang" rank is killed once the others
    // have exited. Past kHardLimit it kills them all and fails the test.
    std::vector<Peer> run_group(int world, int quitter = -1,
                                const std::string& quitter_mode = "quit") {
        const int port = free_port();
        EXPECT_GT(port, 0) << "no free port on the loopback";
        std::vector<Peer> peers(world);
        for (int rank = 0; rank < world; ++rank) {
            Peer& peer = peers[rank];
            peer.out = dir_ / ("rank" + std::to_string(rank) + ".out");
            std::vector<std::string> args = {
                L2A_PROCESS_GROUP_PEER,          std::to_string(rank),
                std::to_string(world),           std::to_string(port),
                std::to_string(kTimeoutSeconds), rank == quitter ? quitter_mode : "sum"};
            std::vector<char*> argv;
            for (std::string& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            posix_spawn_file_actions_t actions;
            posix_spawn_file_actions_init(&actions);
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addopen(&actions, 1, peer.out.c_str(),
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
                if (peer.pid > 0 && !peer.status &&
                    ::waitpid(peer.pid, &raw, WNOHANG) == peer.pid) {
                    peer.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
                    peer.seconds = std::chrono::duration<double>(Clock::now() - start).count();
                    --running;
                }
            }
            if (quitter_mode == "hang" && running == 1 && peers[quitter].pid > 0 &&
                !peers[quitter].status) {
                ::kill(peers[quitter].pid, SIGKILL);
                ::waitpid(peers[quitter].pid, nullptr, 0);
                peers[quitter].status = -1;
                --running;
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
};

class ProcessGroupSum : public ProcessGroupTest, public ::testing::WithParamInterface<int> {};

TEST_P(ProcessGroupSum, EveryRankGetsTheExactSum) {
    SKIP_WITHOUT_GLOO();
    const int world = GetParam();
    const std::vector<Peer> peers = run_group(world);
    for (int rank = 0; rank < world; ++rank) {
        const std::string out = test::read_file(peers[rank].out);
        EXPECT_EQ(peers[rank].status, std::optional<int>(0)) << "rank " << rank << ": " << out;
        EXPECT_CONTAINS(out, "ok (rank " + std::to_string(rank) + " of " + std::to_string(world));
    }
}

INSTANTIATE_TEST_SUITE_P(Worlds, ProcessGroupSum, ::testing::Values(2, 3),
                         [](const auto& info) { return "World" + std::to_string(info.param); });

struct Quit {
    int world;
    int quitter;
};

void PrintTo(const Quit& quit, std::ostream* os) {
    *os << "world " << quit.world << ", rank " << quit.quitter << " quits";
}

class ProcessGroupQuit : public ProcessGroupTest, public ::testing::WithParamInterface<Quit> {};

TEST_P(ProcessGroupQuit, OtherRanksFailWithinTheTimeout) {
    SKIP_WITHOUT_GLOO();
    const auto [world, quitter] = GetParam();
    const std::vector<Peer> peers = run_group(world, quitter);
    for (int rank = 0; rank < world; ++rank) {
        const std::string out = test::read_file(peers[rank].out);
        if (rank == quitter) {
            EXPECT_EQ(peers[rank].status, std::optional<int>(0)) << out;
            continue;
        }
        EXPECT_EQ(peers[rank].status, std::optional<int>(3)) << "rank " << rank << ": " << out;
        const std::string who = "rank " + std::to_string(rank) + " of " + std::to_string(world);
        EXPECT_CONTAINS(out, "error after");
        EXPECT_CONTAINS(out, who + ": ");
        EXPECT_CONTAINS(out, "failed: ");
        // The error comes from the timeout at the latest (5 s), well before 10 s.
        EXPECT_LT(peers[rank].seconds, 10.0) << out;
        std::printf("    %s\n", out.substr(0, out.find('\n')).c_str());
    }
}

INSTANTIATE_TEST_SUITE_P(Ranks, ProcessGroupQuit,
                         ::testing::Values(Quit{2, 1}, Quit{3, 2}, Quit{3, 0}),
                         [](const auto& info) {
                             return "World" + std::to_string(info.param.world) + "Rank" +
                                    std::to_string(info.param.quitter) + "Quits";
                         });

// A rank that stays alive but never joins the collective: the others give up after the
// timeout (5 s) with an error that says so.
TEST_F(ProcessGroupTest, AStuckRankMakesTheOthersTimeOut) {
    SKIP_WITHOUT_GLOO();
    const std::vector<Peer> peers = run_group(2, 1, "hang");
    const std::string out = test::read_file(peers[0].out);
    EXPECT_EQ(peers[0].status, std::optional<int>(3)) << out;
    EXPECT_CONTAINS(out, "rank 0 of 2: all-reduce failed: timed out after 5 s");
    EXPECT_GT(peers[0].seconds, 4.0) << out;
    EXPECT_LT(peers[0].seconds, 10.0) << out;
    std::printf("    %s\n", out.substr(0, out.find('\n')).c_str());
}

TEST(ProcessGroupOptions, RejectsARankOutsideTheWorld) {
    SKIP_WITHOUT_GLOO();
    GroupOptions options;
    options.rank = 2;
    options.world = 2;
    options.port = 1234;
    const std::string message = test::message_of([&] { ProcessGroup::open(options); });
    EXPECT_CONTAINS(message, "rank 2 is not in 0..1");
}

TEST(ProcessGroupOptions, BuildsWithoutGlooSayWhatIsMissing) {
    if (process_groups_available()) GTEST_SKIP() << "this build has c10d Gloo";
    const std::string message = test::message_of([] { ProcessGroup::open(GroupOptions{}); });
    EXPECT_CONTAINS(message, "install libgloo-dev");
}

}  // namespace
}  // namespace l2a
