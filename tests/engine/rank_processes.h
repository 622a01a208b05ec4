// Test support for process groups: ranks started as separate processes on a free loopback port,
// waited for under a hard time limit (past it every rank still running is killed and the test
// fails: nothing may hang).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "l2a/engine/process_group.h"

extern char** environ;

#define SKIP_WITHOUT_GLOO()                                                                  \
    if (!::l2a::process_groups_available())                                                  \
    GTEST_SKIP() << "this build has no c10d Gloo (install libgloo-dev and reconfigure): no " \
                    "process groups to test"

namespace l2a::test {

// A TCP port of the loopback that nothing listens on now.
inline int free_port() { return free_loopback_port(); }

// One rank's process: its standard output and error go to `log`.
struct RankProcess {
    pid_t pid = -1;
    std::filesystem::path log;
    std::optional<int> status;  // exit code, -1 when killed by a signal
    double seconds = 0;         // from the start of all ranks to this one's exit
};

// Starts `args` (the program first) with its output in `log`; a failure to start is a test
// failure and leaves pid -1.
inline RankProcess start_rank(std::vector<std::string> args, const std::filesystem::path& log) {
    RankProcess rank;
    rank.log = log;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (posix_spawn(&rank.pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
        rank.pid = -1;
        ADD_FAILURE() << "cannot start " << argv[0];
    }
    posix_spawn_file_actions_destroy(&actions);
    return rank;
}

// Waits for every rank to exit. `tick` (when set) runs every 10 ms with the number still
// running and returns how many it ended itself. Past `limit` the ranks still running are
// killed and the test fails.
inline void wait_for_ranks(std::vector<RankProcess>& ranks, std::chrono::seconds limit,
                           const std::function<int(int running)>& tick = {}) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    int running = 0;
    for (const RankProcess& rank : ranks) running += rank.pid > 0 ? 1 : 0;
    while (running > 0 && Clock::now() - start < limit) {
        for (RankProcess& rank : ranks) {
            int raw = 0;
            if (rank.pid > 0 && !rank.status && ::waitpid(rank.pid, &raw, WNOHANG) == rank.pid) {
                rank.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
                rank.seconds = std::chrono::duration<double>(Clock::now() - start).count();
                --running;
            }
        }
        if (tick) running -= tick(running);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (RankProcess& rank : ranks) {
        if (rank.pid > 0 && !rank.status) {
            ADD_FAILURE() << "rank " << (&rank - ranks.data()) << " still running after "
                          << limit.count() << " s: killed";
            ::kill(rank.pid, SIGKILL);
            ::waitpid(rank.pid, nullptr, 0);
        }
    }
}

}  // namespace l2a::test
