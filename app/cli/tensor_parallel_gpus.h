// `--tensor-parallel N --device cuda`: the parts of running the ranks on GPUs that need neither
// a GPU nor the rest of the command line (the tests call them directly).
#pragma once

#include <string>

namespace l2a::cli {

// The GPU of `rank`: rank r runs on cuda:r (of the GPUs CUDA_VISIBLE_DEVICES leaves visible).
std::string tensor_parallel_gpu(int rank);

// "" when `visible` GPUs give each of `n` ranks its own, else what is wrong, for a usage error
// ("2 processes need a GPU each ..., and 1 GPU is visible ...").
std::string tensor_parallel_gpu_shortage(int n, int visible);

// Keeps NVLink multicast (NVLS) off for the NCCL groups of this process and of every rank it
// starts: sets NCCL_NVLS_ENABLE=0 in the environment unless the user set it. Returns whether it
// set it.
bool keep_nvlink_multicast_off();

}  // namespace l2a::cli
