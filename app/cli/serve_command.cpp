// `l2a serve`: the study service for remote clients (`--engine` on the CLI, File > Connect to
// Engine in the app). Runs until SIGINT/SIGTERM, or with --until-stdin-closes until its standard
// input closes (how `--engine ssh://` ends it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/shapes.h"
#include "l2a/profiler/remote.h"
#include "tensor_parallel_option.h"

namespace l2a::cli {
namespace {

// "8G", "512M", "1073741824": bytes (K, M, G, T as powers of 1024).
std::int64_t parse_bytes(const Arguments& args, const char* option, std::int64_t fallback) {
    const auto text = args.value(option);
    if (!text) return fallback;
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(*text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    std::int64_t unit = 1;
    const std::string suffix = text->substr(used);
    if (suffix == "K" || suffix == "KiB")
        unit = std::int64_t{1} << 10;
    else if (suffix == "M" || suffix == "MiB")
        unit = std::int64_t{1} << 20;
    else if (suffix == "G" || suffix == "GiB")
        unit = std::int64_t{1} << 30;
    else if (suffix == "T" || suffix == "TiB")
        unit = std::int64_t{1} << 40;
    else if (!suffix.empty())
        used = 0;
    if (used == 0 || !(value >= 0) || value * static_cast<double>(unit) > 9e18) {
        args.usage_error(std::string(option) + ": " + *text +
                         " is not a size in bytes (for example 8G, 512M or 1073741824)");
    }
    return static_cast<std::int64_t>(value * static_cast<double>(unit));
}

void log_line(const std::string& line) {
    static std::mutex mutex;
    const std::lock_guard lock(mutex);
    const std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
    std::fprintf(stderr, "l2a serve: %s %s\n", stamp, line.c_str());
}

}  // namespace

int serve_command(std::span<const std::string_view> raw) {
    Arguments args("serve",
                   {{"--listen", true},
                    kTokenFileOption,
                    {"--models", true},
                    {"--docs", true},
                    {"--shape", true},
                    {"--tls-cert", true},
                    {"--tls-key", true},
                    {"--checkpoint-budget", true},
                    {"--max-message", true},
                    {"--until-stdin-closes", false},
                    {"--quiet", false},
                    {"--device", true},
                    kTensorParallelOption,
                    kTensorParallelRankOption,
                    kTensorParallelPortOption,
                    kTensorParallelRunOption},
                   raw);
    if (args.help()) {
        std::fputs(help_text("serve"), stdout);
        return 0;
    }
    ServeOptions options;
    options.listen = args.value("--listen").value_or("127.0.0.1:7787");
    if (auto token_file = args.value("--token-file")) options.token = read_token(*token_file);
    if (auto models = args.value("--models")) {
        options.models_root = *models;
    } else if (const char* env = std::getenv("L2A_MODELS"); env && *env) {
        options.models_root = env;
    }
    if (auto docs = args.value("--docs")) options.docs_root = *docs;
    for (const std::filesystem::path& root : {options.models_root, options.docs_root}) {
        std::error_code error;
        if (!root.empty() && !std::filesystem::is_directory(root, error)) {
            fail(root.string(), "no such folder");
        }
    }
    if (auto shapes = args.value("--shape")) {
        std::size_t start = 0;
        while (start <= shapes->size()) {
            const std::size_t comma = std::min(shapes->find(',', start), shapes->size());
            const std::string name = shapes->substr(start, comma - start);
            try {
                published_shape(name);
            } catch (const Error& e) {
                args.usage_error(e.what());
            }
            options.shapes.push_back(name);
            start = comma + 1;
        }
    }
    if (args.has("--tls-cert") != args.has("--tls-key")) {
        args.usage_error("give both --tls-cert FILE and --tls-key FILE");
    }
    if (auto cert = args.value("--tls-cert")) {
        options.tls_cert_pem = read_pem_file(*cert, "CERTIFICATE", "a PEM certificate");
        options.tls_key_pem =
            read_pem_file(*args.value("--tls-key"), "PRIVATE KEY", "a PEM private key");
    }
    options.checkpoint_budget_bytes =
        parse_bytes(args, "--checkpoint-budget", kDefaultCheckpointBudgetBytes);
    options.max_message_bytes = parse_bytes(args, "--max-message", options.max_message_bytes);
    const bool quiet = args.has("--quiet");
    if (!quiet) options.log = log_line;

    // Tensor parallel: rank 0 serves and starts the others, which follow its requests. Where
    // they run is the server's choice (--device: the CPU through Gloo, or rank r on cuda:r
    // through NCCL); without tensor parallel each client's request names its device.
    const std::optional<std::string> device = args.value("--device");
    if (device && !args.has(kTensorParallelOption.name)) {
        args.usage_error(
            "--device applies to --tensor-parallel (without it, each client's request names its "
            "device)");
    }
    if (device && *device != "cpu" && *device != "cuda") {
        args.usage_error("--device " + *device +
                         ": expected cpu or cuda (tensor parallel puts rank r on cuda:r; "
                         "CUDA_VISIBLE_DEVICES picks the GPUs)");
    }
    const int ranks = tensor_parallel(args, device.value_or(""));
    if (ranks > 1 && !remote_engine_built()) {
        fail("l2a serve", "this build has no remote engine (gRPC was not found when it was built)");
    }
    // Rank 0 checks where it will listen before it starts the other ranks, so that a taken port
    // or a bad address is said at once rather than after every rank has loaded.
    if (ranks > 1 && !tensor_parallel_worker()) check_serve_address(options);
    options.group = join_tensor_parallel(args, ranks);
    // The processes share the cores (a client's --threads still sets each one's).
    if (ranks > 1) set_cpu_threads(std::max(1, default_cpu_threads() / ranks));
    if (tensor_parallel_worker()) {
        options.log = nullptr;
        follow_study_server(options, *options.group);
        return 0;
    }

    StudyServer server(options);
    if (!quiet) {
        std::string where = options.listen;
        if (server.port() > 0)
            where = where.substr(0, where.rfind(':') + 1) + std::to_string(server.port());
        log_line("listening on " + where + (options.token.empty() ? "" : " (token required)") +
                 (options.tls_cert_pem.empty() ? "" : " with TLS") +
                 (ranks > 1 ? ", tensor parallel over " + std::to_string(ranks) + " processes" +
                                  (options.group->device() == "cpu"
                                       ? std::string(" on the CPU")
                                       : " on cuda:0 to cuda:" + std::to_string(ranks - 1))
                            : std::string()));
    }
    // The port on standard output, for scripts that asked for port 0.
    std::printf("%d\n", server.port());
    std::fflush(stdout);

    std::thread stop([&] {
        while (!cancel_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        server.shutdown();
    });
    std::thread stdin_watch;
    if (args.has("--until-stdin-closes")) {
        stdin_watch = std::thread([&] {
            char buffer[256];
            while (std::fread(buffer, 1, sizeof buffer, stdin) > 0) {
            }
            cancel_flag()->store(true);
        });
    }
    server.wait();
    cancel_flag()->store(true);
    stop.join();
    if (stdin_watch.joinable()) stdin_watch.detach();  // blocked in a read that may never end
    if (!quiet) log_line("stopped");
    return 0;
}

}  // namespace l2a::cli
