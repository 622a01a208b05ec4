// One rank of a tensor-parallel prefill, started by test_tensor_parallel (one process per rank).
//   tensor_parallel_peer RANK WORLD PORT TIMEOUT_SECONDS MODEL OUT [quit]
// Reads its shard of MODEL (tensor_parallel_models.h: only the rank's slices), joins the group on
// the loopback's PORT and runs run_prefill_parallel over the test tokens. Writes to OUT, raw: T, L,
// V (int64), token NLL [T], router logits [L*T] (fp32), decisions [L*T] (uint8), logits [T*V]
// (fp32); prints "ok" and exits 0. An l2a::Error prints "error after S s: MESSAGE" (S: since the
// group was joined) and exits 3. With "quit" the rank exits at once after joining the group, as if
// it crashed, without taking part in the run.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/tensor_parallel.h"
#include "tensor_parallel_models.h"

namespace {

template <typename T>
void write(std::ofstream& out, const std::vector<T>& v) {
    out.write(reinterpret_cast<const char*>(v.data()),
              static_cast<std::streamsize>(v.size() * sizeof(T)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7 && argc != 8) {
        std::fprintf(stderr, "usage: %s RANK WORLD PORT TIMEOUT_SECONDS MODEL OUT [quit]\n",
                     argv[0]);
        return 2;
    }
    l2a::GroupOptions group_options;
    group_options.rank = std::atoi(argv[1]);
    group_options.world = std::atoi(argv[2]);
    group_options.port = std::atoi(argv[3]);
    group_options.timeout_seconds = std::atof(argv[4]);
    const std::string model_name = argv[5];
    const std::string out_path = argv[6];
    const bool quit = argc == 8 && std::string(argv[7]) == "quit";
    const l2a::RunOptions options;
    auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    try {
        l2a::set_cpu_threads(1);
        // Only the rank's slices are read (the test compares with the whole model in one process).
        const l2a::Model shard =
            l2a::test::tensor_parallel_shard(model_name, group_options.rank, group_options.world);
        l2a::ProcessGroup group = l2a::ProcessGroup::open(group_options);
        start = std::chrono::steady_clock::now();
        if (quit) {
            std::printf("quit\n");
            std::fflush(stdout);
            std::_Exit(0);  // no goodbye to the other ranks
        }
        const std::vector<std::int32_t> tokens = l2a::test::tensor_parallel_tokens();
        const std::int64_t vocab = shard.config().vocab_size;
        std::vector<float> logits(tokens.size() * static_cast<std::size_t>(vocab));
        l2a::PrefillHooks hooks;
        hooks.logits_sink = [&](std::int64_t r0, std::int64_t n, std::int64_t v, const float* p) {
            std::copy(p, p + n * v, logits.begin() + r0 * v);
        };
        const l2a::PrefillResult result =
            l2a::run_prefill_parallel(shard, tokens, options, group, hooks);
        std::ofstream out(out_path, std::ios::binary);
        write(out, std::vector<std::int64_t>{result.num_tokens, result.num_layers, vocab});
        write(out, result.token_nll);
        write(out, result.router_logits);
        write(out, result.decisions);
        write(out, logits);
        if (!out) {
            std::printf("error: cannot write %s\n", out_path.c_str());
            return 3;
        }
        group.barrier();
        std::printf("ok (rank %d of %d, %.3f s)\n", group.rank(), group.world(),
                    result.wall_seconds);
        return 0;
    } catch (const l2a::Error& e) {
        std::printf("error after %.3f s: %s\n", seconds(), e.what());
        return 3;
    }
}
