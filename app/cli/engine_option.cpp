#include "engine_option.h"

#include <sys/stat.h>

#include <cstdio>

#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/profiler/remote.h"
#include "model_source.h"
#include "tensor_parallel_option.h"
#include "threads.h"

namespace l2a::cli {

std::string read_tls_ca(const Arguments& args, const std::string& url) {
    const auto ca = args.value("--tls-ca");
    if (!ca) return "";
    if (url.rfind("tls://", 0) != 0) args.usage_error("--tls-ca is for tls:// engines");
    return read_pem_file(*ca, "CERTIFICATE", "a PEM certificate");
}

bool remote_engine(const Arguments& args) {
    const auto engine = args.value("--engine");
    return engine && *engine != "local";
}

std::string read_token(const std::filesystem::path& path) {
    std::string token = read_engine_token(path);
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        std::fprintf(stderr, "l2a: warning: %s: others may read this token file (chmod 600 it)\n",
                     path.c_str());
    }
    return token;
}

std::unique_ptr<Study> open_study(const Arguments& args, int tensor_parallel) {
    if (!remote_engine(args)) {
        for (const char* option : {"--token-file", "--tls-ca"}) {
            if (args.has(option)) args.usage_error(std::string(option) + " needs --engine URL");
        }
        return make_local_study(
            {.cancel = cancel_flag(), .group = join_tensor_parallel(args, tensor_parallel)});
    }
    const std::string url = *args.value("--engine");
    if (url.rfind("ssh://", 0) == 0 && (args.has("--token-file") || args.has("--tls-ca"))) {
        args.usage_error("--engine ssh://...: the tunnel needs no --token-file or --tls-ca");
    }
    EngineAddress address;
    address.url = url;
    try {
        check_engine_url(url);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    if (auto token_file = args.value("--token-file")) address.token = read_token(*token_file);
    address.tls_ca_pem = read_tls_ca(args, url);
    return connect_study(address, 10.0, cancel_flag());
}

std::string prepare_compute(const Arguments& args, const std::string& device, int& threads) {
    threads = 0;
    if (!remote_engine(args)) {
        if (!device.empty()) require_device(device);
        return apply_threads(args);
    }
    if (auto n = args.integer("--threads", 1, 1024)) {
        threads = static_cast<int>(*n);
        return std::to_string(threads) + (threads == 1 ? " thread" : " threads") +
               " by --threads on the engine";
    }
    return "the engine's threads";
}

ModelSpec model_spec(const Arguments& args) {
    ModelSpec spec;
    const std::optional<std::filesystem::path> named = named_model(args);
    // --demo on a remote engine is the engine's demo model: an empty folder.
    if (named) {
        spec.folder = *named;
    } else if (!remote_engine(args)) {
        spec.folder = model_folder(args);
    }
    return spec;
}

}  // namespace l2a::cli
