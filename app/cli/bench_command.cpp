// `l2a bench prefill`: whole-model prefill time at several lengths, in one process, so that the
// numbers in docs/BENCHMARKS.md come from one command.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "model_source.h"
#include "text_format.h"

namespace l2a::cli {
namespace {

std::vector<std::int64_t> parse_lengths(const Arguments& args) {
    std::vector<std::int64_t> lengths;
    const std::string text = args.value("--tokens").value_or("2048,8192");
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        std::size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || item.empty() || n < 2) {
            args.usage_error("--tokens: '" + item + "' is not a length of at least 2 tokens");
        }
        lengths.push_back(n);
        start = comma + 1;
    }
    return lengths;
}

double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

int bench_command(std::span<const std::string_view> raw) {
    if (!raw.empty() && (raw[0] == "--help" || raw[0] == "-h")) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    if (raw.empty() || raw[0] != "prefill") {
        throw UsageError("bench", raw.empty() ? "name a benchmark: prefill"
                                              : "unknown benchmark '" + std::string(raw[0]) +
                                                    "' (available: prefill)");
    }
    Arguments args("bench",
                   {kModelOption,
                    kDemoOption,
                    {"--doc", true},
                    {"--tokens", true},
                    {"--repeat", true},
                    {"--routing", true},
                    {"--threads", true},
                    {"--json", false}},
                   raw.subspan(1));
    if (args.help()) {
        std::fputs(help_text("bench"), stdout);
        return 0;
    }
    const std::vector<std::int64_t> lengths = parse_lengths(args);
    const std::int64_t repeat = args.integer("--repeat", 1, 1000).value_or(3);
    RunOptions options;
    try {
        if (auto routing = args.value("--routing")) options.routing = RoutingPolicy::parse(*routing);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    if (auto threads = args.integer("--threads", 1, 1024)) set_cpu_threads(static_cast<int>(*threads));

    const std::filesystem::path folder = model_folder(args);
    const Model model = Model::load(folder);
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
    if (ids.empty()) fail(args.value("--doc").value_or("<demo document>"), "the input has no tokens");
    const std::size_t base = ids.size();
    while (static_cast<std::int64_t>(ids.size()) < longest) ids.push_back(ids[ids.size() % base]);

    nlohmann::json rows = nlohmann::json::array();
    const bool json = args.has("--json");
    if (!json) {
        std::printf("model %s (%s, %s parameters), %d CPU threads, routing %s, %lld repeats\n",
                    model_label(args, folder).c_str(), model.summary().model_type.c_str(),
                    format_count_short(model.summary().parameter_count).c_str(), cpu_threads(),
                    options.routing.to_string().c_str(), static_cast<long long>(repeat));
        std::printf("%8s  %10s  %10s  %12s  %8s  %14s\n", "tokens", "median s", "best s",
                    "tokens/s", "global", "peak RSS MiB");
    }
    for (std::int64_t n : lengths) {
        const std::span<const std::int32_t> input(ids.data(), static_cast<std::size_t>(n));
        run_prefill(model, input, options);  // warm-up: first-touch allocations, thread pool
        std::vector<double> seconds;
        double global = 0;
        for (std::int64_t r = 0; r < repeat; ++r) {
            const PrefillResult result = run_prefill(model, input, options);
            seconds.push_back(result.wall_seconds);
            double routed = 0;
            for (auto d : result.decisions) routed += d;
            global = routed / static_cast<double>(result.decisions.size());
        }
        std::sort(seconds.begin(), seconds.end());
        const double median = seconds[seconds.size() / 2];
        const double best = seconds.front();
        const double rate = static_cast<double>(n) / median;
        if (json) {
            rows.push_back({{"tokens", n}, {"median_seconds", median}, {"best_seconds", best},
                            {"tokens_per_second", rate}, {"global_fraction", global},
                            {"peak_rss_mib", peak_rss_mib()}});
        } else {
            std::printf("%8lld  %10.3f  %10.3f  %12.0f  %7.1f%%  %14.0f\n",
                        static_cast<long long>(n), median, best, rate, global * 100,
                        peak_rss_mib());
            std::fflush(stdout);
        }
    }
    if (json) {
        std::cout << nlohmann::json{{"model", model.summary().model_type},
                                    {"threads", cpu_threads()},
                                    {"routing", options.routing.to_string()},
                                    {"repeat", repeat},
                                    {"results", rows}}
                         .dump(2)
                  << "\n";
    }
    return 0;
}

}  // namespace l2a::cli
