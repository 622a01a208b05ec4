// The GPU parts of `--tensor-parallel N --device cuda` that need no GPU: the GPU of each rank,
// the usage error when fewer GPUs are visible than processes, and NCCL_NVLS_ENABLE=0 for the
// ranks rank 0 starts (they inherit its environment) unless the user set it, set at the start of
// a command line that asks for tensor parallel.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tensor_parallel_gpus.h"

namespace l2a::cli {
namespace {

// What `sh -c 'echo ...'` started from this process prints: what a child sees.
std::string child_sees(const char* variable) {
    const std::string command = std::string("sh -c 'echo \"${") + variable + ":-unset}\"'";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return "popen failed";
    char line[256] = {};
    const bool read = std::fgets(line, sizeof line, pipe) != nullptr;
    ::pclose(pipe);
    return read ? std::string(line) : std::string();
}

TEST(TensorParallelGpus, RankRRunsOnCudaR) {
    EXPECT_EQ(tensor_parallel_gpu(0), "cuda:0");
    EXPECT_EQ(tensor_parallel_gpu(3), "cuda:3");
}

TEST(TensorParallelGpus, TooFewGpusNamesHowManyThereAre) {
    EXPECT_EQ(tensor_parallel_gpu_shortage(2, 2), "");
    EXPECT_EQ(tensor_parallel_gpu_shortage(2, 8), "");
    EXPECT_EQ(tensor_parallel_gpu_shortage(4, 2),
              "4 processes need a GPU each (rank r runs on cuda:r), and 2 GPUs are visible "
              "(CUDA_VISIBLE_DEVICES picks them); give --tensor-parallel 2 or fewer");
    EXPECT_EQ(tensor_parallel_gpu_shortage(2, 1),
              "2 processes need a GPU each (rank r runs on cuda:r), and 1 GPU is visible "
              "(CUDA_VISIBLE_DEVICES picks them); run without --tensor-parallel, or on the CPU "
              "(--device cpu)");
    EXPECT_NE(tensor_parallel_gpu_shortage(2, 0).find("and no GPU is visible"), std::string::npos);
}

TEST(TensorParallelGpus, NvlinkMulticastIsOffForEveryRankUnlessTheUserSetIt) {
    ::unsetenv("NCCL_NVLS_ENABLE");
    EXPECT_TRUE(keep_nvlink_multicast_off());
    ASSERT_NE(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
    EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
    EXPECT_EQ(child_sees("NCCL_NVLS_ENABLE"), "0\n");  // the ranks rank 0 starts

    // The user's choice stands.
    ::setenv("NCCL_NVLS_ENABLE", "1", 1);
    EXPECT_FALSE(keep_nvlink_multicast_off());
    EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "1");
    EXPECT_EQ(child_sees("NCCL_NVLS_ENABLE"), "1\n");
    ::unsetenv("NCCL_NVLS_ENABLE");
}

// main() sets the variable first thing, before any thread, for a command line that asks for
// tensor parallel (in either spelling) and for no other.
TEST(TensorParallelGpus, OnlyATensorParallelCommandLineSetsItAtTheStart) {
    using Args = std::vector<std::string_view>;
    EXPECT_TRUE(asks_for_tensor_parallel(Args{"run", "--demo", "--tensor-parallel", "2"}));
    EXPECT_TRUE(asks_for_tensor_parallel(Args{"bench", "prefill", "--tensor-parallel=2"}));
    EXPECT_FALSE(asks_for_tensor_parallel(Args{"run", "--demo"}));
    EXPECT_FALSE(asks_for_tensor_parallel(Args{"run", "--tensor-parallelism", "2"}));
    EXPECT_FALSE(asks_for_tensor_parallel(Args{}));

    ::unsetenv("NCCL_NVLS_ENABLE");
    prepare_tensor_parallel_env(Args{"run", "--demo"});
    EXPECT_EQ(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
    prepare_tensor_parallel_env(Args{"run", "--demo", "--tensor-parallel", "2"});
    ASSERT_NE(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
    EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");

    // The user's choice stands.
    ::setenv("NCCL_NVLS_ENABLE", "1", 1);
    prepare_tensor_parallel_env(Args{"run", "--demo", "--tensor-parallel", "2"});
    EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "1");
    ::unsetenv("NCCL_NVLS_ENABLE");
}

}  // namespace
}  // namespace l2a::cli
