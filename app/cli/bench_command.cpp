// `l2a bench prefill` and `l2a bench attention`: whole-model prefill time, and attention alone,
// each in one process with its baselines, so that the numbers in docs/BENCHMARKS.md come from
// one command.
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/bench.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/oracle.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/process_group.h"
#include "l2a/engine/shapes.h"
#include "l2a/engine/tensor_parallel.h"
#include "l2a/engine/whatif.h"
#include "l2a/profiler/cupti_tracer.h"
#include "l2a/profiler/gpu_clocks.h"
#include "l2a/profiler/kernel_summary.h"
#include "l2a/profiler/remote.h"
#include "l2a/profiler/study.h"
#include "model_source.h"
#include "study_printer.h"
#include "tensor_parallel_option.h"
#include "text_format.h"
#include "threads.h"

namespace l2a::cli {
namespace {

// "8192", "8K" (x 1024) or "1M" (x 1048576).
std::optional<std::int64_t> parse_length(const std::string& item) {
    if (item.empty()) return std::nullopt;
    std::int64_t scale = 1;
    std::string digits = item;
    const char last = digits.back();
    if (last == 'K' || last == 'k') scale = 1024;
    if (last == 'M' || last == 'm') scale = 1024 * 1024;
    if (scale != 1) digits.pop_back();
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    if (digits.size() > 10) return std::nullopt;
    const std::int64_t n = std::stoll(digits) * scale;
    if (n > std::numeric_limits<std::int32_t>::max()) return std::nullopt;
    return n;
}

std::vector<std::int64_t> parse_lengths(const Arguments& args, const std::string& fallback) {
    std::vector<std::int64_t> lengths;
    for (const std::string& item : split_list(args.value("--tokens").value_or(fallback))) {
        const std::optional<std::int64_t> n = parse_length(item);
        if (!n || *n < 2) {
            args.usage_error("--tokens: '" + item +
                             "' is not a length of at least 2 tokens (e.g. 8192 or 8K)");
        }
        lengths.push_back(*n);
    }
    return lengths;
}

// The tokens of the untimed warm-up run before a length's timed runs: --warmup N (at most the
// length) or full (the length itself: the timed runs then find the allocator's blocks and the
// libraries' plans for that length already made). Default 4096.
struct Warmup {
    std::optional<std::int64_t> tokens;  // none: the length itself
    std::int64_t at(std::int64_t length) const {
        return tokens ? std::min(*tokens, length) : length;
    }
    std::string describe() const {
        return tokens ? "a warm-up run of " + group_digits(*tokens) + " tokens (at most the length)"
                      : "a warm-up run at the same length";
    }
    // The setting as asked: a number of tokens, or "full".
    nlohmann::json to_json() const { return tokens ? nlohmann::json(*tokens) : "full"; }
};

Warmup parse_warmup(const Arguments& args) {
    const std::string value = args.value("--warmup").value_or("4096");
    if (value == "full") return {};
    const std::optional<std::int64_t> n = parse_length(value);
    if (!n || *n < 1) {
        args.usage_error("--warmup: '" + value +
                         "' is neither a number of tokens (e.g. 4096 or 4K) nor 'full'");
    }
    return {n};
}

std::vector<double> parse_fractions(const Arguments& args) {
    std::vector<double> fractions;
    for (const std::string& item :
         split_list(args.value("--fractions").value_or("0,0.1,0.2,0.5,1"))) {
        std::size_t used = 0;
        double f = -1;
        try {
            f = std::stod(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || !(f >= 0.0 && f <= 1.0)) {
            args.usage_error("--fractions: '" + item + "' is not a fraction in [0, 1]");
        }
        fractions.push_back(f);
    }
    return fractions;
}

std::vector<AttentionHeads> parse_head_shapes(const Arguments& args) {
    std::vector<AttentionHeads> shapes;
    for (const std::string& item :
         split_list(args.value("--shapes").value_or("28/4/128,32/8/128"))) {
        AttentionHeads h;
        char extra = 0;
        if (std::sscanf(item.c_str(), "%d/%d/%d%c", &h.q_heads, &h.kv_heads, &h.head_dim, &extra) !=
                3 ||
            h.q_heads < 1 || h.kv_heads < 1 || h.q_heads % h.kv_heads != 0 ||
            (h.head_dim != 64 && h.head_dim != 128)) {
            args.usage_error("--shapes: '" + item +
                             "' is not Hq/Hkv/D with Hq a multiple of Hkv and D 64 or 128 "
                             "(e.g. 28/4/128)");
        }
        shapes.push_back(h);
    }
    return shapes;
}

// The machine a benchmark ran on: its load before the run, its cores and the threads used.
nlohmann::json machine_json(const CpuLoad& load) {
    return {{"load_average_1min", load.load1}, {"cores", load.cores}, {"threads", cpu_threads()}};
}

// The header line every benchmark prints: threads, cores and load.
void print_machine_line(const CpuLoad& load) {
    std::printf("%d CPU thread%s; %s\n", cpu_threads(), cpu_threads() == 1 ? "" : "s",
                load_line(load).c_str());
}

double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Every rank's `own` value, indexed by rank (this process's alone without a group). Every rank
// calls it (an all-gather).
std::vector<double> value_of_ranks(ProcessGroup* group, double own) {
    if (!group) return {own};
    std::array<std::byte, sizeof(double)> bytes{};
    std::memcpy(bytes.data(), &own, sizeof own);
    std::vector<double> values;
    for (const std::vector<std::byte>& rank : group->all_gather_bytes(bytes)) {
        double value = std::nan("");
        if (rank.size() == sizeof(double)) std::memcpy(&value, rank.data(), sizeof value);
        values.push_back(value);
    }
    return values;
}

double largest_of(const std::vector<double>& values) {
    double most = 0;
    for (double v : values) {
        if (!std::isnan(v)) most = std::max(most, v);
    }
    return most;
}

// The peak resident memory of each rank of a tensor-parallel run (each holds its shard and the
// replicated weights), or this process's alone. Every rank calls it (an all-gather).
std::vector<double> peak_rss_mib_of_ranks(ProcessGroup* group) {
    return value_of_ranks(group, peak_rss_mib());
}

double median_of(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double routed_share(const PrefillResult& result) {
    double routed = 0;
    std::int64_t counted = 0;
    const std::size_t n = std::min(result.decisions.size(), result.router_logits.size());
    for (std::size_t i = 0; i < n; ++i) {
        // Plain (as-base) layers have NaN logits and no routing.
        if (std::isnan(result.router_logits[i])) continue;
        routed += result.decisions[i];
        ++counted;
    }
    return counted ? routed / static_cast<double>(counted) : std::nan("");
}

// ---- bench prefill: a model folder or the demo model on its own text ---------------------------

// `tensor_parallel` > 1: split across that many processes (this one rank 0, or the rank the
// hidden options name), each timing its own runs; rank 0 reports.
int bench_prefill_folder(const Arguments& args, int tensor_parallel) {
    const std::vector<std::int64_t> lengths = parse_lengths(args, "2048,8192");
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(3);
    RunOptions options;
    try {
        if (auto routing = args.value("--routing"))
            options.routing = RoutingPolicy::parse(*routing);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    apply_threads(args);

    const std::filesystem::path folder = model_folder(args);
    check_tensor_parallel_folder(args, tensor_parallel);
    PrefillHooks hooks;
    hooks.cancel = cancel_flag();
    hooks.group = join_tensor_parallel(args, tensor_parallel);
    const Model model =
        hooks.group ? load_model_shard(folder, {}, hooks.group->rank(), hooks.group->world())
                    : Model::load(folder);
    const Tokenizer* tokenizer = model.tokenizer();
    if (!tokenizer) fail(folder.string(), "the model folder has no tokenizer.json");
    const std::int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    std::string text;
    if (auto doc = args.value("--doc")) {
        text = load_document(*doc).text;
    } else {
        text = demo_document(static_cast<std::size_t>(longest) * 4);
    }
    std::vector<std::int32_t> ids = tokenizer->encode(text).ids;
    if (ids.empty())
        fail(args.value("--doc").value_or("<demo document>"), "the input has no tokens");
    const std::size_t base = ids.size();
    while (static_cast<std::int64_t>(ids.size()) < longest) ids.push_back(ids[ids.size() % base]);

    const CpuLoad load = check_load("bench");
    nlohmann::json rows = nlohmann::json::array();
    const bool json = args.has("--json");
    if (!json) {
        std::printf("model %s (%s, %s parameters), routing %s, %lld repeats%s\n",
                    model_label(args, folder).c_str(), model.summary().model_type.c_str(),
                    format_count_short(model.summary().parameter_count).c_str(),
                    options.routing.to_string().c_str(), static_cast<long long>(repeat),
                    tensor_parallel > 1 ? (", tensor parallel over " +
                                           std::to_string(tensor_parallel) + " processes")
                                              .c_str()
                                        : "");
        print_machine_line(load);
        std::printf("%8s  %10s  %10s  %12s  %8s  %14s\n", "tokens", "median s", "best s",
                    "tokens/s", "global", tensor_parallel > 1 ? "RSS MiB/rank" : "peak RSS MiB");
    }
    const bool quiet = args.has("--quiet") || tensor_parallel_worker();
    for (std::int64_t n : lengths) {
        const std::span<const std::int32_t> input(ids.data(), static_cast<std::size_t>(n));
        const std::string what = group_digits(n) + " tokens";
        if (!quiet) std::fprintf(stderr, "l2a bench: %s: warm-up\n", what.c_str());
        run_prefill(model, input, options, hooks);  // warm-up: first-touch allocations, threads
        std::vector<double> seconds;
        double global = 0;
        for (std::int64_t r = 0; r < repeat; ++r) {
            throw_if_cancelled();
            if (!quiet) {
                std::fprintf(stderr, "l2a bench: %s: run %lld of %lld\n", what.c_str(),
                             static_cast<long long>(r + 1), static_cast<long long>(repeat));
            }
            const PrefillResult result = run_prefill(model, input, options, hooks);
            seconds.push_back(result.wall_seconds);
            double routed = 0;
            for (auto d : result.decisions) routed += d;
            global = routed / static_cast<double>(result.decisions.size());
        }
        std::sort(seconds.begin(), seconds.end());
        const double median = seconds[seconds.size() / 2];
        const double best = seconds.front();
        const double rate = static_cast<double>(n) / median;
        const double rss = largest_of(peak_rss_mib_of_ranks(hooks.group));
        if (json) {
            rows.push_back({{"tokens", n},
                            {"median_seconds", median},
                            {"best_seconds", best},
                            {"tokens_per_second", rate},
                            {"global_fraction", global},
                            {"peak_rss_mib", rss}});
        } else {
            std::printf("%8lld  %10.3f  %10.3f  %12.0f  %7.1f%%  %14.0f\n",
                        static_cast<long long>(n), median, best, rate, global * 100, rss);
            std::fflush(stdout);
        }
    }
    if (json) {
        std::cout << nlohmann::json{{"model", model.summary().model_type},
                                    {"threads", cpu_threads()},
                                    {"machine", machine_json(load)},
                                    {"routing", options.routing.to_string()},
                                    {"repeat", repeat},
                                    {"tensor_parallel", tensor_parallel},
                                    {"results", rows}}
                         .dump(2)
                  << "\n";
    }
    return 0;
}

// ---- bench prefill --shape: a published shape with random weights, ours against the base -----

struct PrefillTiming {
    double median_seconds = 0;
    double best_seconds = 0;
    std::int64_t peak_device_bytes = 0;
    double routed = std::nan("");
    std::int64_t kernels = 0;  // traced runs: kernels recorded in the last run
    KernelSummary summary;     // traced runs: where the last run's GPU time went
    double last_seconds = 0;   // traced runs: the last run's wall time
    // Runs on a GPU: its SM clock during the timed runs (traced: during the last run), and in
    // each kernel of a traced run. Under the power cap the clock moves between runs and machines,
    // and a run's time with it.
    ClockStats clocks;
    std::map<std::string, ClockStats> kernel_clocks;  // by short kernel name
    std::string clock_source;                         // "nvml", or "not sampled: <why>"
};

// How often the GPU's clock is sampled while a benchmark runs.
constexpr std::chrono::microseconds kClockPeriod{5000};

// Nanoseconds on the steady clock, which stamps the samples of untraced runs.
std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// With `trace`, every run (the warm-up too, which pays CUPTI's one-time set-up) runs under the
// kernel tracer; its flush and conversion after the run are not timed. `group`: tensor parallel
// (`model` is this rank's shard; every rank makes the same calls).
PrefillTiming time_prefill(const Model& model, std::span<const std::int32_t> input,
                           const RunOptions& options, std::int64_t repeat, const Warmup& warmup,
                           const std::string& what, bool quiet, ProcessGroup* group,
                           bool trace = false) {
    PrefillTiming t;
    // The GPU whose clock the runs sample (looked up once, not per run).
    std::optional<std::string> pci_bus_id;
    if (const auto device = parse_device(options.device); device && device->is_cuda()) {
        pci_bus_id = cuda_device_info(device->index).pci_bus_id;
    }
    auto run = [&](std::span<const std::int32_t> tokens) {
        PrefillHooks hooks;
        hooks.cancel = cancel_flag();
        hooks.group = group;
        if (!trace) return run_prefill(model, tokens, options, hooks);
        KernelTracer tracer;
        if (!tracer.active()) fail("--trace", "no kernel tracer: " + tracer.reason());
        hooks.observer = &tracer;
        if (pci_bus_id) tracer.sample_clocks(*pci_bus_id);
        PrefillResult result = run_prefill(model, tokens, options, hooks);
        const KernelTimeline timeline = tracer.finish(result.ranges);
        t.kernels = static_cast<std::int64_t>(timeline.kernels.size());
        t.summary = summarize_kernels(timeline.kernels, result.ranges);
        t.last_seconds = result.wall_seconds;
        t.clocks = clock_stats(timeline.clocks);
        t.kernel_clocks = clock_stats_by_kernel(timeline.kernels, timeline.clocks);
        t.clock_source = timeline.clock_source;
        return result;
    };
    // An untimed run first: cuBLAS/cuDNN handles, kernel caches and the allocator's first
    // blocks (at the run's own length, also its blocks and plans of that size).
    const auto warm = static_cast<std::size_t>(warmup.at(static_cast<std::int64_t>(input.size())));
    if (!quiet) {
        std::fprintf(stderr, "l2a bench: %s: warm-up run of %s tokens\n", what.c_str(),
                     group_digits(static_cast<std::int64_t>(warm)).c_str());
    }
    run(input.subspan(0, warm));
    std::vector<double> seconds;
    // Untraced runs on a GPU: one sampler for all the timed runs (started after the warm-up and
    // outside them), keeping the samples taken inside a run.
    std::optional<ClockSampler> sampler;
    std::vector<std::pair<std::int64_t, std::int64_t>> windows;  // each timed run's, steady ns
    if (!trace && pci_bus_id) {
        sampler.emplace(*pci_bus_id, kClockPeriod, steady_ns);
        t.clock_source = sampler->active() ? "not sampled: no sample fell inside the runs"
                                           : "not sampled: " + sampler->reason();
    }
    for (std::int64_t r = 0; r < repeat; ++r) {
        throw_if_cancelled();
        if (!quiet) {
            std::fprintf(stderr, "l2a bench: %s: run %lld of %lld\n", what.c_str(),
                         static_cast<long long>(r + 1), static_cast<long long>(repeat));
        }
        const std::int64_t begin = steady_ns();
        const PrefillResult result = run(input);
        windows.emplace_back(begin, steady_ns());
        seconds.push_back(result.wall_seconds);
        t.peak_device_bytes = std::max(t.peak_device_bytes, result.peak_device_bytes);
        t.routed = routed_share(result);
    }
    if (sampler) {
        std::vector<ClockSample> inside;
        for (const ClockSample& sample : sampler->stop()) {
            const bool in_a_run = std::any_of(windows.begin(), windows.end(), [&](const auto& w) {
                return sample.time_ns >= w.first && sample.time_ns <= w.second;
            });
            if (in_a_run) inside.push_back(sample);
        }
        if (!inside.empty()) {
            t.clocks = clock_stats(inside);
            t.clock_source = "nvml";
        }
    }
    t.median_seconds = median_of(seconds);
    t.best_seconds = *std::min_element(seconds.begin(), seconds.end());
    return t;
}

// Nanoseconds of the kernel summary as seconds.
double seconds_of(std::int64_t ns) { return static_cast<double>(ns) * 1e-9; }

// How many of the kernels that took the most time a traced run's breakdown lists.
constexpr std::size_t kTracedKernelsListed = 15;
// Fewer samples inside a kernel than this give it no clock of its own (about 15 ms of calls).
constexpr std::int64_t kClockSamplesPerKernel = 3;

// The median SM clock of the samples taken inside kernel `name`; none with too few.
std::optional<std::uint32_t> kernel_mhz(const PrefillTiming& t, const std::string& name) {
    const auto it = t.kernel_clocks.find(name);
    if (it == t.kernel_clocks.end() || it->second.samples < kClockSamplesPerKernel) return {};
    return it->second.median_mhz;
}

// "SM clock (NVML, 5 ms, 1071 samples): median 1755 MHz (1410-1980), power 690 W; held by the
// power cap in 64% of samples", or why there are no samples.
std::string clock_line(const PrefillTiming& t) {
    const ClockStats& c = t.clocks;
    if (c.samples == 0) return "SM clock: " + t.clock_source;
    std::string line = "SM clock (NVML, every 5 ms, " + std::to_string(c.samples) +
                       " samples): median " + std::to_string(c.median_mhz) + " MHz (" +
                       std::to_string(c.min_mhz) + "-" + std::to_string(c.max_mhz) + ")";
    if (c.median_watts > 0) line += ", power median " + format_fixed(c.median_watts, 0) + " W";
    if (c.max_celsius > 0) line += ", hottest " + std::to_string(c.max_celsius) + "C";
    line += "; held by the power cap in " + format_percent(c.power_capped, 0) + " of samples";
    if (c.slowed > 0) {
        line += ", slowed by heat or the hardware in " + format_percent(c.slowed, 0);
    }
    return line;
}

// Where the last traced run's GPU time went, under its row of the table: the kernels' summed
// time against the run's wall time, per phase, and the kernels that took the most.
void print_trace_breakdown(const PrefillTiming& t) {
    const KernelSummary& s = t.summary;
    const double wall = t.last_seconds;
    const auto share = [&](std::int64_t ns) {
        return wall > 0 ? format_fixed(seconds_of(ns) / wall * 100.0, 1) + "%" : std::string("-");
    };
    std::printf("          last traced run: %.3f s; kernels %.3f s (%s of it), %lld launches\n",
                wall, seconds_of(s.kernel_ns), share(s.kernel_ns).c_str(),
                static_cast<long long>(s.calls));
    std::string phases = "          by phase:";
    for (const KernelSummary::Total& p : s.phases) {
        phases +=
            " " + p.name + " " + format_fixed(seconds_of(p.ns), 3) + " s (" + share(p.ns) + ")";
        if (&p != &s.phases.back()) phases += ",";
    }
    std::printf("%s\n", phases.c_str());
    // Where the GPU waited for the host: the gaps between kernels, by the phase that ended them.
    const auto ms = [](std::int64_t ns) { return format_fixed(seconds_of(ns) * 1e3, 1) + " ms"; };
    std::string before;
    for (const KernelSummary::Total& p : s.phases) {
        if (p.idle_before_ns > 0) {
            before += (before.empty() ? "" : ", ") + p.name + " " + ms(p.idle_before_ns);
        }
    }
    std::string idle = "          GPU idle between kernels " + ms(s.idle_ns) + " (" +
                       share(s.idle_ns) + ")" + (before.empty() ? "" : ", before " + before);
    std::printf("%s\n", idle.c_str());
    // The same gaps split across range boundaries (a synchronization and the host's work between
    // ranges) and between two kernels of one range (launch gaps, or the host's work inside it).
    if (s.idle_ns > 0) {
        std::string across;
        for (const KernelSummary::Total& p : s.phases) {
            if (p.idle_across_ranges_ns > 0) {
                across += (across.empty() ? "" : ", ") + p.name + " " + ms(p.idle_across_ranges_ns);
            }
        }
        const std::string by_phase = across.empty() ? "" : " (before " + across + ")";
        std::printf("          of it across range boundaries %s%s, within one range %s\n",
                    ms(s.idle_across_ranges_ns).c_str(), by_phase.c_str(),
                    ms(s.idle_ns - s.idle_across_ranges_ns).c_str());
    }
    std::printf("          %s\n", clock_line(t).c_str());
    std::printf("          %-72s  %7s  %8s  %6s  %6s\n", "kernel", "calls", "s", "wall", "MHz");
    for (std::size_t i = 0; i < std::min(kTracedKernelsListed, s.kernels.size()); ++i) {
        const KernelSummary::Total& k = s.kernels[i];
        std::string name = k.name;
        if (name.size() > 72) name = name.substr(0, 69) + "...";
        const auto mhz = kernel_mhz(t, k.name);
        std::printf("          %-72s  %7lld  %8.3f  %6s  %6s\n", name.c_str(),
                    static_cast<long long>(k.calls), seconds_of(k.ns), share(k.ns).c_str(),
                    mhz ? std::to_string(*mhz).c_str() : "-");
    }
}

// SM clock statistics and where they came from ("nvml", or "not sampled: <why>").
nlohmann::json clock_json(const ClockStats& c, const std::string& source) {
    const auto mhz_or_null = [&](std::uint32_t mhz) {
        return c.samples > 0 ? nlohmann::json(mhz) : nlohmann::json(nullptr);
    };
    return {{"source", source},
            {"samples", c.samples},
            {"median_sm_mhz", mhz_or_null(c.median_mhz)},
            {"min_sm_mhz", mhz_or_null(c.min_mhz)},
            {"max_sm_mhz", mhz_or_null(c.max_mhz)},
            {"median_watts", c.median_watts},
            {"power_capped_share", c.power_capped},
            {"slowed_share", c.slowed},
            {"max_celsius",
             c.max_celsius > 0 ? nlohmann::json(c.max_celsius) : nlohmann::json(nullptr)}};
}

// The SM clock of a timing's runs.
nlohmann::json clocks_json(const PrefillTiming& t) { return clock_json(t.clocks, t.clock_source); }

nlohmann::json trace_breakdown_json(const PrefillTiming& t) {
    const auto totals = [](const std::vector<KernelSummary::Total>& list, std::size_t most) {
        nlohmann::json out = nlohmann::json::array();
        for (std::size_t i = 0; i < std::min(most, list.size()); ++i) {
            out.push_back({{"name", list[i].name},
                           {"calls", list[i].calls},
                           {"seconds", seconds_of(list[i].ns)}});
        }
        return out;
    };
    nlohmann::json phases = totals(t.summary.phases, t.summary.phases.size());
    for (std::size_t i = 0; i < phases.size(); ++i) {
        phases[i]["idle_before_seconds"] = seconds_of(t.summary.phases[i].idle_before_ns);
        phases[i]["idle_across_ranges_seconds"] =
            seconds_of(t.summary.phases[i].idle_across_ranges_ns);
    }
    nlohmann::json kernels = totals(t.summary.kernels, kTracedKernelsListed);
    for (nlohmann::json& k : kernels) {
        const auto mhz = kernel_mhz(t, k["name"].get<std::string>());
        k["median_sm_mhz"] = mhz ? nlohmann::json(*mhz) : nlohmann::json(nullptr);
    }
    return {{"wall_seconds", t.last_seconds},
            {"kernel_seconds", seconds_of(t.summary.kernel_ns)},
            {"launches", t.summary.calls},
            {"idle_seconds", seconds_of(t.summary.idle_ns)},
            {"idle_across_ranges_seconds", seconds_of(t.summary.idle_across_ranges_ns)},
            {"phases", phases},
            {"kernels", kernels},
            {"clocks", clocks_json(t)}};
}

// Peak GPU memory; the CPU engine does not track its allocations.
std::string peak_cell(std::int64_t bytes, const std::string& device) {
    return device == "cpu" ? "n/a" : format_bytes_short(bytes);
}

// The options of "ours" in the shape benchmarks: --routing (default random:0.2), --device
// (default cuda), --backend (kernels on CUDA, reference on the CPU), --chunk; time to first
// token (no per-token loss pass); `seed` for random routing.
RunOptions shape_bench_options(const Arguments& args, std::uint64_t seed) {
    RunOptions ours;
    try {
        ours.routing = RoutingPolicy::parse(args.value("--routing").value_or("random:0.2"));
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    ours.device = args.value("--device").value_or("cuda");
    const bool cpu = is_cpu_device(ours.device);
    ours.backend =
        args.value("--backend").value_or(backend_name(cpu ? Backend::Reference : Backend::Kernels));
    if (!parse_backend(ours.backend)) {
        args.usage_error("--backend: '" + ours.backend + "' is not " + kBackendChoices);
    }
    ours.token_nll = false;
    ours.seed = seed;
    if (auto chunk = args.integer("--chunk", 1, 1 << 20)) ours.chunk_size = *chunk;
    return ours;
}

// The peaks of one length on each rank (one entry without tensor parallel): the GPU memory of
// ours and of the base (0 on the CPU, whose engine does not track its allocations) and the
// process's peak resident memory. Every rank calls it (all-gathers).
struct RankPeaks {
    std::vector<double> ours_device_bytes;
    std::vector<double> base_device_bytes;
    std::vector<double> rss_mib;
};
RankPeaks peaks_of_ranks(ProcessGroup* group, const PrefillTiming& ours,
                         const PrefillTiming& base) {
    RankPeaks p;
    p.ours_device_bytes = value_of_ranks(group, static_cast<double>(ours.peak_device_bytes));
    p.base_device_bytes = value_of_ranks(group, static_cast<double>(base.peak_device_bytes));
    p.rss_mib = peak_rss_mib_of_ranks(group);
    return p;
}

nlohmann::json ranks_json(const RankPeaks& p, bool with_base) {
    nlohmann::json ranks = nlohmann::json::array();
    for (std::size_t r = 0; r < p.rss_mib.size(); ++r) {
        ranks.push_back(
            {{"rank", r},
             {"ours_peak_device_bytes", static_cast<std::int64_t>(p.ours_device_bytes[r])},
             {"peak_rss_mib", p.rss_mib[r]}});
        if (with_base) {
            ranks.back()["base_peak_device_bytes"] =
                static_cast<std::int64_t>(p.base_device_bytes[r]);
        }
    }
    return ranks;
}

// `tensor_parallel` > 1: split across that many processes (this one rank 0, or the rank the
// hidden options name), each holding its shard of the same random model (the same seed) and
// running the same random tokens; rank 0 reports, with each rank's peak memory.
int bench_prefill_shape(const Arguments& args, int tensor_parallel) {
    if (args.has("--model") || args.has("--demo") || args.has("--doc")) {
        args.usage_error(
            "--shape benchmarks random weights on random tokens: it takes no "
            "--model, --demo or --doc");
    }
    const std::string shape_name = *args.value("--shape");
    ModelConfig config;
    try {
        config =
            published_shape(shape_name, true, args.integer("--window", 1, 1 << 30).value_or(4095));
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    check_tensor_parallel_shape(args, tensor_parallel, config.num_attention_heads,
                                config.num_key_value_heads, config.intermediate_size,
                                "shape " + shape_name);
    const std::vector<std::int64_t> lengths = parse_lengths(args, "32768");
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(3);
    const Warmup warmup = parse_warmup(args);
    const std::uint64_t seed = args.unsigned_integer("--seed").value_or(0);
    RunOptions ours = shape_bench_options(args, seed);
    const bool cpu = is_cpu_device(ours.device);
    apply_threads(args);
    const bool json = args.has("--json");
    const bool quiet = args.has("--quiet") || tensor_parallel_worker();
    const bool trace = args.has("--trace");
    // Ours alone: at 512K tokens and beyond the base's full causal attention takes many times
    // longer than ours.
    const bool with_base = !args.has("--no-base");
    if (trace && cpu) args.usage_error("--trace: the kernel tracer needs --device cuda");
    if (trace && tensor_parallel > 1) {
        args.usage_error("--trace: the kernel tracer runs without --tensor-parallel");
    }

    ProcessGroup* const group = join_tensor_parallel(args, tensor_parallel);
    // Tensor parallel on GPUs: rank r runs on cuda:r, its group's device.
    if (group && !cpu) ours.device = group->device();
    RunOptions base = ours;
    base.as_base = true;
    base.backend = backend_name(cpu ? Backend::Reference : Backend::Sdpa);
    base.routing = RoutingPolicy{};
    require_device(ours.device);
    const CpuLoad load = check_load("bench");
    Placement placement;
    placement.device = ours.device;
    placement.dtype = args.value("--dtype").value_or(
        weight_dtype_name(cpu ? WeightDtype::Fp32 : WeightDtype::Bf16));
    if (!quiet) std::fprintf(stderr, "l2a bench: making a random %s model\n", shape_name.c_str());
    // Each rank's shard of Model::random(config, seed): together, the single process's model.
    const Model model =
        group ? random_model_shard(config, seed, placement, group->rank(), group->world())
              : Model::random(config, seed, placement);
    const ModelSummary& s = model.summary();

    const std::int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    std::vector<std::int32_t> ids(static_cast<std::size_t>(longest));
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::int32_t> token(0,
                                                      static_cast<std::int32_t>(s.vocab_size - 1));
    for (std::int32_t& id : ids) id = token(rng);

    const std::string ours_label =
        "backend " + ours.backend + ", routing " + ours.routing.to_string();
    const std::string base_label =
        "backend " + base.backend + ", run as the base model (full causal attention everywhere)";
    std::string device_name = ours.device;
    if (!cpu) device_name = cuda_device_info(parse_device(ours.device)->index).name;
    if (!json) {
        std::printf(
            "shape %s (%s, %lld layers, %lld/%lld heads, head dim %lld, %s parameters, "
            "W=%lld), random weights (seed %llu)\n",
            shape_name.c_str(), s.model_type.c_str(), static_cast<long long>(s.num_layers),
            static_cast<long long>(s.num_heads), static_cast<long long>(s.num_kv_heads),
            static_cast<long long>(s.head_dim), format_count_short(s.parameter_count).c_str(),
            static_cast<long long>(s.sliding_window), static_cast<unsigned long long>(seed));
        std::printf("%s, %s; time to first token, median of %lld runs after %s%s\n",
                    device_name.c_str(), model.placement().dtype.c_str(),
                    static_cast<long long>(repeat), warmup.describe().c_str(),
                    tensor_parallel > 1
                        ? ("; tensor parallel over " + std::to_string(tensor_parallel) +
                           (cpu ? " processes" : " GPUs (rank r on cuda:r)"))
                              .c_str()
                        : "");
        std::printf("ours: %s; base: %s\n", ours_label.c_str(),
                    with_base ? base_label.c_str() : "not run (--no-base)");
        print_machine_line(load);
        if (trace) std::printf("traced: ours again under the CUPTI kernel tracer\n");
        std::printf("%8s  %9s  %9s  %10s  %7s  %10s  %10s", "tokens", "ours s", "base s",
                    "base/ours", "global", tensor_parallel > 1 ? "ours max" : "ours peak",
                    tensor_parallel > 1 ? "base max" : "base peak");
        std::printf(trace ? "  %9s  %8s  %8s\n" : "\n", "traced s", "overhead", "kernels");
    }
    nlohmann::json rows = nlohmann::json::array();
    for (std::int64_t n : lengths) {
        const std::span<const std::int32_t> input(ids.data(), static_cast<std::size_t>(n));
        const std::string at = " at " + std::to_string(n) + " tokens";
        const PrefillTiming a =
            time_prefill(model, input, ours, repeat, warmup, "ours" + at, quiet, group);
        const PrefillTiming b =
            with_base ? time_prefill(model, input, base, repeat, warmup, "base" + at, quiet, group)
                      : PrefillTiming{};
        const double ratio = b.median_seconds / a.median_seconds;
        PrefillTiming traced;
        if (trace) {
            traced = time_prefill(model, input, ours, repeat, warmup, "ours traced" + at, quiet,
                                  group, true);
        }
        const double overhead = (traced.median_seconds / a.median_seconds - 1.0) * 100.0;
        const RankPeaks peaks = peaks_of_ranks(group, a, b);
        // The largest rank's (this process's alone without tensor parallel).
        const auto ours_peak = static_cast<std::int64_t>(largest_of(peaks.ours_device_bytes));
        const auto base_peak = static_cast<std::int64_t>(largest_of(peaks.base_device_bytes));
        if (json) {
            rows.push_back({{"tokens", n},
                            {"warmup_tokens", warmup.at(n)},
                            {"ours_median_seconds", a.median_seconds},
                            {"ours_best_seconds", a.best_seconds},
                            {"ours_global_fraction", a.routed},
                            {"ours_peak_device_bytes", ours_peak},
                            {"ranks", ranks_json(peaks, with_base)}});
            if (!cpu) rows.back()["ours_clocks"] = clocks_json(a);
            if (with_base) {
                rows.back()["base_median_seconds"] = b.median_seconds;
                rows.back()["base_best_seconds"] = b.best_seconds;
                rows.back()["base_over_ours"] = ratio;
                rows.back()["base_peak_device_bytes"] = base_peak;
                if (!cpu) rows.back()["base_clocks"] = clocks_json(b);
            }
            if (trace) {
                rows.back()["ours_traced_median_seconds"] = traced.median_seconds;
                rows.back()["trace_overhead_percent"] = overhead;
                rows.back()["traced_kernels"] = traced.kernels;
                rows.back()["traced_breakdown"] = trace_breakdown_json(traced);
            }
        } else {
            std::printf("%8lld  %9.3f  %9s  %10s  %6.1f%%  %10s  %10s", static_cast<long long>(n),
                        a.median_seconds,
                        with_base ? format_fixed(b.median_seconds, 3).c_str() : "-",
                        with_base ? (format_fixed(ratio, 2) + "x").c_str() : "-", a.routed * 100,
                        peak_cell(ours_peak, ours.device).c_str(),
                        with_base ? peak_cell(base_peak, ours.device).c_str() : "-");
            if (trace) {
                std::printf("  %9.3f  %7.1f%%  %8lld", traced.median_seconds, overhead,
                            static_cast<long long>(traced.kernels));
            }
            std::printf("\n");
            // The clock the timed runs ran at (this process's GPU with tensor parallel).
            if (!cpu) {
                std::printf("          ours: %s\n", clock_line(a).c_str());
                if (with_base) std::printf("          base: %s\n", clock_line(b).c_str());
            }
            if (trace) print_trace_breakdown(traced);
            // Tensor parallel: each rank's peaks under its row.
            for (std::size_t r = 0; tensor_parallel > 1 && r < peaks.rss_mib.size(); ++r) {
                std::string line = "          rank " + std::to_string(r) + ": ";
                if (!cpu) {
                    line +=
                        "ours peak " +
                        format_bytes_short(static_cast<std::int64_t>(peaks.ours_device_bytes[r])) +
                        ", ";
                    if (with_base) {
                        line += "base peak " +
                                format_bytes_short(
                                    static_cast<std::int64_t>(peaks.base_device_bytes[r])) +
                                ", ";
                    }
                }
                line += "peak RSS " + format_fixed(peaks.rss_mib[r], 0) + " MiB";
                std::printf("%s\n", line.c_str());
            }
            std::fflush(stdout);
        }
    }
    if (json) {
        std::cout << nlohmann::json{{"shape", shape_name},
                                    {"model_type", s.model_type},
                                    {"parameters", s.parameter_count},
                                    {"device", device_name},
                                    {"dtype", model.placement().dtype},
                                    {"machine", machine_json(load)},
                                    {"seed", seed},
                                    {"repeat", repeat},
                                    {"warmup", warmup.to_json()},
                                    {"tensor_parallel", tensor_parallel},
                                    {"ours",
                                     {{"backend", ours.backend},
                                      {"routing", ours.routing.to_string()}}},
                                    {"base", with_base ? nlohmann::json{{"backend", base.backend},
                                                                        {"as_base", true}}
                                                       : nlohmann::json(nullptr)},
                                    {"results", rows}}
                         .dump(2)
                  << "\n";
    }
    return 0;
}

// ---- bench prefill --engine: the time to first token through a remote engine ----------------

// Each run's time as the engine measured it (what a local run on that machine takes) against
// the time the client waited for its profile: the remote engine's overhead, and the profile's
// size on the wire.
int bench_prefill_engine(const Arguments& args) {
    if (!args.has("--shape")) {
        args.usage_error("with --engine, bench prefill runs --shape NAME (random weights)");
    }
    for (const char* option : {"--trace", "--window", "--no-base"}) {
        if (args.has(option)) args.usage_error(std::string(option) + " is not used with --engine");
    }
    ModelSpec spec;
    spec.shape = *args.value("--shape");
    try {
        published_shape(spec.shape);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    spec.seed = args.unsigned_integer("--seed").value_or(0);
    const std::vector<std::int64_t> lengths = parse_lengths(args, "32768");
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(3);
    const Warmup warmup = parse_warmup(args);
    const RunOptions ours = shape_bench_options(args, spec.seed);
    spec.placement.device = ours.device;
    if (auto dtype = args.value("--dtype")) spec.placement.dtype = *dtype;
    int threads = 0;
    prepare_compute(args, ours.device, threads);
    const bool json = args.has("--json");
    const bool quiet = args.has("--quiet");

    const std::unique_ptr<Study> study = open_study(args);
    StudyPrinter printer(quiet);
    const ModelSummary model = study->open_model(spec, printer.events());
    printer.finish();
    const std::int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    std::vector<std::int32_t> ids(static_cast<std::size_t>(longest));
    std::mt19937_64 rng(spec.seed);
    std::uniform_int_distribution<std::int32_t> token(
        0, static_cast<std::int32_t>(model.vocab_size - 1));
    for (std::int32_t& id : ids) id = token(rng);

    // --compare-local: the same runs through a study in this process (the model loaded here
    // too), so that the overhead is the remote client's wait against a local run's.
    std::unique_ptr<Study> local;
    if (args.has("--compare-local")) {
        local = make_local_study({.cancel = cancel_flag()});
        local->open_model(spec, printer.events());
        printer.finish();
    }
    const auto run_on = [&](Study& on, std::int64_t n, double& engine_s, double& client_s,
                            std::int64_t& profile_bytes) {
        StudyRunSpec r;
        r.document.token_ids.assign(ids.begin(), ids.begin() + n);
        r.document.label = "<random tokens>";
        r.options = ours;
        r.trace = false;
        r.keep_checkpoints = false;  // the prefill alone, as a local run times it
        r.threads = threads;
        const auto t0 = std::chrono::steady_clock::now();
        const StudyRunResult result = on.run(r);
        client_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        engine_s = result.profile->wall_seconds;
        profile_bytes = result.transfer_bytes;
    };
    const auto run = [&](std::int64_t n, double& engine_s, double& client_s,
                         std::int64_t& profile_bytes) {
        run_on(*study, n, engine_s, client_s, profile_bytes);
    };
    if (!json) {
        std::printf("shape %s (%lld layers), random weights (seed %llu) on %s\n",
                    spec.shape.c_str(), static_cast<long long>(model.num_layers),
                    static_cast<unsigned long long>(spec.seed), study->where().c_str());
        std::printf("time to first token, median of %lld runs after %s; routing %s\n",
                    static_cast<long long>(repeat), warmup.describe().c_str(),
                    ours.routing.to_string().c_str());
        if (local) {
            std::printf("local: the same runs through a study in this process, on %s\n",
                        local->where().c_str());
            std::printf("%8s  %10s  %10s  %9s  %10s  %9s  %12s\n", "tokens", "engine s", "client s",
                        "overhead", "local s", "vs local", "profile");
        } else {
            std::printf("%8s  %10s  %10s  %9s  %12s\n", "tokens", "engine s", "client s",
                        "overhead", "profile");
        }
    }
    nlohmann::json rows = nlohmann::json::array();
    for (std::int64_t n : lengths) {
        double engine_s = 0, client_s = 0;
        std::int64_t bytes = 0;
        if (!quiet) {
            std::fprintf(stderr, "l2a bench: %lld tokens: warm-up run of %s tokens\n", (long long)n,
                         group_digits(warmup.at(n)).c_str());
        }
        run(warmup.at(n), engine_s, client_s, bytes);
        std::vector<double> engine, client;
        for (std::int64_t i = 0; i < repeat; ++i) {
            throw_if_cancelled();
            if (!quiet) {
                std::fprintf(stderr, "l2a bench: %lld tokens: run %lld of %lld\n", (long long)n,
                             (long long)(i + 1), (long long)repeat);
            }
            run(n, engine_s, client_s, bytes);
            engine.push_back(engine_s);
            client.push_back(client_s);
        }
        const double e = median_of(engine);
        const double c = median_of(client);
        const double overhead = (c / e - 1.0) * 100.0;
        double l = 0.0;
        if (local) {
            double local_engine = 0, local_client = 0;
            std::int64_t local_bytes = 0;
            run_on(*local, warmup.at(n), local_engine, local_client, local_bytes);
            std::vector<double> waits;
            for (std::int64_t i = 0; i < repeat; ++i) {
                throw_if_cancelled();
                run_on(*local, n, local_engine, local_client, local_bytes);
                waits.push_back(local_client);
            }
            l = median_of(waits);
        }
        const double vs_local = local ? (c / l - 1.0) * 100.0 : 0.0;
        if (json) {
            nlohmann::json row{{"tokens", n},
                               {"warmup_tokens", warmup.at(n)},
                               {"engine_median_seconds", e},
                               {"client_median_seconds", c},
                               {"overhead_percent", overhead},
                               {"profile_bytes", bytes}};
            if (local) {
                row["local_median_seconds"] = l;
                row["overhead_vs_local_percent"] = vs_local;
            }
            rows.push_back(row);
        } else if (local) {
            std::printf("%8lld  %10.3f  %10.3f  %8.1f%%  %10.3f  %8.1f%%  %12s\n",
                        static_cast<long long>(n), e, c, overhead, l, vs_local,
                        format_bytes_short(bytes).c_str());
            std::fflush(stdout);
        } else {
            std::printf("%8lld  %10.3f  %10.3f  %8.1f%%  %12s\n", static_cast<long long>(n), e, c,
                        overhead, format_bytes_short(bytes).c_str());
            std::fflush(stdout);
        }
    }
    if (json) {
        std::cout << nlohmann::json{{"shape", spec.shape},
                                    {"engine", study->where()},
                                    {"repeat", repeat},
                                    {"warmup", warmup.to_json()},
                                    {"routing", ours.routing.to_string()},
                                    {"results", rows}}
                         .dump(2)
                  << "\n";
    }
    return 0;
}

int bench_prefill(std::span<const std::string_view> raw) {
    Arguments args("bench",
                   {kModelOption,
                    kDemoOption,
                    {"--doc", true},
                    {"--shape", true},
                    {"--tokens", true},
                    {"--repeat", true},
                    {"--warmup", true},
                    {"--routing", true},
                    kThreadsOption,
                    {"--device", true},
                    {"--dtype", true},
                    {"--backend", true},
                    {"--seed", true},
                    {"--window", true},
                    {"--chunk", true},
                    {"--trace", false},
                    {"--no-base", false},
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--quiet", false},
                    {"--json", false},
                    {"--compare-local", false},
                    kTensorParallelOption,
                    kTensorParallelRankOption,
                    kTensorParallelPortOption,
                    kTensorParallelRunOption},
                   raw);
    if (args.help()) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    // A model folder runs on the CPU here (--device is refused below unless with --shape);
    // --shape runs on --device, CUDA unless given.
    const int tensor_parallel_ranks = tensor_parallel(
        args, args.has("--shape") ? args.value("--device").value_or("cuda") : std::string("cpu"));
    if (remote_engine(args)) return bench_prefill_engine(args);
    if (args.has("--compare-local")) args.usage_error("--compare-local needs --engine URL");
    if (args.has("--shape")) return bench_prefill_shape(args, tensor_parallel_ranks);
    for (const char* option : {"--device", "--dtype", "--backend", "--seed", "--window", "--chunk",
                               "--trace", "--no-base", "--warmup"}) {
        if (args.has(option)) {
            args.usage_error(std::string(option) + " applies to --shape (random weights) only");
        }
    }
    return bench_prefill_folder(args, tensor_parallel_ranks);
}

// ---- bench attention -------------------------------------------------------------------------

std::string cell_ms(const BenchTime& t) { return t.available ? format_fixed(t.ms, 2) : "n/a"; }

std::string cell_tflops(const BenchTime& t, double flop) {
    return t.available && t.ms > 0 ? format_fixed(flop / (t.ms * 1e-3) / 1e12, 0) : "n/a";
}

std::string cell_ratio(const BenchTime& ours, const BenchTime& base) {
    return ours.available && base.available && base.ms > 0 ? format_fixed(ours.ms / base.ms, 2)
                                                           : "n/a";
}

// "28/4/128": query heads, KV heads, head dimension.
std::string heads_label(const AttentionHeads& h) {
    return std::to_string(h.q_heads) + "/" + std::to_string(h.kv_heads) + "/" +
           std::to_string(h.head_dim);
}

// The GPU's clock while one part's timed runs went: the samples inside its bracket, and where
// they came from.
struct PartClock {
    ClockStats stats;
    std::string source;  // "nvml", or "not sampled: <why>"
};

// `unsampled`: why the bench's sampler never started ("" when it sampled).
PartClock part_clock(const BenchTime& t, std::span<const ClockSample> samples,
                     const std::string& unsampled) {
    if (!unsampled.empty()) return {{}, "not sampled: " + unsampled};
    std::vector<ClockSample> inside;
    for (const ClockSample& sample : samples) {
        for (const BenchTime::Span& span : t.spans) {
            if (sample.time_ns >= span.begin_ns && sample.time_ns <= span.end_ns) {
                inside.push_back(sample);
                break;
            }
        }
    }
    if (inside.empty()) return {{}, "not sampled: no sample fell inside the timed runs"};
    return {clock_stats(inside), "nvml"};
}

// A share of samples as a whole percent without the sign, never rounded to all or none:
// "31", "100", ">99" (1 to 5 of 1,000 samples were not), "<1".
std::string share_digits(double share) {
    if (!std::isfinite(share)) return "?";
    std::string text = format_percent(share, 0);
    text.pop_back();  // the '%'
    return text;
}

// "1335 P31 H69 84C": the median SM clock, the share of samples (%) held by the power cap (P)
// and, where any, slowed for heat or by the hardware (H: NVML's thermal and hardware-slowdown
// reasons; the latter includes a power brake), and the hottest sample's temperature where NVML
// reads it, so that a low clock says what held it.
// "-" with fewer samples than a kernel of a traced run needs for a clock of its own.
std::string cell_clock(const PartClock& c) {
    if (c.stats.samples < kClockSamplesPerKernel) return "-";
    std::string cell =
        std::to_string(c.stats.median_mhz) + " P" + share_digits(c.stats.power_capped);
    if (c.stats.slowed > 0) cell += " H" + share_digits(c.stats.slowed);
    if (c.stats.max_celsius > 0) cell += " " + std::to_string(c.stats.max_celsius) + "C";
    return cell;
}

// `origin_ns`: the steady clock when the benchmark began, from which the spans are placed.
nlohmann::json time_json(const BenchTime& t, double flop, const PartClock& clock,
                         std::int64_t origin_ns) {
    if (!t.available) return {{"available", false}, {"reason", t.reason}};
    // When the timed runs went: one span in blocks, one per run interleaved, each as [begin,
    // end] in ms since the benchmark began, and how long the spans lasted in all (the clock's
    // samples come from inside them).
    double span_ms = 0;
    nlohmann::json at = nlohmann::json::array();
    for (const BenchTime::Span& span : t.spans) {
        span_ms += static_cast<double>(span.end_ns - span.begin_ns) * 1e-6;
        at.push_back({static_cast<double>(span.begin_ns - origin_ns) * 1e-6,
                      static_cast<double>(span.end_ns - origin_ns) * 1e-6});
    }
    return {{"ms", t.ms},
            {"tflops", t.ms > 0 ? flop / (t.ms * 1e-3) / 1e12 : 0.0},
            {"timed_spans", t.spans.size()},
            {"timed_span_ms", span_ms},
            {"timed_spans_at_ms", at},
            {"clock", clock_json(clock.stats, clock.source)}};
}

int bench_attention_command(std::span<const std::string_view> raw) {
    Arguments args("bench",
                   {{"--tokens", true},
                    {"--fractions", true},
                    {"--shapes", true},
                    {"--window", true},
                    {"--repeat", true},
                    {"--seed", true},
                    {"--device", true},
                    {"--dtype", true},
                    {"--order", true},
                    kThreadsOption,
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    apply_threads(args);
    AttentionBenchOptions options;
    const std::string order = args.value("--order").value_or("blocks");
    if (order != "interleaved" && order != "blocks") {
        args.usage_error("--order: the parts' timed runs are 'interleaved' or in 'blocks', not '" +
                         order + "'");
    }
    options.interleaved = order == "interleaved";
    const std::string dtype = args.value("--dtype").value_or("bf16");
    if (dtype != "bf16" && dtype != "fp16") {
        args.usage_error("--dtype: bench attention times bf16 or fp16, not '" + dtype + "'");
    }
    options.fp16 = dtype == "fp16";
    options.tokens = parse_lengths(args, "8K,32K,64K,128K");
    options.fractions = parse_fractions(args);
    options.shapes = parse_head_shapes(args);
    options.window =
        args.integer("--window", 1, std::numeric_limits<std::int32_t>::max()).value_or(4095);
    options.repeat = static_cast<int>(args.integer("--repeat", 1, 1000).value_or(10));
    options.seed = args.unsigned_integer("--seed").value_or(0);
    options.device = args.value("--device").value_or("cuda");
    if (const auto device = parse_device(options.device); !device || !device->is_cuda()) {
        args.usage_error("--device: bench attention runs on cuda or cuda:N, not '" +
                         options.device + "'");
    }
    if (!cuda_built()) {
        fail("",
             "bench attention: this build has no CUDA support (it was configured with "
             "L2A_WITH_CUDA=OFF); the attention kernels need a CUDA build and a GPU");
    }
    try {
        require_device(options.device);
    } catch (const Error& e) {
        fail("", std::string("bench attention needs a GPU: ") + e.what());
    }
    const bool json = args.has("--json");
    const CpuLoad load = check_load("bench");
    if (!args.has("--quiet")) {
        options.progress = [](std::string_view what) {
            std::fprintf(stderr, "l2a bench attention: %.*s\n", static_cast<int>(what.size()),
                         what.data());
        };
    }
    // The GPU's clock through the whole grid, sorted out by each part's timed runs after.
    ClockSampler sampler(cuda_device_info(parse_device(options.device)->index).pci_bus_id,
                         kClockPeriod, steady_ns);
    const std::int64_t origin_ns = steady_ns();
    const AttentionBenchResult result = bench_attention(options);
    // Whether it sampled, and why not, read before stop() (after it the sampler is inactive).
    const bool sampled = sampler.active();
    const std::string unsampled = sampled ? "" : sampler.reason();
    const std::vector<ClockSample> samples = sampler.stop();
    struct RowClocks {
        PartClock global, local, whole, cudnn, flash;
    };
    std::vector<RowClocks> clocks;
    for (const AttentionBenchRow& r : result.rows) {
        const auto of = [&](const BenchTime& t) { return part_clock(t, samples, unsampled); };
        clocks.push_back({of(r.global), of(r.local), of(r.whole), of(r.cudnn), of(r.flash)});
    }

    if (json) {
        nlohmann::json rows = nlohmann::json::array();
        for (std::size_t i = 0; i < result.rows.size(); ++i) {
            const AttentionBenchRow& r = result.rows[i];
            const RowClocks& c = clocks[i];
            const double whole_flop = r.global_flop + r.local_flop;
            rows.push_back({{"tokens", r.tokens},
                            {"q_heads", r.heads.q_heads},
                            {"kv_heads", r.heads.kv_heads},
                            {"head_dim", r.heads.head_dim},
                            {"fraction", r.fraction},
                            {"routed", r.routed},
                            {"global_flop", r.global_flop},
                            {"local_flop", r.local_flop},
                            {"full_causal_flop", r.full_flop},
                            {"global", time_json(r.global, r.global_flop, c.global, origin_ns)},
                            {"local", time_json(r.local, r.local_flop, c.local, origin_ns)},
                            {"whole", time_json(r.whole, whole_flop, c.whole, origin_ns)},
                            {"sdpa_cudnn", time_json(r.cudnn, r.full_flop, c.cudnn, origin_ns)},
                            {"sdpa_flash", time_json(r.flash, r.full_flop, c.flash, origin_ns)},
                            {"whole_over_cudnn", r.whole.available && r.cudnn.available
                                                     ? nlohmann::json(r.whole.ms / r.cudnn.ms)
                                                     : nlohmann::json(nullptr)},
                            {"global_over_cudnn", r.global.available && r.cudnn.available
                                                      ? nlohmann::json(r.global.ms / r.cudnn.ms)
                                                      : nlohmann::json(nullptr)},
                            {"global_max_relative_error", r.global_error},
                            {"local_max_relative_error", r.local_error}});
        }
        std::cout << nlohmann::json{{"device", result.device},
                                    {"machine", machine_json(load)},
                                    {"dtype", dtype},
                                    {"window", options.window},
                                    {"repeat", options.repeat},
                                    {"order", order},
                                    {"seed", options.seed},
                                    {"global_includes",
                                     "routed-query compaction, packed global attention, gated "
                                     "add into the residual"},
                                    {"whole_includes", "local part then global part"},
                                    {"results", rows}}
                         .dump(2)
                  << "\n";
        return 0;
    }

    std::printf(
        "attention on %s, %s, W=%lld, random routing (seed %llu), median of %d runs; "
        "times in ms, TFLOP/s counted exactly\n",
        result.device.c_str(), dtype.c_str(), static_cast<long long>(options.window),
        static_cast<unsigned long long>(options.seed), options.repeat);
    print_machine_line(load);
    std::printf(
        "global = routed-query compaction + packed global attention + gated add; "
        "local = sliding window;\nwhole = local then global in sequence; cuDNN, flash = "
        "SDPA full causal with that backend forced\n");
    if (options.interleaved) {
        std::printf(
            "timed in rounds: each round runs global, local, whole and cuDNN once, in a balanced "
            "order (each\npart after every other equally often in each cycle of rounds); flash in "
            "a block of its own\n");
    } else {
        std::printf(
            "timed in blocks: cuDNN's runs, flash's, then each row's global, local and whole, "
            "each part's runs\nback to back\n");
    }
    std::printf(
        "every row checked first against fp32 on sampled rows (max relative error "
        "shown as err)\n");
    const char* header_format =
        "%7s %-10s %6s  %8s %5s  %7s %5s  %8s %5s  %8s %5s  %8s %5s  "
        "%7s %7s  %7s\n";
    const char* row_format =
        "%7s %-10s %5.0f%%  %8s %5s  %7s %5s  %8s %5s  %8s %5s  %8s %5s  "
        "%7s %7s  %7s\n";
    std::printf(header_format, "tokens", "Hq/Hkv/D", "routed", "global", "TF/s", "local", "TF/s",
                "whole", "TF/s", "cuDNN", "TF/s", "flash", "TF/s", "whl/cDN", "glb/cDN", "err");
    std::string previous;
    for (const AttentionBenchRow& r : result.rows) {
        const std::string heads = heads_label(r.heads);
        const std::string group = std::to_string(r.tokens) + heads;
        if (!previous.empty() && group != previous) std::printf("\n");
        previous = group;
        char err[32];
        std::snprintf(err, sizeof err, "%.1e", std::max(r.global_error, r.local_error));
        std::printf(
            row_format, std::to_string(r.tokens).c_str(), heads.c_str(), r.fraction * 100,
            cell_ms(r.global).c_str(), cell_tflops(r.global, r.global_flop).c_str(),
            cell_ms(r.local).c_str(), cell_tflops(r.local, r.local_flop).c_str(),
            cell_ms(r.whole).c_str(), cell_tflops(r.whole, r.global_flop + r.local_flop).c_str(),
            cell_ms(r.cudnn).c_str(), cell_tflops(r.cudnn, r.full_flop).c_str(),
            cell_ms(r.flash).c_str(), cell_tflops(r.flash, r.full_flop).c_str(),
            cell_ratio(r.whole, r.cudnn).c_str(), cell_ratio(r.global, r.cudnn).c_str(), err);
    }
    // The clock of each part's timed runs: under the power cap it differs between parts (the
    // window kernel, the routed kernel and cuDNN draw different power), and a time with it.
    if (!sampled) {
        std::printf("\nSM clock: not sampled: %s\n", unsampled.c_str());
    } else {
        std::printf(
            "\nSM clock in each part's timed runs (NVML, every 5 ms): median MHz, P: %% of samples "
            "held by the power cap,\nH: %% slowed for heat or by the hardware (where any), C: the "
            "hottest sample's degrees Celsius;\n- under %lld samples\n",
            static_cast<long long>(kClockSamplesPerKernel));
        const char* clock_format = "%7s %-10s %6s  %19s %19s %19s %19s %19s\n";
        std::printf(clock_format, "tokens", "Hq/Hkv/D", "routed", "global", "local", "whole",
                    "cuDNN", "flash");
        for (std::size_t i = 0; i < result.rows.size(); ++i) {
            const AttentionBenchRow& r = result.rows[i];
            const RowClocks& c = clocks[i];
            std::printf(
                clock_format, std::to_string(r.tokens).c_str(), heads_label(r.heads).c_str(),
                (format_fixed(r.fraction * 100, 0) + "%").c_str(), cell_clock(c.global).c_str(),
                cell_clock(c.local).c_str(), cell_clock(c.whole).c_str(),
                cell_clock(c.cudnn).c_str(), cell_clock(c.flash).c_str());
        }
    }
    // Unavailable baselines, each reason once.
    std::vector<std::string> said;
    for (const AttentionBenchRow& r : result.rows) {
        for (const auto& [name, t] : {std::pair{"cuDNN", &r.cudnn}, std::pair{"flash", &r.flash}}) {
            if (t->available) continue;
            const std::string line = std::string(name) + " n/a: " + t->reason;
            if (std::find(said.begin(), said.end(), line) != said.end()) continue;
            said.push_back(line);
            std::printf("%s\n", line.c_str());
        }
    }
    return 0;
}

// ---- bench whatif: how long a live what-if takes after a base run -----------------------------

// The model of a study benchmark (bench whatif, bench explain): one of --model DIR, --demo or
// --shape NAME (random weights seeded by --seed, random token ids: no --doc), on --device
// (default cpu) in --dtype.
ModelSpec study_bench_model(const Arguments& args) {
    const int sources =
        int(args.has("--model")) + int(args.has("--demo")) + int(args.has("--shape"));
    if (sources != 1) args.usage_error("give one of --model DIR, --demo or --shape NAME");
    if (args.has("--shape") && args.has("--doc")) {
        args.usage_error("--shape runs random token ids: it takes no --doc");
    }
    ModelSpec spec;
    if (auto shape = args.value("--shape")) {
        spec.shape = *shape;
        try {
            published_shape(spec.shape);
        } catch (const Error& e) {
            args.usage_error(e.what());
        }
    } else {
        spec.folder = model_spec(args).folder;
    }
    spec.seed = args.unsigned_integer("--seed").value_or(0);
    spec.placement.device = args.value("--device").value_or("cpu");
    if (auto dtype = args.value("--dtype")) spec.placement.dtype = *dtype;
    return spec;
}

// --routing of a study benchmark: random weights route at random through a learned router, so
// for --shape a fixed share (random:0.2) says more; a model folder's router by default.
RoutingPolicy study_bench_routing(const Arguments& args, const ModelSpec& spec) {
    try {
        return RoutingPolicy::parse(
            args.value("--routing").value_or(spec.shape.empty() ? "learned" : "random:0.2"));
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
}

// A timing table: each label padded to the longest, its time in the unit that suits it
// ("6.818 s", "212.4 ms", "85.3 µs": short runs are not shown as "0.000 s"), then a note.
struct TimingLine {
    std::string label;
    double seconds;
    std::string note;
};
void print_timings(const std::vector<TimingLine>& lines) {
    std::size_t width = 0;
    for (const TimingLine& l : lines) width = std::max(width, l.label.size());
    for (const TimingLine& l : lines) {
        const std::string time = format_duration(l.seconds);
        std::printf("%-*s  %10s%s%s\n", static_cast<int>(width), l.label.c_str(), time.c_str(),
                    l.note.empty() ? "" : "   ", l.note.c_str());
    }
}

// The token ids of a what-if benchmark: the document (--doc, else the demo document) through the
// model folder's tokenizer, repeated until there are `tokens`; random ids (seeded) for --shape.
std::vector<std::int32_t> whatif_bench_tokens(const Arguments& args, const ModelSpec& spec,
                                              std::int64_t tokens) {
    std::vector<std::int32_t> ids;
    if (!spec.shape.empty()) {
        std::mt19937_64 rng(spec.seed);
        std::uniform_int_distribution<std::int32_t> token(
            0, static_cast<std::int32_t>(published_shape(spec.shape).vocab_size - 1));
        ids.resize(static_cast<std::size_t>(tokens));
        for (std::int32_t& id : ids) id = token(rng);
        return ids;
    }
    // The engine's demo model is this one's: the same tokenizer.
    const std::filesystem::path folder = spec.folder.empty() ? demo_model_dir() : spec.folder;
    const std::filesystem::path tokenizer_json = folder / "tokenizer.json";
    std::error_code error;
    if (!std::filesystem::is_regular_file(tokenizer_json, error)) {
        fail(folder.string(), "the model folder has no tokenizer.json");
    }
    const Tokenizer tokenizer = Tokenizer::from_file(tokenizer_json);
    const std::string text = args.value("--doc")
                                 ? load_document(*args.value("--doc")).text
                                 : demo_document(static_cast<std::size_t>(tokens) * 4);
    ids = tokenizer.encode(text).ids;
    if (ids.empty()) {
        fail(args.value("--doc").value_or("<demo document>"), "the input has no tokens");
    }
    const std::size_t base_size = ids.size();
    while (static_cast<std::int64_t>(ids.size()) < tokens)
        ids.push_back(ids[ids.size() % base_size]);
    ids.resize(static_cast<std::size_t>(tokens));
    return ids;
}

// What the desktop app does when a layer's prune box is toggled, through the study service: the
// base run once (keeping residual checkpoints within the budget), then what-ifs pruning one
// layer, each timed with its comparison.
int bench_whatif(std::span<const std::string_view> raw) {
    Arguments args("bench whatif",
                   {kModelOption,
                    kDemoOption,
                    {"--shape", true},
                    {"--seed", true},
                    {"--device", true},
                    {"--dtype", true},
                    {"--backend", true},
                    {"--routing", true},
                    {"--doc", true},
                    {"--tokens", true},
                    {"--layer", true},
                    {"--repeat", true},
                    kThreadsOption,
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    const ModelSpec spec = study_bench_model(args);
    if (remote_engine(args) && args.has("--model")) {
        args.usage_error(
            "with --engine, bench whatif runs --demo or --shape NAME (the tokens are "
            "made here)");
    }
    const std::int64_t tokens = args.integer("--tokens", 1, std::int64_t(1) << 24).value_or(4096);
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(5);
    RunOptions options;
    options.device = spec.placement.device;
    const bool cpu = is_cpu_device(options.device);
    options.backend =
        args.value("--backend").value_or(backend_name(cpu ? Backend::Reference : Backend::Kernels));
    if (!parse_backend(options.backend)) {
        args.usage_error("--backend: '" + options.backend + "' is not " + kBackendChoices);
    }
    options.routing = study_bench_routing(args, spec);
    int engine_threads = 0;
    prepare_compute(args, options.device, engine_threads);
    const bool quiet = args.has("--quiet");
    const std::vector<std::int32_t> ids = whatif_bench_tokens(args, spec, tokens);

    StudyPrinter printer(quiet);
    const std::unique_ptr<Study> study = open_study(args);
    const ModelSummary model = study->open_model(spec, printer.events());
    if (!model.is_l2a) fail(spec.label(), "a what-if prunes L2A layers: this model is plain");
    const std::int64_t layers = model.num_layers;
    const std::int64_t layer = args.integer("--layer", 0, layers - 1).value_or(layers - 1);
    const CpuLoad load = check_load("bench");

    const auto clock = [] { return std::chrono::steady_clock::now(); };
    const auto seconds = [](auto a, auto b) {
        return std::chrono::duration<double>(b - a).count();
    };
    StudyRunSpec run;
    run.document.token_ids = ids;
    run.document.label = spec.shape.empty() ? "<demo document>" : "<random tokens>";
    if (args.value("--doc")) run.document.label = *args.value("--doc");
    run.options = options;
    run.trace = false;  // the what-if's own time, without the tracer's
    run.threads = engine_threads;
    auto t0 = clock();
    const StudyRunResult base = study->run(run, printer.events());
    const double base_s = seconds(t0, clock());
    printer.finish();
    RunOptions variant = base.profile->options;
    variant.prune = {static_cast<int>(layer)};
    std::vector<double> rerun, compared;
    int start_layer = 0;
    for (std::int64_t r = 0; r < repeat; ++r) {
        throw_if_cancelled();
        if (!quiet) {
            std::fprintf(stderr, "l2a bench whatif: what-if %lld of %lld\n",
                         static_cast<long long>(r + 1), static_cast<long long>(repeat));
        }
        t0 = clock();
        const StudyWhatIfResult w = study->whatif(variant);
        compared.push_back(seconds(t0, clock()));
        rerun.push_back(w.run_seconds);
        start_layer = w.comparison->start_layer;
    }
    std::sort(rerun.begin(), rerun.end());
    std::sort(compared.begin(), compared.end());
    const double rerun_median = rerun[rerun.size() / 2];
    const double total_median = compared[compared.size() / 2];
    const std::string device =
        base.profile->device == "cpu" ? "cpu" : options.device + ": " + base.profile->device;
    if (args.has("--json")) {
        std::cout << nlohmann::json{{"model", model.model_type},
                                    {"shape", spec.shape},
                                    {"layers", layers},
                                    {"tokens", tokens},
                                    {"device", device},
                                    {"dtype", base.report.dtype},
                                    {"pruned_layer", layer},
                                    {"start_layer", start_layer},
                                    {"threads", base.report.threads},
                                    {"engine", study->where()},
                                    {"machine", machine_json(load)},
                                    {"base_seconds", base_s},
                                    {"rerun_median_seconds", rerun_median},
                                    {"rerun_and_compare_median_seconds", total_median},
                                    {"repeat", repeat}}
                         .dump(2)
                  << "\n";
        return 0;
    }
    std::printf("model %s (%s, %lld layers), %lld tokens, %lld repeats, %s, %s\n",
                spec.shape.empty() ? model_label(args, spec.folder).c_str() : spec.label().c_str(),
                model.model_type.c_str(), static_cast<long long>(layers),
                static_cast<long long>(tokens), static_cast<long long>(repeat), device.c_str(),
                base.report.dtype.c_str());
    print_machine_line(load);
    print_timings(
        {{"base run (checkpoints kept)", base_s, ""},
         {"what-if: prune layer " + std::to_string(layer) + " re-run (median)", rerun_median,
          "from layer " + std::to_string(start_layer)},
         {"what-if re-run + comparison (median)", total_median, "<- what the app waits for"}});
    return 0;
}

// ---- bench explain: the attention lens and the routing oracle after a base run ---------------

// What the app waits for when a token is explained (the lens from the base's kept state) and
// what the routing oracle of the whole run costs (one more run computing every layer's distant
// mass), after one base run of --tokens tokens.
int bench_explain(std::span<const std::string_view> raw) {
    Arguments args("bench explain",
                   {kModelOption,
                    kDemoOption,
                    {"--shape", true},
                    {"--seed", true},
                    {"--doc", true},
                    {"--tokens", true},
                    {"--layer", true},
                    {"--repeat", true},
                    {"--device", true},
                    {"--dtype", true},
                    {"--routing", true},
                    kThreadsOption,
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    const ModelSpec spec = study_bench_model(args);
    const std::int64_t tokens = args.integer("--tokens", 1, std::int64_t(1) << 24).value_or(8192);
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(5);
    const RoutingPolicy routing = study_bench_routing(args, spec);
    int threads = 0;
    prepare_compute(args, spec.placement.device, threads);
    const bool quiet = args.has("--quiet");
    const std::vector<std::int32_t> ids = whatif_bench_tokens(args, spec, tokens);
    StudyPrinter printer(quiet);
    const std::unique_ptr<Study> study = open_study(args);
    const ModelSummary model = study->open_model(spec, printer.events());
    if (!model.is_l2a) fail(spec.label(), "the lens explains L2A layers: this model is plain");
    const std::int64_t layer =
        args.integer("--layer", 0, model.num_layers - 1).value_or(model.num_layers / 2);
    const CpuLoad load = check_load("bench");
    StudyRunSpec run;
    run.document.token_ids = ids;
    run.document.label = args.value("--doc").value_or("<demo document>");
    run.options.device = spec.placement.device;
    run.options.routing = routing;
    if (!is_cpu_device(spec.placement.device)) run.options.backend = backend_name(Backend::Kernels);
    run.trace = false;
    const auto clock = [] { return std::chrono::steady_clock::now(); };
    const auto seconds = [](auto a, auto b) {
        return std::chrono::duration<double>(b - a).count();
    };
    auto t0 = clock();
    study->run(run, printer.events());
    const double base_s = seconds(t0, clock());
    printer.finish();
    std::vector<double> lens_s, oracle_s;
    for (std::int64_t r = 0; r < repeat; ++r) {
        throw_if_cancelled();
        if (!quiet) {
            std::fprintf(stderr, "l2a bench explain: explain %lld of %lld\n",
                         static_cast<long long>(r + 1), static_cast<long long>(repeat));
        }
        t0 = clock();
        study->explain(tokens - 1, static_cast<int>(layer));
        lens_s.push_back(seconds(t0, clock()));
    }
    const std::int64_t oracle_repeat = std::min<std::int64_t>(repeat, 3);
    for (std::int64_t r = 0; r < oracle_repeat; ++r) {
        throw_if_cancelled();
        if (!quiet) {
            std::fprintf(stderr, "l2a bench explain: oracle %lld of %lld\n",
                         static_cast<long long>(r + 1), static_cast<long long>(oracle_repeat));
        }
        t0 = clock();
        study->oracle(kDefaultMinDistantMass);
        oracle_s.push_back(seconds(t0, clock()));
    }
    const double lens_median = median_of(lens_s);
    const double oracle_median = median_of(oracle_s);
    // The oracle re-runs the model and adds one distant-mass pass per layer.
    const double oracle_per_layer =
        std::max(0.0, oracle_median - base_s) / static_cast<double>(model.num_layers);
    if (args.has("--json")) {
        std::cout << nlohmann::json{{"model", model.model_type},
                                    {"layers", model.num_layers},
                                    {"tokens", tokens},
                                    {"layer", layer},
                                    {"device", study->where()},
                                    {"threads", cpu_threads()},
                                    {"machine", machine_json(load)},
                                    {"base_seconds", base_s},
                                    {"explain_first_seconds", lens_s.front()},
                                    {"explain_median_seconds", lens_median},
                                    {"oracle_median_seconds", oracle_median},
                                    {"oracle_seconds_per_layer_beyond_run", oracle_per_layer},
                                    {"repeat", repeat}}
                         .dump(2)
                  << "\n";
        return 0;
    }
    std::printf("model %s (%s, %lld layers), %lld tokens, on %s\n",
                spec.shape.empty() ? model_label(args, spec.folder).c_str() : spec.label().c_str(),
                model.model_type.c_str(), static_cast<long long>(model.num_layers),
                static_cast<long long>(tokens), study->where().c_str());
    print_machine_line(load);
    // A layer whose entering state the base did not keep: the first explain runs the layers up
    // to it from the nearest kept one, and keeps the state for the next.
    print_timings(
        {{"base run (checkpoints kept)", base_s, ""},
         {"explain token " + std::to_string(tokens - 1) + " in layer " + std::to_string(layer) +
              " (median of " + std::to_string(repeat) + ")",
          lens_median, "<- what the app waits for"},
         {"  the first of them", lens_s.front(), ""},
         {"routing oracle of every layer (median of " + std::to_string(oracle_repeat) + ")",
          oracle_median, ""},
         {"  beyond the run, per layer", oracle_per_layer,
          oracle_median <= base_s ? "(the oracle took no longer than the base run)" : ""}});
    return 0;
}

}  // namespace

int bench_command(std::span<const std::string_view> raw) {
    if (!raw.empty() && (raw[0] == "--help" || raw[0] == "-h")) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    if (raw.empty() || (raw[0] != "prefill" && raw[0] != "attention" && raw[0] != "whatif" &&
                        raw[0] != "explain")) {
        throw UsageError("bench", raw.empty()
                                      ? "name a benchmark: prefill, attention, whatif or explain"
                                      : "unknown benchmark '" + std::string(raw[0]) +
                                            "' (available: prefill, attention, whatif, explain)");
    }
    if (raw[0] == "explain") return bench_explain(raw.subspan(1));
    if (raw[0] == "attention") return bench_attention_command(raw.subspan(1));
    if (raw[0] == "whatif") return bench_whatif(raw.subspan(1));
    return bench_prefill(raw.subspan(1));
}

}  // namespace l2a::cli
