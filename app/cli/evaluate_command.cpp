// `l2a evaluate`: does the routing follow the documents' long-range references?
#include <cmath>
#include <cstdio>
#include <string>

#include "arguments.h"
#include "commands.h"
#include "guards.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/device.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/routing_eval.h"
#include "model_source.h"
#include "progress_bar.h"
#include "threads.h"

namespace l2a::cli {

int evaluate_command(std::span<const std::string_view> raw) {
    Arguments args("evaluate",
                   {kModelOption,
                    kDemoOption,
                    {"--docs", true},
                    {"--count", true},
                    {"--max-tokens", true},
                    {"--device", true},
                    {"--backend", true},
                    kThreadsOption,
                    {"--out", true},
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("evaluate"), stdout);
        return 0;
    }
    const auto docs = args.value("--docs");
    if (!docs) args.usage_error("give the documents: --docs DIR (written by l2a make-docs)");
    RoutingEvalOptions options;
    if (auto device = args.value("--device")) options.device = *device;
    if (auto backend = args.value("--backend")) options.backend = *backend;
    const std::optional<Backend> backend = parse_backend(options.backend);
    if (!backend) {
        args.usage_error("--backend " + options.backend + ": expected " + kBackendChoices);
    }
    if (is_cpu_device(options.device) && *backend != Backend::Reference) {
        args.usage_error("--backend " + options.backend +
                         ": runs on CUDA devices only (add --device cuda)");
    }
    if (auto n = args.integer("--max-tokens", 2, std::int64_t(1) << 40)) options.max_tokens = *n;
    const std::string threads = apply_threads(args);
    require_device(options.device);
    const bool quiet = args.has("--quiet"), json = args.has("--json");
    if (auto out = args.value("--out")) check_output_file(args, {"--out", *out});

    std::vector<std::filesystem::path> files = referenced_documents_in(*docs);
    if (auto count = args.integer("--count", 1, 1 << 30)) {
        if (static_cast<std::size_t>(*count) < files.size())
            files.resize(static_cast<std::size_t>(*count));
    }
    const std::filesystem::path folder = model_folder(args);
    Placement placement;
    placement.device = options.device;
    const Model model = Model::load(folder, placement);
    print_load_warnings(model.warnings());

    ProgressBar bar("evaluating " + std::to_string(files.size()) + " documents", !quiet);
    const RoutingEvalResult r = evaluate_routing(
        model, files, options, [&](double f, std::string_view stage) { bar.update(f, stage); },
        cancel_flag());
    bar.finish();
    throw_if_cancelled();
    const std::string text = routing_eval_json(r);
    if (auto out = args.value("--out")) {
        write_text_atomically(*out, text);
        if (!quiet) std::fprintf(stderr, "l2a: wrote %s\n", out->c_str());
    }
    if (json) {
        std::fputs(text.c_str(), stdout);
        return 0;
    }
    auto pct = [](double x) { return 100.0 * x; };
    std::printf("%s: %lld documents, %lld tokens, %lld reference tokens (%.1f%%)\n",
                model_label(args, folder).c_str(), static_cast<long long>(r.documents),
                static_cast<long long>(r.tokens), static_cast<long long>(r.reference_tokens),
                r.tokens
                    ? pct(static_cast<double>(r.reference_tokens) / static_cast<double>(r.tokens))
                    : 0.0);
    std::printf("%s, %s\n", options.device.c_str(), threads.c_str());
    std::printf("\nGlobal attention (learned routing), share of positions x layers:\n");
    std::printf("  positions predicting a reference token  %6.2f%%\n", pct(r.reference_rate));
    std::printf("  other positions                         %6.2f%%\n", pct(r.other_rate));
    std::printf("  ratio                                   %6.2fx\n", r.rate_ratio);
    std::printf("  the reference tokens themselves         %6.2f%%  (other tokens %.2f%%)\n",
                pct(r.reference_token_rate), pct(r.other_token_rate));
    std::printf("  overall                                 %6.2f%%\n", pct(r.global_fraction));
    for (const auto& [kind, rate] : r.kind_rate)
        std::printf("  references of kind %-20s %6.2f%%\n", kind.c_str(), pct(rate));
    std::printf("\n  layer  global  at references\n");
    for (std::size_t l = 0; l < r.layer_fraction.size(); ++l) {
        std::printf("  %5zu  %5.1f%%  %5.1f%%%s\n", l, pct(r.layer_fraction[l]),
                    pct(r.layer_reference_rate[l]),
                    static_cast<int>(l) == r.busiest_layer    ? "   busiest"
                    : static_cast<int>(l) == r.sparsest_layer ? "   sparsest"
                                                              : "");
    }
    std::printf("\nMean NLL (nats/token)             references   others   global\n");
    for (const auto& v : r.variants) {
        std::printf("  %-30s  %9.4f  %8.4f  %6.2f%%\n", v.name.c_str(), v.reference_nll,
                    v.other_nll, pct(v.global_fraction));
    }
    if (r.variants.size() == 4) {
        const auto& base = r.variants[0];
        std::printf("\nChecks:\n");
        std::printf("  [%s] global rate at references >= 3x the others (%.2fx)\n",
                    r.rate_ratio_ok() ? "met" : "NOT met", r.rate_ratio);
        std::printf("  [%s] overall global fraction <= 30%% (%.2f%%)\n",
                    r.fraction_ok() ? "met" : "NOT met", pct(r.global_fraction));
        std::printf("  [%s] all local raises reference NLL more than other NLL (+%.4f vs %+.4f)\n",
                    r.local_ok() ? "met" : "NOT met",
                    r.variants[1].reference_nll - base.reference_nll,
                    r.variants[1].other_nll - base.other_nll);
        std::printf(
            "  [%s] pruning the busiest layer hurts references more than the sparsest (%+.4f vs "
            "%+.4f)\n",
            r.prune_ok() ? "met" : "NOT met", r.variants[2].reference_nll - base.reference_nll,
            r.variants[3].reference_nll - base.reference_nll);
    }
    return 0;
}

}  // namespace l2a::cli
