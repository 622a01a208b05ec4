// A group of processes that run one model together (tensor parallel): each process is a rank
// from 0 to world - 1, and collectives such as an all-reduce combine their data. This is
// LibTorch's c10d: the Gloo backend on the CPU, the NCCL backend on GPUs (one GPU per rank); the
// rendezvous is a c10d TCPStore that rank 0 hosts, listening on GroupOptions::host only (it binds
// the socket itself: the store, left to bind its port, would listen on every interface).
//
// Every rank must call the same collectives in the same order. A rank that exits or stops
// answering makes the others' collectives throw l2a::Error ("rank 1 of 2: all-reduce failed:
// ...") within GroupOptions::timeout_seconds instead of hanging. No LibTorch types here.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/error.h"

namespace at {
class Tensor;
}

namespace l2a {

struct GroupOptions {
    int rank = 0;   // this process, 0 .. world - 1; rank 0 hosts the rendezvous
    int world = 1;  // number of processes in the group
    // Where rank 0's rendezvous listens (on this address alone) and the others connect to it.
    std::string host = "127.0.0.1";
    // TCP port of the rendezvous on host (1 .. 65535). Rank 0 may give 0: it then binds a free
    // port of host at once and says which through ProcessGroup::open's `hosted`, so that no other
    // program can take the port between its choice and the rendezvous.
    int port = 0;
    // The run these ranks belong to: every key of the rendezvous store begins with
    // "l2a/<run_id>/", so ranks of another run that reach the same port by mistake never read or
    // write this run's keys. Letters, digits, '-' and '_', at most 64; "" for no prefix.
    std::string run_id;
    // How long the rendezvous and each collective wait for the other ranks before failing.
    double timeout_seconds = 60;
    // Where the collectives run: "cpu" (Gloo) or "cuda:N" (NCCL on this rank's GPU N; "cuda" is
    // GPU 0). Keep NVLink multicast off on shared machines (NCCL_NVLS_ENABLE=0 in the
    // environment before the group opens).
    std::string device = "cpu";
};

// What a collective throws when another rank failed, exited or timed out ("rank 1 of 2:
// all-reduce failed: ..."): the ranks are out of step from then on.
class CollectiveFailed : public Error {
public:
    using Error::Error;
};

// A TCP port of the loopback that nothing listens on now (the kernel's pick for port 0), for
// rank 0's rendezvous; 0 when there is none.
int free_loopback_port();

// Whether this build has process groups on the CPU (c10d Gloo); without, ProcessGroup::open
// throws for device "cpu".
bool process_groups_available();
// Whether this build has process groups on GPUs (c10d NCCL: a CUDA build that found the NCCL
// headers the torch wheel was built with); a rank still needs a GPU of its own to open one.
bool nccl_process_groups_available();

class ProcessGroup {
public:
    // Joins the group: returns once all `world` ranks have met at host:port. Throws l2a::Error
    // when options are invalid, the rendezvous fails or it times out. On rank 0, `hosted` (when
    // given) is called with the port once the rendezvous listens on it and before rank 0 waits
    // for the others: where a program starts the other ranks when it picked port 0. What
    // `hosted` throws leaves open as it is.
    static ProcessGroup open(const GroupOptions& options,
                             const std::function<void(int port)>& hosted = {});

    ProcessGroup(ProcessGroup&&) noexcept;
    ProcessGroup& operator=(ProcessGroup&&) noexcept;
    ~ProcessGroup();

    int rank() const;
    int world() const;
    // GroupOptions::device as given ("cpu", "cuda:1").
    const std::string& device() const;

    // Replaces data, on every rank, with the element-wise sum of all ranks' data (all ranks pass
    // the same size).
    void all_reduce_sum(std::span<float> data);
    // Returns once every rank has reached it.
    void barrier();
    // Every rank's `data` (sizes may differ), on every rank, indexed by rank.
    std::vector<std::vector<std::byte>> all_gather_bytes(std::span<const std::byte> data);

private:
    // Sums a tensor on the group's device in place (process_group_backends.h).
    friend void all_reduce_sum_tensor(ProcessGroup& group, at::Tensor& tensor);
    struct Impl;
    explicit ProcessGroup(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace l2a
