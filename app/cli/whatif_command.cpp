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
#include "guards.h"
#include "l2a/engine/config.h"
#include "l2a/engine/device.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/whatif.h"
#include "model_source.h"
#include "progress_bar.h"
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

// What a profile needs to be re-run: the model it was made with and its tokens.
struct Loaded {
    Profile profile;
    Model model;
    std::string label;
};

std::string num(std::int64_t v) { return std::to_string(v); }

// The first field in which two model descriptions differ, as "layers 6 in the profile, 8 in
// DIR"; empty when they agree. `parameters` compares the parameter counts too (known only once
// the weights are read).
std::string model_difference(const ModelSummary& recorded, const ModelSummary& found,
                             const std::string& where, bool parameters) {
    const std::pair<const char*, std::pair<std::string, std::string>> fields[] = {
        {"model_type", {recorded.model_type, found.model_type}},
        {"layers", {num(recorded.num_layers), num(found.num_layers)}},
        {"hidden_size", {num(recorded.hidden_size), num(found.hidden_size)}},
        {"intermediate_size", {num(recorded.intermediate_size), num(found.intermediate_size)}},
        {"heads", {num(recorded.num_heads), num(found.num_heads)}},
        {"kv heads", {num(recorded.num_kv_heads), num(found.num_kv_heads)}},
        {"head_dim", {num(recorded.head_dim), num(found.head_dim)}},
        {"vocabulary", {num(recorded.vocab_size), num(found.vocab_size)}},
        {"sliding_window", {num(recorded.sliding_window), num(found.sliding_window)}},
        {"parameters",
         {num(recorded.parameter_count),
          parameters ? num(found.parameter_count) : num(recorded.parameter_count)}},
    };
    for (const auto& [name, values] : fields) {
        if (values.first != values.second) {
            return std::string(name) + " " + values.first + " in the profile, " + values.second +
                   " in " + where;
        }
    }
    return {};
}

// The shape a model folder's config.json describes, in ModelSummary's terms (no weights read).
ModelSummary summary_of_config(const std::filesystem::path& folder) {
    return summarize_config(load_model_config(folder / "config.json"), folder.string());
}

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

// --model DIR, --demo, or else the folder the profile recorded, which must still hold the same
// model. Returns the folder and what the report calls it.
std::pair<std::filesystem::path, std::string> choose_model(const Arguments& args, const Profile& p,
                                                           const std::string& profile_path) {
    if (args.has("--model") || args.has("--demo")) {
        const std::filesystem::path folder = model_folder(args);
        return {folder, model_label(args, folder)};
    }
    const std::string& recorded = p.model.path;
    if (recorded.empty()) {
        fail(profile_path,
             "does not record the folder of its model; give the model it was made with: "
             "--model DIR (or --demo)");
    }
    const std::filesystem::path folder = recorded;
    std::error_code error;
    if (!std::filesystem::is_regular_file(folder / "config.json", error)) {
        fail(profile_path, "was recorded with the model in " + recorded +
                               ", which is no longer there; give the model it was made with: "
                               "--model DIR (or --demo)");
    }
    const std::string difference =
        model_difference(p.model, summary_of_config(folder), recorded, false);
    if (!difference.empty()) {
        fail(profile_path, "was recorded with the model in " + recorded +
                               ", which has changed since (" + difference +
                               "); give the model it was made with: --model DIR");
    }
    return {folder, recorded};
}

// `prune_search`: suggest-prune, which needs a run with routers.
Loaded load_inputs(const Arguments& args, bool prune_search) {
    const auto profile_path = args.value("--profile");
    if (!profile_path) args.usage_error("give the base run: --profile FILE");
    if (profile_path->empty()) args.usage_error("--profile: the file name is empty");
    // Before the model: a missing profile or a layer the model lacks should not wait for a
    // model to load.
    Profile profile = load_profile(*profile_path);
    if (profile.token_ids.empty()) fail(*profile_path, "the profile holds no tokens to re-run");
    check_variant(args, profile, *profile_path, prune_search);
    try {
        require_device(profile.options.device);
    } catch (const Error& e) {
        fail(*profile_path,
             "was recorded on " + profile.options.device + ", which cannot run here: " + e.what());
    }
    auto [folder, label] = choose_model(args, profile, *profile_path);
    std::error_code error;
    if (std::filesystem::is_regular_file(folder / "config.json", error)) {
        // The shape first, from config.json alone: a mismatch should not wait for the weights.
        const std::string shape =
            model_difference(profile.model, summary_of_config(folder), folder.string(), false);
        if (!shape.empty()) {
            fail(*profile_path, "was recorded with another model (" + shape +
                                    "); give the model it was made with");
        }
    }
    Placement placement;
    placement.device = profile.options.device;
    Model model = Model::load(folder, placement);
    print_load_warnings(model.warnings());
    const std::string difference =
        model_difference(profile.model, model.summary(), folder.string(), true);
    if (!difference.empty()) {
        fail(*profile_path, "was recorded with another model (" + difference +
                                "); give the model it was made with");
    }
    return {std::move(profile), std::move(model), std::move(label)};
}

// The base re-run should reproduce the profile; say so when it does not (another device or
// build), since the comparison is against the re-run.
void check_reproduced(const Profile& profile, const WhatIfRun& base, const std::string& path) {
    double worst = 0.0;
    const std::size_t n = std::min(profile.token_nll.size(), base.result.token_nll.size());
    for (std::size_t i = 1; i < n; ++i) {
        const double a = profile.token_nll[i];
        const double b = base.result.token_nll[i];
        if (std::isfinite(a) && std::isfinite(b)) worst = std::max(worst, std::abs(a - b));
    }
    if (worst > 1e-3) {
        std::fprintf(stderr,
                     "l2a: warning: %s: the re-run of the base differs from the profile (per-token "
                     "NLL by up to %s); comparing against the re-run\n",
                     path.c_str(), format_fixed(worst, 4).c_str());
    }
}

PrefillHooks progress_hooks(ProgressBar& bar) {
    PrefillHooks hooks;
    hooks.progress = [&bar](const RunProgress& p) { bar.update(p); };
    hooks.cancel = cancel_flag();
    return hooks;
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
    const Profile& p = in.profile;
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
        std::printf(
            "%5zu  %7s%%  %7s%%%s\n", l, format_fixed(c.base_global_fraction[l] * 100, 1).c_str(),
            format_fixed(c.variant_global_fraction[l] * 100, 1).c_str(), pruned ? "  pruned" : "");
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
                    {"--prune", true},
                    {"--threshold", true},
                    {"--routing", true},
                    {"--seed", true},
                    {"--out", true},
                    {"--ttft-repeats", true},
                    kThreadsOption,
                    {"--json", false},
                    {"--quiet", false}},
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
    const std::string threads = apply_threads(args);
    const auto out = args.value("--out");
    if (out) check_output_file(args, {"--out", *out}, {{"--profile", *args.value("--profile")}});

    const Loaded in = load_inputs(args, false);
    const Profile& p = in.profile;
    RunOptions variant = p.options;
    if (prune) variant.prune = *prune;
    if (routing) variant.routing = *routing;
    if (threshold) variant.threshold = threshold;
    if (seed) variant.seed = *seed;

    // Only the checkpoint the variant starts from is kept (the others would cost host memory).
    const std::vector<int> keep = {first_changed_layer(in.model.config(), p.options, variant)};
    ProgressBar base_bar("re-run of the base, " + group_digits(p.num_tokens()) + " tokens",
                         !args.has("--quiet"));
    const WhatIfRun base =
        run_whatif_base(in.model, p.token_ids, p.options, progress_hooks(base_bar), &keep);
    base_bar.finish();
    check_reproduced(p, base, *args.value("--profile"));
    ProgressBar variant_bar("variant", !args.has("--quiet"));
    const WhatIfRun run =
        run_whatif_variant(in.model, p.token_ids, base, variant, progress_hooks(variant_bar));
    variant_bar.finish();
    WhatIfComparison c = compare(in.model, p.token_ids, base, run);
    if (ttft_repeats > 0) {
        // The same measurement for both: full prefills, alternating, after a warm-up of each.
        ProgressBar ttft_bar("time to first token, " + std::to_string(ttft_repeats) +
                                 " runs each of base and variant",
                             !args.has("--quiet"));
        PrefillHooks ttft_hooks;  // each timed run stops at a signal too
        ttft_hooks.cancel = cancel_flag();
        auto [base_ttft, variant_ttft] = measure_ttft_pair(
            in.model, p.token_ids, p.options, variant, ttft_repeats, ttft_hooks,
            [&ttft_bar](std::int64_t done, std::int64_t all) {
                ttft_bar.update(
                    static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(all, 1)),
                    "run " + std::to_string(done) + " of " + std::to_string(all));
            });
        ttft_bar.finish();
        c.base_ttft = std::move(base_ttft);
        c.variant_ttft = std::move(variant_ttft);
    }
    throw_if_cancelled();

    if (out) {
        const Profile v = make_variant_profile(p, run);
        save_profile(v, *out);
        if (!args.has("--quiet")) std::fprintf(stderr, "l2a: wrote %s\n", out->c_str());
    }
    if (args.has("--json")) {
        std::cout << comparison_json(c, p.options, variant, p.model).dump(2) << "\n";
    } else {
        print_comparison(c, in, variant, threads);
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
    const std::string threads = apply_threads(args);

    const Loaded in = load_inputs(args, true);
    const Profile& p = in.profile;
    ProgressBar base_bar("re-run of the base, " + group_digits(p.num_tokens()) + " tokens",
                         !args.has("--quiet"));
    const WhatIfRun base =
        run_whatif_base(in.model, p.token_ids, p.options, progress_hooks(base_bar));
    base_bar.finish();
    check_reproduced(p, base, *args.value("--profile"));
    ProgressBar search_bar("greedy search", !args.has("--quiet"));
    PrefillHooks search_hooks;  // each variant run stops at a signal too
    search_hooks.cancel = cancel_flag();
    const PruneSuggestion s = suggest_prune(
        in.model, p.token_ids, base, *budget,
        [&search_bar](std::int64_t done, std::int64_t most) {
            search_bar.update(
                static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(most, 1)),
                "variant " + std::to_string(done));
        },
        search_hooks);
    search_bar.finish();
    throw_if_cancelled();
    const TimingModel timing = calibrate_timing(base);
    const double base_seconds = timing.predict_ttft(base.result.decisions, p.num_tokens());

    if (args.has("--json")) {
        json j = {{"max_dnll", *budget},
                  {"layers", s.layers},
                  {"plan", s.plan},
                  {"delta_mean_nll", s.delta_mean_nll},
                  {"kv_bytes_base", base.metrics.kv_bytes_total},
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
    const double kv_share = base.metrics.kv_bytes_total > 0
                                ? static_cast<double>(s.kv_bytes_saved) /
                                      static_cast<double>(base.metrics.kv_bytes_total)
                                : 0.0;
    std::printf("KV cache    saves %s (%s of the base's %s)\n",
                format_bytes_short(s.kv_bytes_saved).c_str(), format_percent(kv_share).c_str(),
                format_bytes_short(base.metrics.kv_bytes_total).c_str());
    std::printf("time        saves %s of %s predicted time to first token\n",
                format_time(s.seconds_saved).c_str(), format_time(base_seconds).c_str());
    return 0;
}

}  // namespace l2a::cli
