#include "threads.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "l2a/engine/prefill.h"
#include "text_format.h"

namespace l2a::cli {
namespace {

constexpr double kBusyLoad = 0.5;

std::string plural(int n, const char* word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

std::string apply_threads(const Arguments& args) {
    if (auto threads = args.integer("--threads", 1, 1024)) {
        set_cpu_threads(static_cast<int>(*threads));
        return plural(cpu_threads(), "thread") + " by --threads";
    }
    const CpuLoad load = cpu_load();
    int threads = default_cpu_threads(load);
    // --tensor-parallel N: the N processes share the cores.
    const std::int64_t processes =
        args.has("--tensor-parallel") ? args.integer("--tensor-parallel", 1, 1024).value_or(1) : 1;
    if (processes > 1) threads = std::max(1, threads / static_cast<int>(processes));
    set_cpu_threads(threads);
    if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) == threads) {
        return plural(cpu_threads(), "thread") + " by OMP_NUM_THREADS";
    }
    const std::string average = load.load1 >= 0 ? format_fixed(load.load1, 2) : "n/a";
    return plural(cpu_threads(), "thread") + (processes > 1 ? " per process" : "") + " of " +
           plural(load.cores, "core") + ", load " + average;
}

std::string load_line(const CpuLoad& load) {
    const std::string average = load.load1 >= 0 ? format_fixed(load.load1, 2) : "n/a";
    return "load average " + average + " over the last minute, " + plural(load.cores, "core");
}

CpuLoad check_load(const std::string& command) {
    const CpuLoad load = cpu_load();
    if (load.load1 > kBusyLoad) {
        std::fprintf(stderr,
                     "l2a %s: warning: the machine is busy (%s; %s in use): timings will be "
                     "slower and noisier than on an idle machine\n",
                     command.c_str(), load_line(load).c_str(),
                     plural(cpu_threads(), "thread").c_str());
    }
    return load;
}

}  // namespace l2a::cli
