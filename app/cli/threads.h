// How many CPU threads a command computes with: --threads N, or else the engine's default (the
// cores that the machine's load leaves free), applied in this one place for every command.
#pragma once

#include <string>

#include "arguments.h"
#include "l2a/engine/prefill.h"

namespace l2a::cli {

inline const OptionSpec kThreadsOption{"--threads", true};

// Sets the engine's CPU threads from --threads (1-1024), else to default_cpu_threads() (which
// honours OMP_NUM_THREADS). Returns what run summaries print: "2 threads by --threads",
// "1 thread by OMP_NUM_THREADS" or "1 thread of 2 cores, load 1.20" (the load before the
// command's work).
std::string apply_threads(const Arguments& args);

// For benchmarks, before they run: the machine's load (1-minute average) and cores, with a
// warning on stderr when the machine is busy (load above 0.5: other work running), since
// timings then suffer.
CpuLoad check_load(const std::string& command);
// "load average 0.12 over the last minute, 16 cores"
std::string load_line(const CpuLoad& load);

}  // namespace l2a::cli
