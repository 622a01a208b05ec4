// `--tensor-parallel N --device cuda`: the parts of running the ranks on GPUs that need neither
// a GPU nor the rest of the command line (the tests call them directly).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace l2a::cli {

// The GPU of `rank`: rank r runs on cuda:r (of the GPUs CUDA_VISIBLE_DEVICES leaves visible).
std::string tensor_parallel_gpu(int rank);

// "" when `visible` GPUs give each of `n` ranks its own, else what is wrong, for a usage error
// ("2 processes need a GPU each ..., and 1 GPU is visible ...").
std::string tensor_parallel_gpu_shortage(int n, int visible);

// Keeps NVLink multicast (NVLS) off for the NCCL groups of this process and of every rank it
// starts: sets NCCL_NVLS_ENABLE=0 in the environment unless the user set it. Returns whether it
// set it. setenv is not safe while another thread may read the environment: main() calls it
// first thing, before LibTorch or the command start any thread (prepare_tensor_parallel_env).
bool keep_nvlink_multicast_off();

// Whether a command line (main's arguments without the program name) asks for tensor parallel:
// --tensor-parallel, alone or as --tensor-parallel=N, whatever its value.
bool asks_for_tensor_parallel(std::span<const std::string_view> args);

// main(), first thing: keep_nvlink_multicast_off() when the command line asks for tensor
// parallel (the device, and so whether NCCL runs, may be known only later: a CPU run never
// reads the variable).
void prepare_tensor_parallel_env(std::span<const std::string_view> args);

}  // namespace l2a::cli
