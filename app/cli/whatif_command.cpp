// `l2a whatif` and `l2a suggest-prune`: re-run a saved profile's document with other routing
// options from the first layer they change, and compare with the base run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/config.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/whatif.h"
#include "l2a/profiler/study.h"
#include "model_source.h"
#include "study_printer.h"
#include "tensor_parallel_option.h"
#include "text_format.h"
#include "threads.h"

namespace l2a::cli {
namespace {

using json = nlohmann::json;

// Small runs take milliseconds; "0.00 s" would say nothing.
std::string format_time(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    if (std::abs(seconds) < 1.0) return format_fixed(seconds * 1e3, 2) + " ms";
    return format_elapsed(seconds);
}

// What a profile needs to be re-run: the study that holds it as its base, and the model's name.
struct Loaded {
    std::shared_ptr<const Profile> profile;
    std::unique_ptr<Study> study;
    std::string label;
};

std::string num(std::int64_t v) { return std::to_string(v); }

// The variant's options against the model the profile was recorded with, before any model is
// loaded or anything runs: layers that do not exist, routing on a model (or a run) without
// routers.
void check_variant(const Arguments& args, const Profile& p, const std::string& profile_path,
                   bool prune_search) {
    const ModelSummary& m = p.model;
    if (prune_search && (!m.is_l2a || p.options.as_base)) {
        fail(profile_path, "the run has no L2A layers, so there is no global attention to prune");
    }
    if (!m.is_l2a || p.options.as_base) {
        const std::string why =
            m.is_l2a ? profile_path +
                           " is a run of the model as its base model (--as-base), which "
                           "has no routers"
                     : profile_path + " is a run of a plain " + m.model_type +
                           " model without L2A layers";
        for (const char* option : {"--prune", "--routing", "--threshold"}) {
            if (args.has(option) &&
                !(std::string(option) == "--prune" && args.value(option)->empty())) {
                fail("", std::string(option) + ": " + why);
            }
        }
    }
    if (auto text = args.value("--prune")) {
        for (int layer : parse_pruning_plan(*text)) {
            if (layer < 0 || layer >= m.num_layers) {
                fail("", "--prune: layer " + std::to_string(layer) +
                             " does not exist (the model of " + profile_path + " has " +
                             num(m.num_layers) + " layers: 0-" + num(m.num_layers - 1) + ")");
            }
        }
    }
}

// The profile as the base of a study: its model is --model DIR, --demo, or else the folder, dtype
// and device the profile recorded (the study checks that it is still the same model).
// `prune_search`: suggest-prune, which needs a run with routers.
// `tensor_parallel`: the processes the study is split across (whatif --tensor-parallel N).
Loaded load_inputs(const Arguments& args, bool prune_search, StudyPrinter& printer,
                   int tensor_parallel = 1) {
    const auto profile_path = args.value("--profile");
    if (!profile_path) args.usage_error("give the base run: --profile FILE");
    // Before the model: a missing profile or a layer the model lacks should not wait for a
    // model to load.
    auto profile = std::make_shared<const Profile>(load_profile(*profile_path));
    check_variant(args, *profile, *profile_path, prune_search);
    if (tensor_parallel > 1) {
        const std::string given = "--tensor-parallel " + num(tensor_parallel);
        // The ranks re-run the base where it ran: on the CPU in fp32, or one GPU each.
        use_tensor_parallel_device(args, tensor_parallel, profile->options.device,
                                   *profile_path + ", a run on " + profile->options.device);
        if (is_cpu_device(profile->options.device) && !profile->dtype.empty() &&
            profile->dtype != "fp32") {
            args.usage_error(given + ": " + *profile_path + " is a run in " + profile->dtype +
                             ", and tensor parallel on the CPU runs in fp32");
        }
        check_tensor_parallel_shape(args, tensor_parallel, profile->model.num_heads,
                                    profile->model.num_kv_heads, profile->model.intermediate_size);
    }
    std::optional<ModelSpec> spec;
    std::string label = profile->model.path;
    if (args.has("--model") || args.has("--demo")) {
        spec = model_spec(args);
        spec->placement.device = profile->options.device;
        if (!profile->dtype.empty()) spec->placement.dtype = profile->dtype;
        label = args.has("--demo") ? std::string("<demo model>") : spec->folder.string();
    }
    Loaded in{profile, open_study(args, tensor_parallel), std::move(label)};
    in.study->adopt(profile, *profile_path, spec, printer.events());
    return in;
}

std::string describe(const RunOptions& o, const ModelSummary& m) {
    if (!m.is_l2a || o.as_base) return "full attention in every layer";
    std::string text = "routing " + o.routing.to_string();
    if (o.routing.kind == RoutingKind::Learned) {
        text += ", threshold " + format_fixed(o.threshold.value_or(m.sigmoid_threshold), 3);
    }
    text += ", pruned: " + (o.prune.empty() ? std::string("none") : format_pruning_plan(o.prune));
    return text;
}

// A measured time to first token: median, spread and every run; null when not measured.
json measurement_json(const TtftMeasurement& m) {
    if (!m.measured()) return nullptr;
    return {{"median", m.median}, {"min", m.min}, {"max", m.max}, {"samples", m.samples}};
}

// "640.12-650.33 ms", "1.20-1.31 s"; each with its own unit when they differ.
std::string format_time_range(double low, double high) {
    if (high < 1.0) return format_fixed(low * 1e3, 2) + "-" + format_fixed(high * 1e3, 2) + " ms";
    if (low >= 1.0 && high < 60.0) return format_fixed(low, 2) + "-" + format_fixed(high, 2) + " s";
    return format_time(low) + " to " + format_time(high);
}

// "644.77 ms (640.12-650.33 ms, 3 runs)"
std::string format_measurement(const TtftMeasurement& m) {
    const std::size_t runs = m.samples.size();
    return format_time(m.median) + " (" + format_time_range(m.min, m.max) + ", " +
           std::to_string(runs) + (runs == 1 ? " run)" : " runs)");
}

json comparison_json(const WhatIfComparison& c, const RunOptions& base, const RunOptions& variant,
                     const ModelSummary& model) {
    const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    json delta = json::array();
    json kl = json::array();
    for (std::size_t t = 0; t < c.delta_nll.size(); ++t) {
        delta.push_back(number(c.delta_nll[t]));
        kl.push_back(number(c.kl[t]));
    }
    json layers = json::array();
    for (std::size_t l = 0; l < c.base_global_fraction.size(); ++l) {
        const bool pruned =
            std::binary_search(variant.prune.begin(), variant.prune.end(), static_cast<int>(l));
        layers.push_back({{"layer", l},
                          {"base_global_fraction", c.base_global_fraction[l]},
                          {"variant_global_fraction", c.variant_global_fraction[l]},
                          {"pruned", pruned}});
    }
    return {
        {"tokens", c.num_tokens},
        {"start_layer", c.start_layer},
        {"base", describe(base, model)},
        {"variant", describe(variant, model)},
        {"prune", variant.prune},
        {"mean_nll",
         {{"base", number(c.base_mean_nll)},
          {"variant", number(c.variant_mean_nll)},
          {"delta", number(c.delta_mean_nll)}}},
        {"perplexity",
         {{"base", number(c.base_perplexity)},
          {"variant", number(c.variant_perplexity)},
          {"delta", number(c.delta_perplexity)}}},
        {"kl", {{"mean", c.kl_mean}, {"max", c.kl_max}, {"max_token", c.kl_max_token}}},
        {"top1_agreement", c.top1_agreement},
        {"kv_bytes",
         {{"base", c.base_kv_bytes},
          {"variant", c.variant_kv_bytes},
          {"without_l2a", c.kv_bytes_without_l2a},
          {"base_relative", c.base_kv_relative},
          {"variant_relative", c.variant_kv_relative}}},
        {"ttft_seconds",
         {{"base_measured", c.base_ttft.measured() ? number(c.base_ttft.median) : json(nullptr)},
          {"variant_measured",
           c.variant_ttft.measured() ? number(c.variant_ttft.median) : json(nullptr)},
          {"base_measured_runs", measurement_json(c.base_ttft)},
          {"variant_measured_runs", measurement_json(c.variant_ttft)},
          {"base_predicted", c.base_ttft_predicted},
          {"variant_predicted", c.variant_ttft_predicted}}},
        {"layers", layers},
        {"token_delta_nll", delta},
        {"token_kl", kl},
    };
}

void print_comparison(const WhatIfComparison& c, const Loaded& in, const RunOptions& variant,
                      const std::string& threads) {
    const Profile& p = *in.profile;
    std::printf("model       %s (%s, %lld layers)\n", in.label.c_str(), p.model.model_type.c_str(),
                static_cast<long long>(p.model.num_layers));
    std::printf("device      %s, %s\n", p.options.device.c_str(), threads.c_str());
    std::printf("document    %s: %s tokens\n", p.document_path.c_str(),
                group_digits(c.num_tokens).c_str());
    std::printf("base        %s\n", describe(p.options, p.model).c_str());
    std::printf("variant     %s (re-run from layer %d)\n\n", describe(variant, p.model).c_str(),
                c.start_layer);

    std::printf("%-18s %16s %16s %16s\n", "", "base", "variant", "change");
    const auto row = [](const char* name, const std::string& a, const std::string& b,
                        const std::string& d) {
        std::printf("%-18s %16s %16s %16s\n", name, a.c_str(), b.c_str(), d.c_str());
    };
    row("mean NLL", format_fixed(c.base_mean_nll, 4), format_fixed(c.variant_mean_nll, 4),
        format_signed(c.delta_mean_nll, 4));
    row("perplexity", format_fixed(c.base_perplexity, 3), format_fixed(c.variant_perplexity, 3),
        format_signed(c.delta_perplexity, 3));
    row("KV cache", format_bytes_short(c.base_kv_bytes), format_bytes_short(c.variant_kv_bytes),
        (c.variant_kv_bytes >= c.base_kv_bytes ? "+" : "-") +
            format_bytes_short(std::abs(c.variant_kv_bytes - c.base_kv_bytes)));
    row("  of no-L2A", format_percent(c.base_kv_relative), format_percent(c.variant_kv_relative),
        "(" + format_bytes_short(c.kv_bytes_without_l2a) + ")");
    if (c.base_ttft.measured() && c.variant_ttft.measured()) {
        row("TTFT measured", format_time(c.base_ttft.median), format_time(c.variant_ttft.median),
            (c.variant_ttft.median >= c.base_ttft.median ? "+" : "-") +
                format_time(std::abs(c.variant_ttft.median - c.base_ttft.median)));
    }
    row("TTFT predicted", format_time(c.base_ttft_predicted), format_time(c.variant_ttft_predicted),
        (c.variant_ttft_predicted >= c.base_ttft_predicted ? "+" : "-") +
            format_time(std::abs(c.variant_ttft_predicted - c.base_ttft_predicted)));
    std::printf("\nKL(base || variant)  mean %s, max %s nats (token %lld)\n",
                format_fixed(c.kl_mean, 6).c_str(), format_fixed(c.kl_max, 6).c_str(),
                static_cast<long long>(c.kl_max_token));
    std::printf("top-1 agreement      %s of next-token predictions\n",
                format_percent(c.top1_agreement).c_str());
    // Time to first token is measured only as full prefills of both, never as the base's time
    // up to a layer plus a re-run.
    if (c.base_ttft.measured() && c.variant_ttft.measured()) {
        std::printf("TTFT measured   base     %s\n", format_measurement(c.base_ttft).c_str());
        std::printf("                variant  %s\n", format_measurement(c.variant_ttft).c_str());
        std::printf(
            "                full prefills (last token's logits only) of each in turn, "
            "same device and threads\n");
    } else {
        std::printf("TTFT measured   not measured (--ttft-repeats 0)\n");
    }
    std::printf(
        "TTFT predicted  by a per-layer model calibrated on the base run (local, router "
        "and MLP time\n                fixed; global time proportional to the keys the "
        "routed tokens read)\n\n");

    std::printf("%-5s  %8s  %8s\n", "layer", "base", "variant");
    for (std::size_t l = 0; l < c.base_global_fraction.size(); ++l) {
        const bool pruned =
            std::binary_search(variant.prune.begin(), variant.prune.end(), static_cast<int>(l));
        std::printf("%5zu  %8s  %8s%s\n", l, format_percent(c.base_global_fraction[l]).c_str(),
                    format_percent(c.variant_global_fraction[l]).c_str(), pruned ? "  pruned" : "");
    }

    // The tokens whose loss changed most.
    std::vector<std::size_t> order;
    for (std::size_t t = 0; t < c.delta_nll.size(); ++t) {
        if (std::isfinite(c.delta_nll[t]) && c.delta_nll[t] != 0.0) order.push_back(t);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::abs(c.delta_nll[a]) > std::abs(c.delta_nll[b]);
    });
    if (order.empty()) {
        std::printf("\nper-token loss: unchanged\n");
        return;
    }
    std::printf("\n%-7s  %10s  %s\n", "token", "Δ loss", "text");
    for (std::size_t i = 0; i < std::min<std::size_t>(order.size(), 5); ++i) {
        const std::size_t t = order[i];
        std::string text;
        if (t < p.token_begin.size() && p.token_end[t] <= p.document_text.size() &&
            p.token_begin[t] <= p.token_end[t]) {
            text = p.document_text.substr(p.token_begin[t], p.token_end[t] - p.token_begin[t]);
            std::replace(text.begin(), text.end(), '\n', ' ');
        }
        std::printf("%7zu  %10s  \"%s\"\n", t, format_signed(c.delta_nll[t], 4).c_str(),
                    text.c_str());
    }
}

}  // namespace

int whatif_command(std::span<const std::string_view> raw) {
    Arguments args("whatif",
                   {kModelOption,
                    kDemoOption,
                    {"--profile", true},
                    {"--prune", true, /*empty_allowed=*/true},
                    {"--threshold", true},
                    {"--routing", true},
                    {"--seed", true},
                    {"--out", true},
                    {"--ttft-repeats", true},
                    kThreadsOption,
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--json", false},
                    {"--quiet", false},
                    kTensorParallelOption,
                    kTensorParallelRankOption,
                    kTensorParallelPortOption,
                    kTensorParallelRunOption},
                   raw);
    if (args.help()) {
        std::fputs(help_text("whatif"), stdout);
        return 0;
    }
    std::optional<PruningPlan> prune;
    std::optional<RoutingPolicy> routing;
    try {
        if (auto text = args.value("--prune")) prune = parse_pruning_plan(*text);
        if (auto text = args.value("--routing")) routing = RoutingPolicy::parse(*text);
    } catch (const Error& e) {
        args.usage_error(e.what());
    }
    const std::optional<double> threshold = args.number("--threshold");
    if (threshold && !(*threshold > 0.0 && *threshold < 1.0)) {
        args.usage_error("--threshold: " + *args.value("--threshold") +
                         " is not strictly between 0 and 1");
    }
    const std::optional<std::uint64_t> seed = args.unsigned_integer("--seed");
    const int ttft_repeats = static_cast<int>(args.integer("--ttft-repeats", 0, 1000).value_or(3));
    if (!args.value("--profile")) args.usage_error("give the base run: --profile FILE");
    const int tensor_parallel_ranks = tensor_parallel(args, "");
    int engine_threads = 0;  // the engine's own default: what-ifs keep the base's threads
    const std::string threads = prepare_compute(args, "", engine_threads);
    const auto out = args.value("--out");
    if (out) check_output_file(args, {"--out", *out}, {{"--profile", *args.value("--profile")}});

    StudyPrinter printer(args.has("--quiet"));
    const Loaded in = load_inputs(args, false, printer, tensor_parallel_ranks);
    const Profile& p = *in.profile;
    RunOptions variant = p.options;
    if (prune) variant.prune = *prune;
    if (routing) variant.routing = *routing;
    if (threshold) variant.threshold = threshold;
    if (seed) variant.seed = *seed;

    // The base is re-run keeping the one checkpoint the variant starts from, then the variant;
    // with --ttft-repeats, full prefills of both, alternating, after a warm-up of each.
    const StudyWhatIfResult result = in.study->whatif(variant, ttft_repeats, printer.events());
    printer.finish();
    throw_if_cancelled();
    const WhatIfComparison& c = *result.comparison;

    finish_tensor_parallel_before_writing();  // nothing is written unless every rank finished
    if (out) {
        save_profile(*result.variant, *out);
        if (!args.has("--quiet")) std::fprintf(stderr, "l2a: wrote %s\n", out->c_str());
    }
    if (args.has("--json")) {
        std::cout << comparison_json(c, p.options, variant, p.model).dump(2) << "\n";
    } else {
        print_comparison(c, in, variant,
                         threads + (tensor_parallel_ranks > 1
                                        ? ", tensor parallel over " +
                                              std::to_string(tensor_parallel_ranks) + " processes"
                                        : std::string()));
    }
    return 0;
}

int suggest_prune_command(std::span<const std::string_view> raw) {
    Arguments args("suggest-prune",
                   {kModelOption,
                    kDemoOption,
                    {"--profile", true},
                    {"--max-dnll", true},
                    kThreadsOption,
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("suggest-prune"), stdout);
        return 0;
    }
    const std::optional<double> budget = args.number("--max-dnll");
    if (!budget) args.usage_error("give the quality budget: --max-dnll X (nats per token)");
    if (!(*budget >= 0.0) || !std::isfinite(*budget)) {
        args.usage_error("--max-dnll: " + *args.value("--max-dnll") +
                         " is not a non-negative number of nats per token");
    }
    if (!args.value("--profile")) args.usage_error("give the base run: --profile FILE");
    int engine_threads = 0;  // the engine's own default: what-ifs keep the base's threads
    const std::string threads = prepare_compute(args, "", engine_threads);

    StudyPrinter printer(args.has("--quiet"));
    const Loaded in = load_inputs(args, true, printer);
    const Profile& p = *in.profile;
    const StudyPruneResult result = in.study->suggest_prune(*budget, printer.events());
    printer.finish();
    throw_if_cancelled();
    const PruneSuggestion& s = result.suggestion;
    const double base_seconds = result.base_ttft_predicted;
    const std::int64_t base_kv_bytes = result.base_kv_bytes;

    if (args.has("--json")) {
        json j = {{"max_dnll", *budget},
                  {"layers", s.layers},
                  {"plan", s.plan},
                  {"delta_mean_nll", s.delta_mean_nll},
                  {"kv_bytes_base", base_kv_bytes},
                  {"kv_bytes_saved", s.kv_bytes_saved},
                  {"seconds_base_predicted", base_seconds},
                  {"seconds_saved_predicted", s.seconds_saved},
                  {"runs", s.runs}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("model       %s (%lld layers)\n", in.label.c_str(),
                static_cast<long long>(p.model.num_layers));
    std::printf("device      %s, %s\n", p.options.device.c_str(), threads.c_str());
    std::printf("document    %s: %s tokens\n", p.document_path.c_str(),
                group_digits(p.num_tokens()).c_str());
    std::printf("budget      mean ΔNLL <= %s nats/token (%lld variant runs)\n",
                format_fixed(*budget, 4).c_str(), static_cast<long long>(s.runs));
    if (s.layers.empty()) {
        std::printf("suggestion  none: pruning any one more layer costs more than the budget\n");
        return 0;
    }
    std::printf("suggestion  --prune %s (ΔNLL %s)\n", format_pruning_plan(s.plan).c_str(),
                format_signed(s.delta_mean_nll, 4).c_str());
    const double kv_share = base_kv_bytes > 0 ? static_cast<double>(s.kv_bytes_saved) /
                                                    static_cast<double>(base_kv_bytes)
                                              : 0.0;
    std::printf("KV cache    saves %s (%s of the base's %s)\n",
                format_bytes_short(s.kv_bytes_saved).c_str(), format_percent(kv_share).c_str(),
                format_bytes_short(base_kv_bytes).c_str());
    std::printf("time        saves %s of %s predicted time to first token\n",
                format_time(s.seconds_saved).c_str(), format_time(base_seconds).c_str());
    return 0;
}

}  // namespace l2a::cli
