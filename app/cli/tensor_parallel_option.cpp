#include "tensor_parallel_option.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/config.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/run_choices.h"
#include "model_source.h"
#include "tensor_parallel_gpus.h"

namespace l2a::cli {
namespace {

namespace fs = std::filesystem;

// How long the rendezvous and each collective wait for the other ranks, and how long rank 0
// waits for them to finish after its own end.
constexpr double kGroupTimeoutSeconds = 60.0;
// How long rank 0, failed in a collective, waits to learn which rank exited first.
constexpr auto kFailureGrace = std::chrono::seconds(5);

// The files a rank other than 0 must not write: options dropped from its command line.
constexpr std::string_view kOutputOptions[] = {"--out", "--logits-out"};

std::vector<std::string>& command_line() {
    static std::vector<std::string> args;
    return args;
}

bool& worker_process() {
    static bool worker = false;
    return worker;
}

// Whether the ranks run on GPUs (rank r on cuda:r, NCCL) rather than on the CPU (Gloo).
bool& on_gpus() {
    static bool gpus = false;
    return gpus;
}

// The ranks rank 0 started: their processes, the threads that forward their standard error,
// and how they ended.
class Workers {
public:
    ~Workers() { stop(); }

    void start(int world, int port, const std::string& run) {
        const pid_t parent = ::getpid();
        // The forwarding threads index ranks_, which must not move under them.
        ranks_.reserve(static_cast<std::size_t>(world));
        for (int rank = 1; rank < world; ++rank) {
            std::vector<std::string> args = arguments(rank, port, run);
            std::vector<char*> argv;
            for (std::string& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC) != 0) {
                fail("", "tensor parallel: cannot make a pipe for rank " + std::to_string(rank) +
                             ": " + std::strerror(errno));
            }
            const pid_t pid = ::fork();
            if (pid < 0) {
                ::close(fds[0]);
                ::close(fds[1]);
                fail("", "tensor parallel: cannot start rank " + std::to_string(rank) + ": " +
                             std::strerror(errno));
            }
            if (pid == 0) {
                // Only async-signal-safe calls until exec. The rank dies with rank 0.
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (::getppid() != parent) ::_exit(127);
                const int null = ::open("/dev/null", O_RDWR);
                if (null >= 0) {
                    ::dup2(null, 0);
                    ::dup2(null, 1);
                }
                ::dup2(fds[1], 2);
                ::execv("/proc/self/exe", argv.data());
                const char message[] = "l2a: error: cannot run /proc/self/exe\n";
                [[maybe_unused]] const ssize_t n = ::write(2, message, sizeof message - 1);
                ::_exit(127);
            }
            ::close(fds[1]);
            std::lock_guard lock(mutex_);
            ranks_.push_back({rank, pid, false, false, 0, {}, {}});
            threads_.emplace_back(
                [this, index = ranks_.size() - 1, fd = fds[0]] { forward(index, fd); });
        }
    }

    bool empty() const { return threads_.empty(); }
    std::size_t world() const { return ranks_.size() + 1; }

    // Waits until every rank exited or `limit` passed; true when all exited.
    bool wait_all(std::chrono::steady_clock::duration limit) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, limit, [this] {
            for (const Rank& r : ranks_) {
                if (!r.exited) return false;
            }
            return true;
        });
    }

    // Waits until a rank failed or `limit` passed; the failure, if any.
    std::string wait_failure(std::chrono::steady_clock::duration limit) {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, limit, [this] { return failed_.has_value(); });
        return failed_ ? describe(ranks_[*failed_]) : std::string();
    }

    // Kills the ranks still running (their exits are then not failures) and joins the threads.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            for (const Rank& r : ranks_) {
                if (!r.exited && !r.ending) ::kill(r.pid, SIGKILL);
            }
        }
        for (std::thread& t : threads_) {
            if (t.joinable()) t.join();
        }
    }

    // The first rank still running, for a message; -1 when none.
    int running_rank() {
        std::lock_guard lock(mutex_);
        for (const Rank& r : ranks_) {
            if (!r.exited) return r.rank;
        }
        return -1;
    }

private:
    struct Rank {
        int rank = 0;
        pid_t pid = -1;
        bool exited = false;
        // Ended and about to be reaped: its pid is no longer for stop() to signal (once reaped,
        // the pid may be another process's).
        bool ending = false;
        int status = 0;          // waitpid's
        std::string last_error;  // its last "error" line, else its last line
        std::string last_line;
    };

    // This program's command line for `rank`: the same, less the files it would write, plus
    // where to join.
    static std::vector<std::string> arguments(int rank, int port, const std::string& run) {
        std::vector<std::string> out;
        const std::vector<std::string>& all = command_line();
        for (std::size_t i = 0; i < all.size(); ++i) {
            const std::string& a = all[i];
            bool dropped = false;
            for (std::string_view option : kOutputOptions) {
                if (i > 0 && a == option) {
                    ++i;  // and its value
                    dropped = true;
                } else if (i > 0 && a.rfind(std::string(option) + "=", 0) == 0) {
                    dropped = true;
                }
            }
            if (!dropped) out.push_back(a);
        }
        for (std::string a : {std::string(kTensorParallelRankOption.name), std::to_string(rank),
                              std::string(kTensorParallelPortOption.name), std::to_string(port),
                              std::string(kTensorParallelRunOption.name), run}) {
            out.push_back(std::move(a));
        }
        return out;
    }

    // Forwards a rank's standard error as "rank R: ..." lines until it closes, then reaps it.
    void forward(std::size_t index, int fd) {
        const int rank = ranks_[index].rank;
        FILE* in = ::fdopen(fd, "r");
        if (in) {
            char* line = nullptr;
            std::size_t capacity = 0;
            ssize_t n = 0;
            while ((n = ::getline(&line, &capacity, in)) > 0) {
                std::string text(line, static_cast<std::size_t>(n));
                while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
                    text.pop_back();
                }
                std::fprintf(stderr, "rank %d: %s\n", rank, text.c_str());
                std::lock_guard lock(mutex_);
                Rank& r = ranks_[index];
                if (text.find("error") != std::string::npos) r.last_error = text;
                if (!text.empty()) r.last_line = text;
            }
            std::free(line);
            std::fclose(in);
        } else {
            ::close(fd);
        }
        // Wait for the end without reaping (the pid stays this rank's), mark it, then reap.
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(ranks_[index].pid), &info, WEXITED | WNOWAIT) <
                   0 &&
               errno == EINTR) {
        }
        {
            std::lock_guard lock(mutex_);
            ranks_[index].ending = true;
        }
        int status = 0;
        pid_t reaped = 0;
        while ((reaped = ::waitpid(ranks_[index].pid, &status, 0)) < 0 && errno == EINTR) {
        }
        std::lock_guard lock(mutex_);
        Rank& r = ranks_[index];
        r.exited = true;
        // waitpid fails only when the rank was reaped elsewhere (SIGCHLD ignored, which main()
        // undoes): its status is unknown, so it counts as a failure with no status.
        r.status = reaped < 0 ? (255 << 8) : status;
        const bool clean = reaped >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // A rank that ended as cancelled (status 130: Ctrl-C reaches every process of the
        // terminal, perhaps before rank 0's own handler has run) is no failure of its own, and
        // neither is an exit after a stop was asked.
        const bool cancelled = reaped >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 130;
        if (!joined_.load() && !stopping_) {
            // The ranks had not all met: rank 0 waits in the rendezvous, which nothing
            // interrupts, until its timeout. End the run here, with what happened.
            for (const Rank& other : ranks_) {
                if (!other.exited && !other.ending) ::kill(other.pid, SIGKILL);
            }
            if (cancelled || cancel_flag()->load()) {
                std::fputs("l2a: cancelled\n", stderr);
                std::_Exit(130);
            }
            std::fprintf(stderr, "l2a: error: tensor parallel: %s (before every rank had joined)\n",
                         describe(r).c_str());
            std::_Exit(1);
        }
        if (!clean && !cancelled && !stopping_ && !failed_ && !cancel_flag()->load()) {
            failed_ = index;
            // Rank 0 stops at its next safe point, if no collective has failed it already.
            cancel_flag()->store(true);
        }
        changed_.notify_all();
    }

    std::string describe(const Rank& r) const {
        std::string text = "rank " + std::to_string(r.rank) + " of " + std::to_string(world());
        if (WIFEXITED(r.status)) {
            text += " exited with status " + std::to_string(WEXITSTATUS(r.status));
        } else if (WIFSIGNALED(r.status)) {
            const int signal = WTERMSIG(r.status);
            const char* name = ::sigdescr_np(signal);
            text += " was killed by signal " + std::to_string(signal) +
                    (name ? " (" + std::string(name) + ")" : std::string());
        } else {
            text += " ended";
        }
        std::string last = r.last_error.empty() ? r.last_line : r.last_error;
        constexpr std::string_view kPrefix = "l2a: error: ";
        if (last.rfind(kPrefix, 0) == 0) last.erase(0, kPrefix.size());
        text += last.empty() ? " without an error message" : ": " + last;
        return text;
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Rank> ranks_;
    std::vector<std::thread> threads_;
    bool stopping_ = false;
    std::optional<std::size_t> failed_;

public:
    // Set once rank 0 has met every rank: before, a rank that ends makes rank 0 exit at once.
    std::atomic<bool> joined_{false};
};

Workers& workers() {
    static Workers w;
    return w;
}

std::unique_ptr<ProcessGroup>& group_slot() {
    static std::unique_ptr<ProcessGroup> group;
    return group;
}

std::string num(std::int64_t v) { return std::to_string(v); }

// Names this run's keys in the rendezvous store: rank 0's process id and 64 random bits.
std::string new_run_id() {
    std::random_device random;
    const std::uint64_t bits = (static_cast<std::uint64_t>(random()) << 32) ^ random();
    char id[48];
    std::snprintf(id, sizeof id, "%ld-%016llx", static_cast<long>(::getpid()),
                  static_cast<unsigned long long>(bits));
    return id;
}

}  // namespace

namespace {

// Tensor parallel on the CPU sums through c10d Gloo.
void require_gloo(int n) {
    if (!process_groups_available()) {
        fail("", "--tensor-parallel " + std::to_string(n) +
                     ": this build has no process groups (c10d Gloo); install libgloo-dev "
                     "and reconfigure");
    }
}

}  // namespace

void set_command_line(int argc, char** argv) { command_line().assign(argv, argv + argc); }

int tensor_parallel(const Arguments& args, const std::string& device) {
    const bool internal = args.has(kTensorParallelRankOption.name) ||
                          args.has(kTensorParallelPortOption.name) ||
                          args.has(kTensorParallelRunOption.name);
    if (!args.has(kTensorParallelOption.name)) {
        if (internal) {
            args.usage_error(
                "--tp-rank, --tp-port and --tp-run are for the ranks --tensor-parallel starts");
        }
        return 1;
    }
    const auto n =
        static_cast<int>(*args.integer(kTensorParallelOption.name, 1, kMaxTensorParallel));
    const std::string given = "--tensor-parallel " + num(n);
    if (remote_engine(args)) {
        args.usage_error(given +
                         ": tensor parallel starts its processes on this computer; it does not "
                         "go with a remote --engine");
    }
    if (n == 1) return 1;
    const bool gpu = !device.empty() && !is_cpu_device(device);
    if (gpu && device != "cuda") {
        args.usage_error(given + ": --device " + device +
                         ": tensor parallel puts rank r on cuda:r; give --device cuda "
                         "(CUDA_VISIBLE_DEVICES picks the GPUs)");
    }
    // Gloo sums fp32 on the CPU; NCCL sums the GPU's own dtype.
    if (auto dtype = args.value("--dtype"); !gpu && dtype && *dtype != "fp32" && *dtype != "auto") {
        args.usage_error(given + ": tensor parallel on the CPU runs in fp32 (--dtype " + *dtype +
                         "; bf16 and fp16 run with --device cuda)");
    }
    // Every rank reads the input itself: a pipe or a device would give it to one of them only.
    for (const char* input : {"--doc", "--tokens", "--profile"}) {
        const std::optional<std::string> path = args.value(input);
        std::error_code error;
        if (path && fs::exists(*path, error) && !fs::is_regular_file(*path, error)) {
            args.usage_error(given + ": " + input + " " + *path +
                             " is not a regular file; every process reads the input itself, so "
                             "give a file (not a pipe or a device)");
        }
    }
    if (internal) {
        if (!args.has(kTensorParallelRankOption.name) ||
            !args.has(kTensorParallelPortOption.name) || !args.has(kTensorParallelRunOption.name)) {
            args.usage_error("--tp-rank, --tp-port and --tp-run go together");
        }
        args.integer(kTensorParallelRankOption.name, 1, n - 1);
        args.integer(kTensorParallelPortOption.name, 1, 65535);
        worker_process() = true;
    }
    if (gpu) {
        use_tensor_parallel_device(args, n, device, "--device " + device);
        return n;
    }
    // With no device given (whatif: the profile's; serve), join_tensor_parallel checks once the
    // device is known: a GPU profile needs NCCL, not Gloo.
    if (!device.empty()) require_gloo(n);
    return n;
}

void use_tensor_parallel_device(const Arguments& args, int n, const std::string& device,
                                const std::string& source) {
    if (n <= 1 || device.empty() || is_cpu_device(device)) return;
    if (!nccl_process_groups_available()) {
        args.usage_error("--tensor-parallel " + num(n) + ": " + source +
                         ": tensor parallel on CUDA devices needs NCCL process groups (c10d "
                         "NCCL), which this build lacks: build with the cuda preset where the "
                         "torch wheel's NCCL headers are installed (docs/BUILDING.md)");
    }
    const std::string shortage = tensor_parallel_gpu_shortage(n, cuda_device_count());
    if (!shortage.empty())
        args.usage_error("--tensor-parallel " + num(n) + ": " + source + ": " + shortage);
    on_gpus() = true;
}

void check_tensor_parallel_shape(const Arguments& args, int n, std::int64_t heads,
                                 std::int64_t kv_heads, std::int64_t intermediate_size,
                                 const std::string& model) {
    if (n <= 1) return;
    std::string wrong;
    for (auto [what, value] : {std::pair{"query heads", heads}, std::pair{"KV heads", kv_heads},
                               std::pair{"intermediate size", intermediate_size}}) {
        if (value % n == 0) continue;
        wrong += (wrong.empty() ? "" : ", ") + std::string(what) + " " + num(value);
    }
    if (wrong.empty()) return;
    args.usage_error("--tensor-parallel " + num(n) + ": " + model +
                     "'s query heads, KV heads and intermediate size (" + num(heads) + ", " +
                     num(kv_heads) + ", " + num(intermediate_size) +
                     ") must each be a multiple of " + num(n) + "; not: " + wrong);
}

void check_tensor_parallel_folder(const Arguments& args, int n) {
    if (n <= 1) return;
    const ModelConfig config = load_model_config(model_folder(args) / "config.json");
    check_tensor_parallel_shape(args, n, config.num_attention_heads, config.num_key_value_heads,
                                config.intermediate_size);
}

bool tensor_parallel_worker() { return worker_process(); }

ProcessGroup* join_tensor_parallel(const Arguments& args, int n) {
    if (n <= 1) return nullptr;
    if (!on_gpus()) require_gloo(n);
    GroupOptions options;
    options.world = n;
    options.timeout_seconds = kGroupTimeoutSeconds;
    // NCCL_NVLS_ENABLE=0 is in the environment already, unless the user set it: main() set it
    // before any thread started (prepare_tensor_parallel_env), and the others inherit it.
    if (worker_process()) {
        options.rank = static_cast<int>(*args.integer(kTensorParallelRankOption.name, 1, n - 1));
        options.port = static_cast<int>(*args.integer(kTensorParallelPortOption.name, 1, 65535));
        options.run_id = *args.value(kTensorParallelRunOption.name);
    } else {
        // Rank 0 binds a free port for the rendezvous and only then starts the others with it:
        // no other program can take the port in between.
        options.rank = 0;
        options.port = 0;
        options.run_id = new_run_id();
    }
    if (on_gpus()) options.device = tensor_parallel_gpu(options.rank);
    group_slot() = std::make_unique<ProcessGroup>(
        ProcessGroup::open(options, [&](int port) { workers().start(n, port, options.run_id); }));
    workers().joined_ = true;
    return group_slot().get();
}

std::string finish_tensor_parallel() {
    Workers& w = workers();
    if (w.empty()) return {};
    const auto limit = std::chrono::duration<double>(kGroupTimeoutSeconds);
    std::string failure;
    if (!w.wait_all(std::chrono::duration_cast<std::chrono::steady_clock::duration>(limit))) {
        failure = "tensor parallel: rank " + num(w.running_rank()) + " of " + num(w.world()) +
                  " had not finished " + num(static_cast<std::int64_t>(kGroupTimeoutSeconds)) +
                  " s after rank 0 (stopped)";
    } else {
        failure = w.wait_failure(std::chrono::steady_clock::duration::zero());
        if (!failure.empty()) failure = "tensor parallel: " + failure;
    }
    w.stop();
    return failure;
}

void finish_tensor_parallel_before_writing() {
    if (worker_process() || workers().empty()) return;
    const std::string failure = finish_tensor_parallel();
    if (!failure.empty()) throw TensorParallelFailed(failure);
}

std::string tensor_parallel_failure(const std::string& error) {
    Workers& w = workers();
    if (w.empty()) return {};
    // A collective that failed on rank 0 ("rank 0 of 2: all-reduce failed: ..."): wait a moment
    // to learn which rank exited. (A rank that exits first stops rank 0 as a cancel, after its
    // failure is recorded.)
    // After a signal no rank's exit counts as a failure: nothing to wait for.
    const bool from_group = error.rfind("rank 0 of ", 0) == 0;
    std::string failure = w.wait_failure(from_group && !cancel_requested()
                                             ? std::chrono::steady_clock::duration(kFailureGrace)
                                             : std::chrono::steady_clock::duration::zero());
    w.stop();
    if (failure.empty()) return {};
    if (error.empty()) return "tensor parallel: " + failure;
    // "rank 0 of 2: all-reduce failed: ..." -> "all-reduce failed: ...".
    std::string own = error;
    if (from_group) own.erase(0, own.find(": ") + 2);
    return "tensor parallel: " + failure + "; rank 0 stopped: " + own;
}

bool tensor_parallel_interrupted(const std::string& error) {
    // "rank 1 of 2: all-reduce failed: ...", as ProcessGroup words a failed collective.
    const bool from_group = group_slot() != nullptr && error.rfind("rank ", 0) == 0 &&
                            error.find(" of ") != std::string::npos;
    return from_group && cancel_requested();
}

}  // namespace l2a::cli
