// ProcessGroup on LibTorch's c10d: a TCPStore for the rendezvous and a c10d backend for the
// collectives: Gloo for CPU tensors, NCCL for CUDA tensors (process_group_backends.h makes them).
// c10d's, Gloo's and NCCL's exceptions become one-line l2a::Error messages that name the rank and
// the step that failed.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>
#include <vector>

#include "l2a/engine/error.h"
#include "l2a/engine/process_group.h"
#include "process_group_backends.h"

namespace l2a {

namespace {

// The first line of a library message, without Gloo's "[path/file.cc:123] " prefix.
std::string first_line(std::string_view what) {
    while (!what.empty() && (what.front() == '\n' || what.front() == ' ')) what.remove_prefix(1);
    what = what.substr(0, what.find('\n'));
    if (!what.empty() && what.front() == '[') {
        const auto close = what.find("] ");
        if (close != std::string_view::npos &&
            what.substr(0, close).find(':') != std::string_view::npos) {
            what.remove_prefix(close + 2);
        }
    }
    return std::string(what);
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// What a library message means for a user, then the message itself.
std::string describe(const std::string& what, double timeout_seconds) {
    std::string hint;
    if (contains(what, "Connection reset by peer") || contains(what, "Connection closed by peer") ||
        contains(what, "Broken pipe") || contains(what, "Connection refused")) {
        hint = "peer closed the connection (another rank exited?)";
    } else if (contains(what, "imed out") || contains(what, "imeout")) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "timed out after %g s (another rank stuck or not started?)",
                      timeout_seconds);
        hint = buf;
    }
    if (hint.empty()) return what;
    return hint + ": " + what;
}

// A TCP socket bound to `host` ("127.0.0.1" by default) and `port` (0: the kernel
// picks a free one) and listening, for rank 0's store to take over (TCPStoreOptions::
// masterListenFd): c10d's TCPStore, left to bind its port itself, listens on every interface of
// the machine. Returns the socket; `port` becomes the port bound. Throws l2a::Error naming the
// address when it cannot bind.
int listen_on(const std::string& host, int& port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int error = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
        error != 0) {
        fail("", "process group: cannot resolve host '" + host + "': " + ::gai_strerror(error));
    }
    std::string reason = "no address";
    int fd = -1;
    for (const addrinfo* a = found; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            reason = std::strerror(errno);
            continue;
        }
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
            reason = std::strerror(errno);
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) {
        fail("", "process group: cannot listen on " + host + ":" + service + ": " + reason);
    }
    sockaddr_storage bound{};
    socklen_t size = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size) != 0) {
        const std::string error = std::strerror(errno);
        ::close(fd);
        fail("", "process group: cannot read the port bound on " + host + ": " + error);
    }
    port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    return fd;
}

std::string message_of(const std::exception& e) {
    if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
        return first_line(c10->what_without_backtrace());
    }
    return first_line(e.what());
}

}  // namespace

struct ProcessGroup::Impl {
    GroupOptions options;
    at::Device device = at::Device(at::kCPU);  // where the collectives' tensors live
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> group;

    [[noreturn]] void fail_in(std::string_view step, const std::exception& e) const {
        throw CollectiveFailed("rank " + std::to_string(options.rank) + " of " +
                               std::to_string(options.world) + ": " + std::string(step) +
                               " failed: " + describe(message_of(e), options.timeout_seconds));
    }
};

bool process_groups_available() { return gloo_backend_built(); }

int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t size = sizeof address;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
        port = ntohs(address.sin_port);
    }
    ::close(fd);
    return port;
}
bool nccl_process_groups_available() { return nccl_backend_built(); }

namespace {

// "cpu", "cuda" (GPU 0) or "cuda:N"; anything else is an error naming the option.
at::Device group_device(const std::string& device) {
    if (device == "cpu") return at::Device(at::kCPU);
    if (device == "cuda") return at::Device(at::kCUDA, 0);
    if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 9 &&
        device.find_first_not_of("0123456789", 5) == std::string::npos) {
        return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(device.substr(5))));
    }
    fail("", "process group: device '" + device + "' is not cpu, cuda or cuda:N");
}

// A rank whose peer died must get an error, not be killed: writing to a socket the peer has
// closed raises SIGPIPE, whose default action ends the process without a word. Ignored (only
// where it still has its default action), the write fails with EPIPE and the backend reports it.
void ignore_broken_pipes() {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
        std::signal(SIGPIPE, SIG_IGN);
    }
}

}  // namespace

ProcessGroup ProcessGroup::open(const GroupOptions& options,
                                const std::function<void(int port)>& hosted) {
    // What this build lacks first: no other check helps a build that cannot open any group.
    const at::Device device = group_device(options.device);
    if (device.is_cpu() && !gloo_backend_built()) make_gloo_backend({}, options, {});
    if (device.is_cuda() && !nccl_backend_built()) make_nccl_backend({}, options, {}, 0);
    if (options.world < 1) fail("", "process group: world must be 1 or more");
    if (options.rank < 0 || options.rank >= options.world) {
        fail("", "process group: rank " + std::to_string(options.rank) + " is not in 0.." +
                     std::to_string(options.world - 1));
    }
    // Rank 0 may leave the port to the system (0); the others must be told it.
    const bool pick_port = options.rank == 0 && options.port == 0;
    if (!pick_port && (options.port < 1 || options.port > 65535)) {
        fail("", "process group: port " + std::to_string(options.port) + " is not in 1..65535");
    }
    if (!(options.timeout_seconds > 0) || !std::isfinite(options.timeout_seconds)) {
        fail("", "process group: timeout must be a positive number of seconds");
    }
    if (options.host.empty()) fail("", "process group: no host for the rendezvous");
    if (options.run_id.size() > 64 ||
        options.run_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_") != std::string::npos) {
        fail("", "process group: run id '" + options.run_id +
                     "' is not up to 64 letters, digits, '-' and '_'");
    }

    ignore_broken_pipes();
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->device = device;
    const auto timeout = std::chrono::milliseconds(
        static_cast<std::int64_t>(std::ceil(options.timeout_seconds * 1000.0)));
    std::string where = options.host + ":" + std::to_string(options.port);
    c10::intrusive_ptr<c10d::TCPStore> store;
    c10d::TCPStoreOptions store_options;
    int port = options.port;
    if (options.rank == 0) {
        // Rank 0's store listens on host alone (the loopback unless told otherwise).
        store_options.masterListenFd = listen_on(options.host, port);
        where = options.host + ":" + std::to_string(port);
    }
    try {
        store_options.port = static_cast<std::uint16_t>(port);
        store_options.isServer = options.rank == 0;
        store_options.numWorkers = options.world;
        // Rank 0 listens before it waits: the port is bound before `hosted` hears of it.
        store_options.waitWorkers = options.rank != 0;
        store_options.timeout = timeout;
        // The store owns the listening socket from here on, also when it throws (it may have
        // taken it over already: closing it here could close another file's descriptor).
        store = c10::make_intrusive<c10d::TCPStore>(options.host, store_options);
    } catch (const std::exception& e) {
        impl->fail_in("rendezvous on " + where, e);
    }
    if (options.rank == 0) {
        impl->options.port = port;
        if (hosted) hosted(port);
        try {
            store->waitForWorkers();
        } catch (const std::exception& e) {
            impl->fail_in("rendezvous on " + where, e);
        }
    }
    impl->store = store;
    if (!options.run_id.empty()) {
        impl->store = c10::make_intrusive<c10d::PrefixStore>("l2a/" + options.run_id, store);
    }
    try {
        impl->group = impl->device.is_cpu()
                          ? make_gloo_backend(impl->store, options, timeout)
                          : make_nccl_backend(impl->store, options, timeout, impl->device.index());
        // A rank returns only once every rank is connected: rank 0 hosts the store the others
        // still use while they connect, so a rank 0 that left straight after its own set-up
        // would keep them retrying the store well past the timeout.
        impl->group->barrier()->wait();
    } catch (const std::exception& e) {
        impl->fail_in("connecting the group through " + where, e);
    }
    return ProcessGroup(std::move(impl));
}

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;
ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->options.rank; }
int ProcessGroup::world() const { return impl_->options.world; }

void ProcessGroup::all_reduce_sum(std::span<float> data) {
    try {
        // The tensor views the caller's memory: the sum lands in data with no copy (Gloo), or
        // through a copy on the group's GPU (NCCL).
        at::Tensor host = torch::from_blob(data.data(), {static_cast<std::int64_t>(data.size())},
                                           torch::kFloat32);
        std::vector<at::Tensor> tensors{impl_->device.is_cpu() ? host : host.to(impl_->device)};
        c10d::AllreduceOptions reduce;
        reduce.reduceOp = c10d::ReduceOp::SUM;
        impl_->group->allreduce(tensors, reduce)->wait();
        if (!impl_->device.is_cpu()) host.copy_(tensors[0]);
    } catch (const std::exception& e) {
        impl_->fail_in("all-reduce", e);
    }
}

std::vector<std::vector<std::byte>> ProcessGroup::all_gather_bytes(
    std::span<const std::byte> data) {
    const int world = impl_->options.world;
    std::vector<std::vector<std::byte>> out(static_cast<std::size_t>(world));
    try {
        // The sizes first, then every rank's bytes padded to the largest.
        const at::Device device = impl_->device;
        std::vector<at::Tensor> size{
            torch::full({1}, static_cast<std::int64_t>(data.size()), torch::kInt64).to(device)};
        std::vector<std::vector<at::Tensor>> sizes(1);
        for (int r = 0; r < world; ++r)
            sizes[0].push_back(
                torch::empty({1}, torch::TensorOptions(torch::kInt64).device(device)));
        impl_->group->allgather(sizes, size)->wait();
        for (at::Tensor& s : sizes[0]) s = s.to(at::kCPU);
        std::int64_t most = 0;
        for (const at::Tensor& s : sizes[0]) most = std::max(most, s.item<std::int64_t>());
        at::Tensor host = torch::zeros({std::max<std::int64_t>(most, 1)}, torch::kUInt8);
        if (!data.empty()) std::memcpy(host.data_ptr(), data.data(), data.size());
        std::vector<at::Tensor> mine{host.to(device)};
        std::vector<std::vector<at::Tensor>> all(1);
        for (int r = 0; r < world; ++r) all[0].push_back(torch::empty_like(mine[0]));
        impl_->group->allgather(all, mine)->wait();
        for (at::Tensor& t : all[0]) t = t.to(at::kCPU);
        for (int r = 0; r < world; ++r) {
            const auto n = static_cast<std::size_t>(
                sizes[0][static_cast<std::size_t>(r)].item<std::int64_t>());
            const auto* bytes =
                static_cast<const std::byte*>(all[0][static_cast<std::size_t>(r)].data_ptr());
            out[static_cast<std::size_t>(r)].assign(bytes, bytes + n);
        }
    } catch (const std::exception& e) {
        impl_->fail_in("all-gather", e);
    }
    return out;
}

const std::string& ProcessGroup::device() const { return impl_->options.device; }

void all_reduce_sum_tensor(ProcessGroup& group, at::Tensor& tensor) {
    ProcessGroup::Impl& impl = *group.impl_;
    if (tensor.device() != impl.device) {
        fail("", "rank " + std::to_string(impl.options.rank) + ": all-reduce of a tensor on " +
                     tensor.device().str() + " in a group on " + impl.device.str());
    }
    try {
        if (!tensor.is_contiguous()) tensor = tensor.contiguous();
        std::vector<at::Tensor> tensors{tensor};
        c10d::AllreduceOptions reduce;
        reduce.reduceOp = c10d::ReduceOp::SUM;
        impl.group->allreduce(tensors, reduce)->wait();
    } catch (const std::exception& e) {
        impl.fail_in("all-reduce", e);
    }
}

void ProcessGroup::barrier() {
    try {
        impl_->group->barrier()->wait();
    } catch (const std::exception& e) {
        impl_->fail_in("barrier", e);
    }
}

}  // namespace l2a
