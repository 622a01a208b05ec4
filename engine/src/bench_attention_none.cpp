// Builds without the CUDA path have no kernels to benchmark.
#include "l2a/engine/bench.h"
#include "l2a/engine/error.h"

namespace l2a {

AttentionBenchResult bench_attention(const AttentionBenchOptions&) {
    fail("",
         "bench attention needs a build with CUDA (configure with -DL2A_WITH_CUDA=ON); "
         "this build has no CUDA path");
}

}  // namespace l2a
