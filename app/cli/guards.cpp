#include "guards.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <system_error>

#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"

namespace l2a::cli {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_cancel_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void request_cancel(int) { g_cancel_requested.store(true, std::memory_order_relaxed); }

// The same file, spelled differently or reached through a link: compared by identity when both
// exist, else by their normalized absolute paths.
bool same_file(const fs::path& a, const fs::path& b) {
    std::error_code ec;
    if (fs::exists(a, ec) && fs::exists(b, ec)) {
        const bool equal = fs::equivalent(a, b, ec);
        if (!ec) return equal;
    }
    const fs::path ca = fs::weakly_canonical(fs::absolute(a, ec), ec);
    const fs::path cb = fs::weakly_canonical(fs::absolute(b, ec), ec);
    return !ca.empty() && ca == cb;
}

bool writable_folder(const fs::path& dir) { return ::access(dir.c_str(), W_OK | X_OK) == 0; }

}  // namespace

void install_cancel_handlers() {
    g_cancel_requested.store(false);
    struct sigaction action {};
    action.sa_handler = request_cancel;
    sigemptyset(&action.sa_mask);
    // SA_RESTART: reads and writes in progress go on; the run stops at its next check.
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    for (const int signal : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction previous {};
        // A signal the parent told us to ignore (nohup, `trap '' INT`) stays ignored.
        if (::sigaction(signal, nullptr, &previous) == 0 && previous.sa_handler == SIG_IGN) {
            continue;
        }
        ::sigaction(signal, &action, nullptr);
    }
    // Children (the ranks of --tensor-parallel) are reaped by waitpid for their exit status; an
    // inherited SIG_IGN for SIGCHLD would reap them unseen.
    struct sigaction child {};
    child.sa_handler = SIG_DFL;
    sigemptyset(&child.sa_mask);
    ::sigaction(SIGCHLD, &child, nullptr);
}

std::atomic<bool>* cancel_flag() { return &g_cancel_requested; }

bool cancel_requested() { return g_cancel_requested.load(std::memory_order_relaxed); }

void throw_if_cancelled() {
    if (cancel_requested()) throw Cancelled();
}

void check_output_file(const Arguments& args, const NamedPath& output,
                       std::initializer_list<NamedPath> inputs) {
    const auto& [name, value] = output;
    if (value == "-") return;
    const fs::path path(value);
    for (const auto& [input_name, input] : inputs) {
        if (input.empty() || input == "-") continue;
        if (same_file(path, input)) {
            args.usage_error(name + " " + value + " names the same file as " + input_name + " " +
                             input + "; give another file name");
        }
    }
    std::error_code ec;
    if (fs::is_directory(path, ec)) fail(name + " " + value, "is a folder; give a file name");
    const fs::path folder = fs::absolute(path, ec).lexically_normal().parent_path();
    if (!fs::exists(folder, ec)) {
        fail(name + " " + value, "the folder " + folder.string() + " does not exist");
    }
    if (!fs::is_directory(folder, ec)) {
        fail(name + " " + value, folder.string() + " is not a folder");
    }
    if (!writable_folder(folder)) {
        fail(name + " " + value, "the folder " + folder.string() + " is not writable");
    }
}

void print_load_warnings(const std::vector<std::string>& warnings) {
    for (const std::string& warning : warnings) {
        std::fprintf(stderr, "l2a: warning: %s\n", warning.c_str());
    }
}

void check_output_folder(const NamedPath& output) {
    const auto& [name, value] = output;
    std::error_code ec;
    fs::path dir = fs::absolute(value, ec).lexically_normal();
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
        fail(name + " " + value, "is a file, not a folder");
    }
    // The nearest folder that exists: the command creates the rest.
    while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.parent_path())
        dir = dir.parent_path();
    if (!fs::is_directory(dir, ec)) {
        fail(name + " " + value, dir.string() + " is not a folder");
    }
    if (!writable_folder(dir)) {
        fail(name + " " + value, "the folder " + dir.string() + " is not writable");
    }
}

}  // namespace l2a::cli
