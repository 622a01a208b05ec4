// `l2a`: the command-line entry point. Every failure ends as one line on stderr: usage mistakes
// exit with 2, failed runs with 1, a cancelled run with 130 (as after SIGINT).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "tensor_parallel_gpus.h"
#include "tensor_parallel_option.h"
#include "text_format.h"

namespace {

using l2a::cli::help_text;

int dispatch(std::span<const std::string_view> args) {
    if (args.empty()) {
        std::fputs(help_text(""), stderr);
        return 2;
    }
    const std::string_view command = args[0];
    const auto rest = args.subspan(1);
    if (command == "--help" || command == "-h") {
        std::fputs(help_text(""), stdout);
        return 0;
    }
    if (command == "--version") {
        std::printf("l2a %s\n", l2a::cli::tool_version());
        return 0;
    }
    if (command == "help") {
        if (rest.empty()) {
            std::fputs(help_text(""), stdout);
            return 0;
        }
        // `l2a help --help` and `l2a help help` describe help itself: the overview.
        if (rest[0] == "--help" || rest[0] == "-h" || rest[0] == "help") {
            std::fputs(help_text(""), stdout);
            return 0;
        }
        constexpr std::string_view kCommands[] = {
            "info",      "run",   "export",  "bench",    "whatif", "suggest-prune", "make-docs",
            "construct", "train", "convert", "evaluate", "serve",  "explain",       "oracle"};
        if (std::find(std::begin(kCommands), std::end(kCommands), rest[0]) == std::end(kCommands)) {
            std::fprintf(stderr, "l2a help: unknown command '%.*s' (see l2a --help)\n",
                         static_cast<int>(rest[0].size()), rest[0].data());
            return 2;
        }
        std::fputs(help_text(rest[0]), stdout);
        return 0;
    }
    if (command == "info") return l2a::cli::info_command(rest);
    if (command == "run") return l2a::cli::run_command(rest);
    if (command == "export") return l2a::cli::export_command(rest);
    if (command == "bench") return l2a::cli::bench_command(rest);
    if (command == "whatif") return l2a::cli::whatif_command(rest);
    if (command == "suggest-prune") return l2a::cli::suggest_prune_command(rest);
    if (command == "make-docs") return l2a::cli::make_docs_command(rest);
    if (command == "construct") return l2a::cli::construct_command(rest);
    if (command == "train") return l2a::cli::train_command(rest);
    if (command == "convert") return l2a::cli::convert_command(rest);
    if (command == "evaluate") return l2a::cli::evaluate_command(rest);
    if (command == "serve") return l2a::cli::serve_command(rest);
    if (command == "explain") return l2a::cli::explain_command(rest);
    if (command == "oracle") return l2a::cli::oracle_command(rest);
    if (!command.empty() && command[0] == '-') {
        std::fprintf(stderr, "l2a: unknown option '%.*s' (see l2a --help)\n",
                     static_cast<int>(command.size()), command.data());
    } else {
        std::fprintf(stderr, "l2a: unknown command '%.*s' (see l2a --help)\n",
                     static_cast<int>(command.size()), command.data());
    }
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    // Before any thread exists (setenv is not safe beside a getenv of another thread).
    l2a::cli::prepare_tensor_parallel_env(args);
    l2a::cli::set_command_line(argc, argv);
    // Every command stops cleanly on SIGINT, SIGTERM and SIGHUP (guards.h).
    l2a::cli::install_cancel_handlers();
    try {
        const int status = dispatch(args);
        // Tensor parallel: rank 0 succeeds only once the other ranks it started have.
        const std::string failure = status == 0 ? l2a::cli::finish_tensor_parallel()
                                                : l2a::cli::tensor_parallel_failure("");
        if (!failure.empty()) {
            std::fflush(stdout);
            std::fprintf(stderr, "l2a: error: %s\n", failure.c_str());
            return 1;
        }
        return status;
    } catch (const l2a::cli::TensorParallelFailed& e) {
        // The other ranks, checked before rank 0 wrote anything: the message is complete.
        std::fflush(stdout);
        std::fprintf(stderr, "l2a: error: %s\n", e.what());
        return 1;
    } catch (const l2a::cli::UsageError& e) {
        l2a::cli::tensor_parallel_failure("");
        std::fprintf(stderr, "l2a %s: %s (see l2a %s --help)\n", e.command().c_str(),
                     l2a::cli::first_line(e.what()).c_str(), e.command().c_str());
        return 2;
    } catch (const l2a::Cancelled& e) {
        std::fflush(stdout);
        // Stopped because another rank of a tensor-parallel run exited, or by a signal.
        if (const std::string failure = l2a::cli::tensor_parallel_failure(e.what());
            !failure.empty()) {
            std::fprintf(stderr, "l2a: error: %s\n", failure.c_str());
            return 1;
        }
        std::fputs("l2a: cancelled\n", stderr);
        return 130;
    } catch (const std::bad_alloc&) {
        // Inputs are checked before anything is sized by them; this is the last line of defence.
        l2a::cli::tensor_parallel_failure("");
        std::fflush(stdout);
        std::fputs("l2a: error: out of memory (the input is larger than this machine can hold)\n",
                   stderr);
        return 1;
    } catch (const std::exception& e) {
        // l2a::Error and anything from the libraries below (LibTorch's c10::Error included).
        // The engine words JSON errors itself; a library tag that slips through is dropped here.
        std::fflush(stdout);
        const std::string error = l2a::cli::first_line(l2a::without_library_tags(e.what()));
        // A tensor-parallel run that failed because another rank did names that rank.
        const std::string failure = l2a::cli::tensor_parallel_failure(error);
        if (failure.empty() && l2a::cli::tensor_parallel_interrupted(error)) {
            std::fputs("l2a: cancelled\n", stderr);
            return 130;
        }
        std::fprintf(stderr, "l2a: error: %s\n", (failure.empty() ? error : failure).c_str());
        return 1;
    }
}
