// Process groups across real processes: process_group_peer runs one rank each, on a free port of
// the loopback. The collectives give exact sums on every rank, and a rank that exits without
// taking part makes every other rank fail with an l2a::Error within the timeout, never hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"
#include "rank_processes.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

// Every test ends its children after this, and fails: nothing may hang.
constexpr auto kHardLimit = std::chrono::seconds(30);
constexpr double kTimeoutSeconds = 5;

using Peer = test::RankProcess;  // its output in `log`

// The port rank 0 printed ("port P") once it bound it; 0 when it did not within 10 s.
int hosted_port(const fs::path& log) {
    for (int i = 0; i < 1000; ++i) {
        const std::string out = test::read_file(log);
        const auto at = out.find("port ");
        if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
            return std::atoi(out.c_str() + at + 5);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
}

class ProcessGroupTest : public test::ScratchDirTest {
protected:
    ProcessGroupTest() : ScratchDirTest("process_group") {}

    // Starts rank `rank` of a world of 2 summing for the run `run`, meeting at `port` (0: rank
    // 0 binds a free port and names it in its log).
    void start_of_two(std::vector<Peer>& peers, int rank, int port, const std::string& run) {
        peers.push_back(test::start_rank(
            {L2A_PROCESS_GROUP_PEER, std::to_string(rank), "2", std::to_string(port),
             std::to_string(kTimeoutSeconds), "sum", "cpu", run},
            dir_ / ("rank" + std::to_string(rank) + ".out")));
    }
    // Rank 0 of a run "run-a" of two, left to bind a free port itself: the port it names
    // (0 when it names none).
    int start_hosting_rank(std::vector<Peer>& peers) {
        start_of_two(peers, 0, 0, "run-a");
        return hosted_port(dir_ / "rank0.out");
    }
    // Rank 1 of that run at `port`, then both ranks' exits.
    void join_and_wait(std::vector<Peer>& peers, int port) {
        start_of_two(peers, 1, port, "run-a");
        test::wait_for_ranks(peers, kHardLimit, [](int) { return 0; });
    }

    // Starts ranks 0 .. world - 1 with `quitter_mode` ("quit" or "hang") for `quitter` and
    // "sum" for the others, and waits for all to exit. A "hang" rank is killed once the others
    // have exited. Past kHardLimit it kills them all and fails the test.
    std::vector<Peer> run_group(int world, int quitter = -1,
                                const std::string& quitter_mode = "quit") {
        const int port = test::free_port();
        EXPECT_GT(port, 0) << "no free port on the loopback";
        std::vector<Peer> peers;
        for (int rank = 0; rank < world; ++rank) {
            peers.push_back(test::start_rank(
                {L2A_PROCESS_GROUP_PEER, std::to_string(rank), std::to_string(world),
                 std::to_string(port), std::to_string(kTimeoutSeconds),
                 rank == quitter ? quitter_mode : "sum"},
                dir_ / ("rank" + std::to_string(rank) + ".out")));
        }
        test::wait_for_ranks(peers, kHardLimit, [&](int running) {
            if (quitter_mode != "hang" || running != 1) return 0;
            Peer& hung = peers[quitter];
            if (hung.pid <= 0 || hung.status) return 0;
            ::kill(hung.pid, SIGKILL);
            ::waitpid(hung.pid, nullptr, 0);
            hung.status = -1;
            return 1;
        });
        return peers;
    }
};

class ProcessGroupSum : public ProcessGroupTest, public ::testing::WithParamInterface<int> {};

// The peers check the sum, and the bytes every rank all-gathers (sizes that differ by rank).
TEST_P(ProcessGroupSum, EveryRankGetsTheExactSum) {
    SKIP_WITHOUT_GLOO();
    const int world = GetParam();
    const std::vector<Peer> peers = run_group(world);
    for (int rank = 0; rank < world; ++rank) {
        const std::string out = test::read_file(peers[rank].log);
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
        const std::string out = test::read_file(peers[rank].log);
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
    const std::string out = test::read_file(peers[0].log);
    EXPECT_EQ(peers[0].status, std::optional<int>(3)) << out;
    EXPECT_CONTAINS(out, "rank 0 of 2: all-reduce failed: timed out after 5 s");
    EXPECT_GT(peers[0].seconds, 4.0) << out;
    EXPECT_LT(peers[0].seconds, 10.0) << out;
    std::printf("    %s\n", out.substr(0, out.find('\n')).c_str());
}

// Whether a socket of this process can bind 127.0.0.1:port.
bool can_bind(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return bound;
}

// Rank 0 given port 0 binds a free port itself and names it before it waits: the others join
// there, under the keys of their run.
TEST_F(ProcessGroupTest, RankZeroBindsItsPortBeforeTheOthersHearOfIt) {
    SKIP_WITHOUT_GLOO();
    std::vector<Peer> peers;
    const int port = start_hosting_rank(peers);
    ASSERT_GT(port, 0) << test::read_file(dir_ / "rank0.out");
    // Bound already: nothing else can take it now.
    EXPECT_FALSE(can_bind(port)) << "port " << port;
    join_and_wait(peers, port);
    for (int rank = 0; rank < 2; ++rank) {
        const std::string out = test::read_file(peers[rank].log);
        EXPECT_EQ(peers[rank].status, std::optional<int>(0)) << out;
        EXPECT_CONTAINS(out, "ok (rank " + std::to_string(rank) + " of 2");
    }
}

// The local addresses ("0100007F" is 127.0.0.1, as /proc/net/tcp writes it) of the sockets
// of this machine that listen on TCP port `port`, IPv4 and IPv6.
std::vector<std::string> listening_addresses(int port) {
    char wanted[8];
    std::snprintf(wanted, sizeof wanted, ":%04X", port);
    std::vector<std::string> addresses;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::istringstream lines(test::read_file(table));
        std::string line;
        std::getline(lines, line);  // the header
        while (std::getline(lines, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state;
            fields >> slot >> local >> remote >> state;
            const auto colon = local.rfind(':');
            if (state != "0A" || colon == std::string::npos || local.substr(colon) != wanted) {
                continue;
            }
            addresses.push_back(local.substr(0, colon));
        }
    }
    return addresses;
}

// Rank 0's store listens on the loopback alone (127.0.0.1, the default host), not on every
// interface as c10d's TCPStore does when it binds its port itself.
TEST_F(ProcessGroupTest, RankZeroListensOnTheLoopbackOnly) {
    SKIP_WITHOUT_GLOO();
    std::vector<Peer> peers;
    const int port = start_hosting_rank(peers);
    ASSERT_GT(port, 0) << test::read_file(dir_ / "rank0.out");
    EXPECT_EQ(listening_addresses(port), std::vector<std::string>{"0100007F"}) << "port " << port;
    join_and_wait(peers, port);
    for (int rank = 0; rank < 2; ++rank) {
        EXPECT_EQ(peers[rank].status, std::optional<int>(0)) << test::read_file(peers[rank].log);
    }
}

// A rank of another run that reaches the port by mistake never meets this run's ranks: both
// fail within the timeout instead of mixing their collectives.
TEST_F(ProcessGroupTest, RanksOfAnotherRunDoNotMeet) {
    SKIP_WITHOUT_GLOO();
    std::vector<Peer> peers;
    const int port = start_hosting_rank(peers);
    ASSERT_GT(port, 0) << test::read_file(dir_ / "rank0.out");
    start_of_two(peers, 1, port, "run-b");
    test::wait_for_ranks(peers, kHardLimit, [](int) { return 0; });
    for (int rank = 0; rank < 2; ++rank) {
        const std::string out = test::read_file(peers[rank].log);
        EXPECT_EQ(peers[rank].status, std::optional<int>(3)) << out;
        EXPECT_CONTAINS(out, "connecting the group through 127.0.0.1:" + std::to_string(port));
    }
}

// A rank must not die silently when a peer does: once a group is open, writing to a socket the
// peer closed fails with EPIPE (an error the backend reports) instead of raising SIGPIPE, whose
// default action ends the process. A handler of the program's own stays.
TEST(ProcessGroupSignals, AnOpenGroupTurnsBrokenPipesIntoErrors) {
    SKIP_WITHOUT_GLOO();
    std::signal(SIGPIPE, SIG_DFL);
    GroupOptions options;
    options.world = 1;
    options.rank = 0;
    options.port = 0;
    options.timeout_seconds = kTimeoutSeconds;
    {
        const ProcessGroup group = ProcessGroup::open(options);
        struct sigaction now {};
        ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &now), 0);
        EXPECT_EQ(now.sa_handler, SIG_IGN);
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        ::close(fds[0]);
        const char byte = 'x';
        EXPECT_EQ(::write(fds[1], &byte, 1), -1);  // the process lives on to see the error
        EXPECT_EQ(errno, EPIPE);
        ::close(fds[1]);
    }
    static volatile std::sig_atomic_t seen = 0;
    std::signal(SIGPIPE, [](int) { seen = 1; });
    const ProcessGroup again = ProcessGroup::open(options);
    std::raise(SIGPIPE);
    EXPECT_EQ(seen, 1);
}

TEST(ProcessGroupOptions, OnlyRankZeroMayLeaveThePortToTheSystem) {
    SKIP_WITHOUT_GLOO();
    GroupOptions options;
    options.rank = 1;
    options.world = 2;
    EXPECT_CONTAINS(test::message_of([&] { ProcessGroup::open(options); }),
                    "port 0 is not in 1..65535");
}

TEST(ProcessGroupOptions, RejectsARunIdThatIsNotAName) {
    SKIP_WITHOUT_GLOO();
    GroupOptions options;
    options.run_id = "a/b";
    EXPECT_CONTAINS(test::message_of([&] { ProcessGroup::open(options); }),
                    "run id 'a/b' is not up to 64 letters, digits, '-' and '_'");
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

TEST(ProcessGroupOptions, RejectsADeviceThatIsNotCpuOrCuda) {
    GroupOptions options;
    options.port = 1234;
    options.device = "gpu:1";
    EXPECT_CONTAINS(test::message_of([&] { ProcessGroup::open(options); }),
                    "device 'gpu:1' is not cpu, cuda or cuda:N");
}

// NCCL (CUDA builds with the wheel's NCCL headers): one rank on GPU 0, and where a machine has two
// GPUs, two ranks on theirs.
TEST(NcclProcessGroup, OneRankSumsGathersAndWaitsOnItsGpu) {
    if (!nccl_process_groups_available()) GTEST_SKIP() << "this build has no c10d NCCL";
    if (cuda_device_count() < 1) GTEST_SKIP() << "no GPU";
    GroupOptions options;
    options.port = test::free_port();
    options.device = "cuda:0";
    options.timeout_seconds = 30;
    ProcessGroup group = ProcessGroup::open(options);
    EXPECT_EQ(group.device(), "cuda:0");
    std::vector<float> data{0.25f, -1.5f, 3.0f};
    group.all_reduce_sum(data);
    EXPECT_EQ(data, (std::vector<float>{0.25f, -1.5f, 3.0f}));
    const std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{250}};
    const std::vector<std::vector<std::byte>> all = group.all_gather_bytes(bytes);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0], bytes);
    group.barrier();
}

TEST(NcclProcessGroup, AGpuThatIsNotThereIsAClearError) {
    if (!nccl_process_groups_available()) GTEST_SKIP() << "this build has no c10d NCCL";
    GroupOptions options;
    options.port = test::free_port();
    options.device = "cuda:63";
    options.timeout_seconds = 10;
    EXPECT_CONTAINS(test::message_of([&] { ProcessGroup::open(options); }), "no GPU cuda:63");
}

TEST(NcclProcessGroup, BuildsWithoutNcclSayWhatIsMissing) {
    if (nccl_process_groups_available()) GTEST_SKIP() << "this build has c10d NCCL";
    GroupOptions options;
    options.device = "cuda:0";
    EXPECT_CONTAINS(test::message_of([&] { ProcessGroup::open(options); }),
                    "tensor parallel on GPUs needs c10d NCCL");
}

class NcclProcessGroupRanks : public ProcessGroupTest {};

TEST_F(NcclProcessGroupRanks, TwoRanksGetTheExactSumOnTheirGpus) {
    SKIP_WITHOUT_TWO_NCCL_GPUS();
    const int port = test::free_port();
    ASSERT_GT(port, 0);
    std::vector<Peer> peers;
    for (int rank = 0; rank < 2; ++rank) {
        peers.push_back(
            test::start_rank({L2A_PROCESS_GROUP_PEER, std::to_string(rank), "2",
                              std::to_string(port), "30", "sum", "cuda:" + std::to_string(rank)},
                             dir_ / ("nccl" + std::to_string(rank) + ".out")));
    }
    test::wait_for_ranks(peers, std::chrono::seconds(90), [](int) { return 0; });
    for (const Peer& peer : peers) {
        const std::string out = test::read_file(peer.log);
        EXPECT_EQ(peer.status, 0) << out;
        EXPECT_CONTAINS(out, "ok (rank");
    }
}

TEST(ProcessGroupOptions, BuildsWithoutGlooSayWhatIsMissing) {
    if (process_groups_available()) GTEST_SKIP() << "this build has c10d Gloo";
    const std::string message = test::message_of([] { ProcessGroup::open(GroupOptions{}); });
    EXPECT_CONTAINS(message, "install libgloo-dev");
}

}  // namespace
}  // namespace l2a
