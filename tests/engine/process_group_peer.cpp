// One rank of a process group, started by test_process_group (one process per rank).
//   process_group_peer RANK WORLD PORT TIMEOUT_SECONDS MODE [DEVICE [RUN_ID]]
// DEVICE: where the collectives run, "cpu" (Gloo, the default) or "cuda:N" (NCCL). RUN_ID: the
// run's keys in the rendezvous store (GroupOptions::run_id). PORT 0 on rank 0: it binds a free
// port and prints "port P" before it waits for the others.
// MODE sum: joins the group, all-reduces a vector that depends on the rank, checks that every
//   element is the exact sum over all ranks, all-gathers bytes of a size that depends on the rank
//   (none from rank 0) and checks every rank's, then passes a barrier. Prints "ok" and exits 0,
//   or "mismatch ..." and exits 1.
// MODE quit: joins the group, then exits at once without taking part in any collective.
// MODE hang: joins the group, then waits forever without taking part (the test kills it).
// An l2a::Error prints "error after S s: MESSAGE" (S: since the step that failed began: joining,
// or the collectives) and exits 3.
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"

namespace {

constexpr int kElements = 1000;

// Small multiples of 1/4: exact in float, and so are their sums over a few ranks.
float value(int rank, int i) { return static_cast<float>(rank * 1000 + i) / 4.0f; }

// What rank `rank` all-gathers: 1000 * rank bytes (none from rank 0) that depend on the rank.
std::vector<std::byte> gathered(int rank) {
    std::vector<std::byte> bytes(static_cast<std::size_t>(rank) * 1000);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(rank)) & 0xff);
    }
    return bytes;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6 || argc > 8) {
        std::fprintf(stderr,
                     "usage: %s RANK WORLD PORT TIMEOUT_SECONDS sum|quit|hang [DEVICE [RUN_ID]]\n",
                     argv[0]);
        return 2;
    }
    l2a::GroupOptions options;
    options.rank = std::atoi(argv[1]);
    options.world = std::atoi(argv[2]);
    options.port = std::atoi(argv[3]);
    options.timeout_seconds = std::atof(argv[4]);
    const std::string mode = argv[5];
    if (argc >= 7) options.device = argv[6];
    if (argc == 8) options.run_id = argv[7];

    auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    try {
        l2a::ProcessGroup group = l2a::ProcessGroup::open(options, [](int port) {
            std::printf("port %d\n", port);
            std::fflush(stdout);
        });
        if (mode == "quit") {
            std::printf("quit\n");
            std::fflush(stdout);
            std::_Exit(0);  // as if it crashed: no goodbye to the other ranks
        }
        if (mode == "hang") {
            std::printf("hang\n");
            std::fflush(stdout);
            for (;;) ::pause();
        }
        std::vector<float> data(kElements);
        for (int i = 0; i < kElements; ++i) data[i] = value(options.rank, i);
        start = std::chrono::steady_clock::now();
        group.all_reduce_sum(data);
        for (int i = 0; i < kElements; ++i) {
            float want = 0;
            for (int r = 0; r < options.world; ++r) want += value(r, i);
            if (data[i] != want) {
                std::printf("mismatch at %d: got %.9g, want %.9g\n", i, data[i], want);
                return 1;
            }
        }
        const std::vector<std::vector<std::byte>> all =
            group.all_gather_bytes(gathered(options.rank));
        if (all.size() != static_cast<std::size_t>(options.world)) {
            std::printf("mismatch: all-gather gave %zu parts for %d ranks\n", all.size(),
                        options.world);
            return 1;
        }
        for (int r = 0; r < options.world; ++r) {
            if (all[static_cast<std::size_t>(r)] != gathered(r)) {
                std::printf("mismatch: all-gather gave %zu bytes for rank %d, not its own %zu\n",
                            all[static_cast<std::size_t>(r)].size(), r, gathered(r).size());
                return 1;
            }
        }
        group.barrier();
        std::printf("ok (rank %d of %d, all-reduce, all-gather and barrier in %.3f s)\n",
                    group.rank(), group.world(), seconds());
        return 0;
    } catch (const l2a::Error& e) {
        std::printf("error after %.3f s: %s\n", seconds(), e.what());
        return 3;
    }
}
