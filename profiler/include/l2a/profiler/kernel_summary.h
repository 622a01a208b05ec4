// Where a traced run's GPU time went: kernel time per phase of the run (local, router, global,
// MLP, embedding, LM head) and the kernels that took the most time, summed over their calls.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "l2a/engine/profile.h"
#include "l2a/engine/timed_range.h"

namespace l2a {

struct KernelSummary {
    struct Total {
        std::string name;  // a phase name (phase_name, or "outside ranges") or a kernel's name
        std::int64_t calls = 0;
        std::int64_t ns = 0;  // summed kernel durations
        // Phases only: how long the GPU ran no kernel right before this phase's kernels began
        // (the gaps between kernels, each counted for the kernel that ended it): time the GPU
        // waited for the host to launch them, after a synchronization or the host's own work.
        std::int64_t idle_before_ns = 0;
        // Of idle_before_ns, the gaps across a range boundary: the kernel that ended the gap and
        // the one that ended the GPU's work before it came from different ranges (kernels
        // outside every recorded range count as one more), so the GPU waited for the host's
        // synchronization and its work between the ranges. The rest fell between two kernels
        // of one range: launch gaps, or the host's work inside the range.
        std::int64_t idle_across_ranges_ns = 0;
    };
    std::int64_t kernel_ns = 0;  // every kernel's duration, summed
    std::int64_t calls = 0;
    // The span from the first kernel's begin to the last one's end (0 without kernels).
    std::int64_t span_ns = 0;
    // The time inside the span when no kernel ran (kernels on several streams may overlap: the
    // span is the union of their intervals plus this), the sum of the phases' idle_before_ns.
    std::int64_t idle_ns = 0;
    std::int64_t idle_across_ranges_ns = 0;  // the phases' idle_across_ranges_ns, summed
    std::vector<Total> phases;   // in the order of Phase, present ones only, then "outside ranges"
    std::vector<Total> kernels;  // by short_kernel_name, most time first (ties: by name)
};

// `kernels` of one run and its `ranges` (KernelRecord::range indexes them). A kernel counts for
// the phase of the range that launched it: a layer part (local, router, global, mlp), an
// all-reduce, a whole layer outside its parts ("layer"), the embedding or the LM head.
KernelSummary summarize_kernels(std::span<const KernelRecord> kernels,
                                std::span<const TimedRange> ranges);

// A demangled kernel name without its return type, argument list and the project's namespace:
// "void l2a::kernels::detail::k<float, 128>(Params)" -> "k<float, 128>".
std::string short_kernel_name(const std::string& name);

}  // namespace l2a
