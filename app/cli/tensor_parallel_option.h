// `--tensor-parallel N`: one run split across N processes on this computer: on the CPU (c10d
// Gloo, fp32), or with --device cuda one GPU per process (c10d NCCL: rank r on cuda:r, with
// NCCL_NVLS_ENABLE=0 unless the user set it). The process the user started is rank 0: it checks the
// request, hosts a c10d TCPStore on a free loopback port (bound before anyone hears of it), and
// starts ranks 1..N-1 itself, as this same program with the same arguments (less the files it
// writes) plus the hidden --tp-rank R --tp-port P --tp-run ID. The ranks meet through that store,
// under keys of their run ID alone, and then make the same study calls; only rank 0 prints the
// report and writes files.
//
// The other ranks die with rank 0 (PR_SET_PDEATHSIG), print nothing on standard output, and
// their standard error reaches the user line by line as "rank 1: ...". A rank that exits with
// an error or dies makes rank 0 fail with a message naming it and its last error line.
#pragma once

#include <cstdint>
#include <string>

#include "arguments.h"
#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"

namespace l2a::cli {

inline const OptionSpec kTensorParallelOption{"--tensor-parallel", true};
// Hidden: how rank 0 starts the others.
inline const OptionSpec kTensorParallelRankOption{"--tp-rank", true};
inline const OptionSpec kTensorParallelPortOption{"--tp-port", true};
inline const OptionSpec kTensorParallelRunOption{"--tp-run", true};

// The largest --tensor-parallel: more processes than this on one computer is a mistake.
inline constexpr std::int64_t kMaxTensorParallel = 64;

// Records the command line main() was given, for starting the other ranks.
void set_command_line(int argc, char** argv);

// N from --tensor-parallel (1 when absent). `device`: the run's --device ("" when the command
// learns it later: use_tensor_parallel_device). Usage errors: N outside 1..64, with a remote
// --engine, on the CPU with --dtype other than fp32, on a CUDA device other than "cuda" or as
// use_tensor_parallel_device says; --tp-rank/--tp-port/--tp-run without it.
int tensor_parallel(const Arguments& args, const std::string& device);

// Where the N ranks run, for a command that learns the device after tensor_parallel() (a
// what-if runs on the device of its profile; `source` names it in messages). A CUDA device puts
// rank r on cuda:r: usage error when this build has no NCCL process groups or fewer than N GPUs
// are visible. Nothing to do for the CPU or when N is 1.
void use_tensor_parallel_device(const Arguments& args, int n, const std::string& device,
                                const std::string& source);

// Usage error unless N divides the model's query heads, KV heads and intermediate size. `model`
// names it in the message ("shape qwen3-14b"; "the model" when not given).
void check_tensor_parallel_shape(const Arguments& args, int n, std::int64_t heads,
                                 std::int64_t kv_heads, std::int64_t intermediate_size,
                                 const std::string& model = "the model");
// The same for the model folder's config.json (the shipped demo model's for --demo).
void check_tensor_parallel_folder(const Arguments& args, int n);

// Whether this process is one of the ranks rank 0 started (--tp-rank given).
bool tensor_parallel_worker();

// The group of this run (nullptr when N is 1). Rank 0 starts the other ranks first; every rank
// returns once all have joined. Throws l2a::Error when the group cannot be formed.
ProcessGroup* join_tensor_parallel(const Arguments& args, int n);

// main(), after the command returned 0 on rank 0: waits for the other ranks to finish. Returns
// "" when all exited cleanly, else the message naming the first that did not.
std::string finish_tensor_parallel();

// What a command of rank 0 throws when the other ranks did not all finish cleanly: its message
// is the whole line for the user (main() prints it as it is).
struct TensorParallelFailed : Error {
    using Error::Error;
};
// Before rank 0 writes its files: waits for the other ranks (finish_tensor_parallel), so that a
// run whose ranks did not all finish writes nothing. Throws TensorParallelFailed. Nothing to do
// without --tensor-parallel, or on the other ranks.
void finish_tensor_parallel_before_writing();

// main(), after the command failed on rank 0 with `error`: when the failure came from another
// rank (a collective failed, or the run was stopped because a rank exited), the message naming
// that rank and its last error line; else "". Ends every rank still running either way.
std::string tensor_parallel_failure(const std::string& error);

// Whether `error` is a collective of this process's group that failed because a signal stopped
// the run (Ctrl-C reaches every rank; the first to stop closes its connections): the command
// was cancelled, not broken.
bool tensor_parallel_interrupted(const std::string& error);

}  // namespace l2a::cli
