#include "l2a/profiler/kernel_summary.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string_view>

namespace l2a {

std::string short_kernel_name(const std::string& name) {
    std::string_view s = name;
    if (s.starts_with("void ")) s.remove_prefix(5);
    // The argument list: the last '(' at template depth 0 whose ')' ends the name.
    if (s.ends_with(')')) {
        int depth = 0;
        for (std::size_t i = s.size(); i-- > 0;) {
            const char c = s[i];
            if (c == ')') ++depth;
            if (c == '(' && --depth == 0) {
                s = s.substr(0, i);
                break;
            }
        }
    }
    std::string out(s);
    for (const std::string_view prefix : {"l2a::kernels::detail::", "l2a::kernels::"}) {
        for (std::size_t at = out.find(prefix); at != std::string::npos;
             at = out.find(prefix, at)) {
            out.erase(at, prefix.size());
        }
    }
    return out.empty() ? name : out;
}

KernelSummary summarize_kernels(std::span<const KernelRecord> kernels,
                                std::span<const TimedRange> ranges) {
    KernelSummary out;
    constexpr int kPhases = static_cast<int>(Phase::AllReduce) + 1;
    std::vector<KernelSummary::Total> phases(kPhases + 1);  // the last: outside every range
    std::map<std::string, KernelSummary::Total> by_name;
    std::map<std::string, std::string> short_names;
    // The range that launched a kernel; -1 outside every recorded range.
    const auto range_of = [&](const KernelRecord& k) {
        return k.range >= 0 && static_cast<std::size_t>(k.range) < ranges.size() ? k.range
                                                                                 : std::int64_t{-1};
    };
    // A kernel's phase: that of its range, the last slot outside every range.
    const auto phase_index = [&](const KernelRecord& k) {
        const std::int64_t range = range_of(k);
        return range >= 0 ? static_cast<int>(ranges[static_cast<std::size_t>(range)].phase)
                          : kPhases;
    };
    std::int64_t first = 0, last = 0;
    for (const KernelRecord& k : kernels) {
        const std::int64_t ns = std::max<std::int64_t>(0, k.end_ns - k.begin_ns);
        if (out.calls == 0 || k.begin_ns < first) first = k.begin_ns;
        if (out.calls == 0 || k.end_ns > last) last = k.end_ns;
        out.kernel_ns += ns;
        ++out.calls;
        const int p = phase_index(k);
        phases[static_cast<std::size_t>(p)].ns += ns;
        ++phases[static_cast<std::size_t>(p)].calls;
        auto [it, added] = short_names.try_emplace(k.name);
        if (added) it->second = short_kernel_name(k.name);
        KernelSummary::Total& t = by_name[it->second];
        t.ns += ns;
        ++t.calls;
    }
    out.span_ns = out.calls > 0 ? last - first : 0;
    // The GPU's idle gaps, in order of the kernels' begins: a gap ends at a kernel's begin and
    // counts for that kernel's phase.
    std::vector<std::size_t> order(kernels.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return kernels[a].begin_ns < kernels[b].begin_ns;
    });
    std::int64_t covered_until = 0;
    // The range of the kernel whose end is covered_until (-1: outside every recorded range).
    std::int64_t covering_range = -1;
    for (std::size_t i = 0; i < order.size(); ++i) {
        const KernelRecord& k = kernels[order[i]];
        if (i > 0 && k.begin_ns > covered_until) {
            const std::int64_t gap = k.begin_ns - covered_until;
            KernelSummary::Total& phase = phases[static_cast<std::size_t>(phase_index(k))];
            phase.idle_before_ns += gap;
            out.idle_ns += gap;
            // The kernels on either side of the gap came from different ranges: the GPU waited
            // across a range boundary.
            if (range_of(k) != covering_range) {
                phase.idle_across_ranges_ns += gap;
                out.idle_across_ranges_ns += gap;
            }
        }
        // A record that ends before it begins counts as no time, as in the durations above.
        const std::int64_t end = std::max(k.begin_ns, k.end_ns);
        if (i == 0 || end > covered_until) {
            covered_until = end;
            covering_range = range_of(k);
        }
    }
    for (int p = 0; p <= kPhases; ++p) {
        KernelSummary::Total& t = phases[static_cast<std::size_t>(p)];
        if (t.calls == 0) continue;
        t.name = p == kPhases ? "outside ranges" : phase_name(static_cast<Phase>(p));
        out.phases.push_back(std::move(t));
    }
    for (auto& [name, total] : by_name) {
        total.name = name;
        out.kernels.push_back(std::move(total));
    }
    std::stable_sort(out.kernels.begin(), out.kernels.end(),
                     [](const auto& a, const auto& b) { return a.ns > b.ns; });
    return out;
}

}  // namespace l2a
