#include "threads.h"

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
    const int threads = default_cpu_threads(load);
    set_cpu_threads(threads);
    if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) == threads) {
        return plural(cpu_threads(), "thread") + " by OMP_NUM_THREADS";
    }
    const std::string average = load.load1 >= 0 ? format_fixed(load.load1, 2) : "n/a";
    return plural(cpu_threads(), "thread") + " of " + plural(load.cores, "core") + ", load " +
           average;
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
