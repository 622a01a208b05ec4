// `l2a explain`: why a token went global (its global attention over the keys before it), and
// `l2a oracle`: how well each layer's router picks the tokens whose global attention reaches
// past the local window.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "arguments.h"
#include "commands.h"
#include "engine_option.h"
#include "guards.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/lens.h"
#include "l2a/engine/oracle.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/units.h"
#include "l2a/profiler/study.h"
#include "model_source.h"
#include "study_printer.h"
#include "text_format.h"

namespace l2a::cli {
namespace {

using json = nlohmann::json;

// A token's text as one line ("" without text), for reports.
std::string token_text(const Profile& p, std::int64_t t) {
    const auto i = static_cast<std::size_t>(t);
    if (i >= p.token_begin.size() || p.token_end[i] > p.document_text.size() ||
        p.token_begin[i] > p.token_end[i]) {
        return {};
    }
    std::string text = p.document_text.substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]);
    for (char& c : text) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return text;
}

// The study with its base: a profile adopted (--profile), or the document run (--doc, or the
// demo document) up to the token asked about.
struct Based {
    std::unique_ptr<Study> study;
    std::shared_ptr<const Profile> profile;
};

Based open_base(const Arguments& args, std::optional<std::int64_t> through_token,
                StudyPrinter& printer) {
    Based b;
    const auto profile_path = args.value("--profile");
    if (profile_path) {
        if (args.has("--doc"))
            args.usage_error("give either --doc FILE or --profile FILE, not both");
        auto profile = std::make_shared<const Profile>(load_profile(*profile_path));
        std::optional<ModelSpec> spec;
        if (args.has("--model") || args.has("--demo")) {
            spec = model_spec(args);
            spec->placement.device = profile->options.device;
            if (!profile->dtype.empty()) spec->placement.dtype = profile->dtype;
        }
        b.study = open_study(args);
        b.study->adopt(profile, *profile_path, spec, printer.events());
        b.profile = std::move(profile);
        return b;
    }
    if (!args.has("--model") && !args.has("--demo")) {
        args.usage_error(
            "give the model (--model DIR or --demo) and --doc FILE, or --profile FILE");
    }
    ModelSpec spec = model_spec(args);
    if (auto device = args.value("--device")) spec.placement.device = *device;
    b.study = open_study(args);
    b.study->open_model(spec, printer.events());
    StudyRunSpec run;
    run.options.device = spec.placement.device;
    if (auto doc = args.value("--doc")) {
        if (remote_engine(args)) {
            run.document.text = load_document(*doc).text;
        } else {
            run.document.path = *doc;
        }
        run.document.label = *doc;
    }
    // A token's attention reads only the tokens before it: the run stops there.
    if (through_token) run.options.max_tokens = *through_token + 1;
    b.profile = b.study->run(run, printer.events()).profile;
    return b;
}

json source_json(const Profile& p, std::int64_t token, float weight) {
    return {{"token", token}, {"weight", weight}, {"text", token_text(p, token)}};
}

}  // namespace

int explain_command(std::span<const std::string_view> raw) {
    Arguments args("explain",
                   {kModelOption,
                    kDemoOption,
                    {"--doc", true},
                    {"--profile", true},
                    {"--token", true},
                    {"--layer", true},
                    {"--top", true},
                    {"--device", true},
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--threads", true},
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("explain"), stdout);
        return 0;
    }
    const auto token = args.integer("--token", 0, std::int64_t{1} << 40);
    const auto layer = args.integer("--layer", 0, 1 << 20);
    if (!token) args.usage_error("give the token: --token T (counted from 0)");
    if (!layer) args.usage_error("give the layer: --layer L (counted from 0)");
    const auto top = static_cast<std::size_t>(args.integer("--top", 1, 1 << 20).value_or(10));
    if (args.has("--profile") && args.has("--device")) {
        args.usage_error("--device: a profile runs again where it was recorded");
    }
    int threads = 0;
    prepare_compute(args, "", threads);
    StudyPrinter printer(args.has("--quiet"));
    const Based b = open_base(args, token, printer);
    if (*token >= b.profile->num_tokens()) {
        fail(args.value("--profile").value_or(b.profile->document_path),
             "token " + std::to_string(*token) + " does not exist (the run has " +
                 group_digits(b.profile->num_tokens()) + " tokens: 0-" +
                 std::to_string(b.profile->num_tokens() - 1) + ")");
    }
    const StudyExplanation e = b.study->explain(*token, static_cast<int>(*layer), printer.events());
    printer.finish();
    throw_if_cancelled();
    const AttentionLens& lens = e.lens;
    const Profile& p = *b.profile;
    const auto keys = static_cast<std::size_t>(lens.token + 1);
    const std::vector<std::int64_t> sources = top_weights(lens.mean_weights, top);

    if (args.has("--json")) {
        const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        json j;
        j["token"] = lens.token;
        j["layer"] = lens.layer;
        j["decision"] = e.decision ? 1 : 0;
        j["router_logit"] = number(e.router_logit);
        j["probability"] = number(e.probability);
        j["distant_mass"] = lens.distant_mass;
        j["window"] = lens.window;
        j["sources"] = json::array();
        for (std::int64_t s : sources) {
            j["sources"].push_back(
                source_json(p, s, lens.mean_weights[static_cast<std::size_t>(s)]));
        }
        j["heads"] = json::array();
        for (std::int64_t h = 0; h < lens.heads; ++h) {
            const std::span<const float> row(
                lens.weights.data() + static_cast<std::size_t>(h) * keys, keys);
            json head_top = json::array();
            for (std::int64_t s : top_weights(row, top)) {
                head_top.push_back({{"token", s}, {"weight", row[static_cast<std::size_t>(s)]}});
            }
            j["heads"].push_back(
                {{"head", h},
                 {"distant_mass", lens.head_distant_mass[static_cast<std::size_t>(h)]},
                 {"top", std::move(head_top)}});
        }
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("token %lld \"%s\", layer %d of %s\n", static_cast<long long>(lens.token),
                token_text(p, lens.token).c_str(), lens.layer, p.document_path.c_str());
    std::printf("router      logit %s, probability %s: %s\n",
                format_fixed(e.router_logit, 3).c_str(), format_fixed(e.probability, 3).c_str(),
                e.decision ? "ran global attention" : "local only");
    std::printf(
        "distant     %s of its global attention is on keys older than the window of %s "
        "(tokens 0-%lld)\n",
        format_percent(lens.distant_mass).c_str(), group_digits(lens.window).c_str(),
        static_cast<long long>(std::max<std::int64_t>(lens.token - lens.window, -1)));
    std::printf("\n%8s  %8s  %8s  %s\n", "source", "weight", "distance", "text");
    for (std::int64_t s : sources) {
        std::printf("%8lld  %8s  %8lld  \"%s\"%s\n", static_cast<long long>(s),
                    format_fixed(lens.mean_weights[static_cast<std::size_t>(s)], 4).c_str(),
                    static_cast<long long>(lens.token - s), token_text(p, s).c_str(),
                    lens.token - s >= lens.window ? "  (beyond the window)" : "");
    }
    std::printf("\nper head: distant mass");
    for (std::int64_t h = 0; h < lens.heads; ++h) {
        std::printf(" %s",
                    format_percent(lens.head_distant_mass[static_cast<std::size_t>(h)], 0).c_str());
    }
    std::printf(
        "\n(weights: the mean over heads of the global attention's softmax; each head's "
        "weights sum to 1 over tokens 0-%lld)\n",
        static_cast<long long>(lens.token));
    return 0;
}

int oracle_command(std::span<const std::string_view> raw) {
    Arguments args("oracle",
                   {kModelOption,
                    kDemoOption,
                    {"--profile", true},
                    {"--out", true},
                    {"--min-mass", true},
                    kEngineOption,
                    kTokenFileOption,
                    kTlsCaOption,
                    {"--threads", true},
                    {"--json", false},
                    {"--quiet", false}},
                   raw);
    if (args.help()) {
        std::fputs(help_text("oracle"), stdout);
        return 0;
    }
    if (!args.has("--profile")) args.usage_error("give the run to score: --profile FILE");
    const double min_mass = args.number("--min-mass").value_or(kDefaultMinDistantMass);
    if (!(min_mass >= 0.0 && min_mass <= 1.0)) {
        args.usage_error("--min-mass: " + *args.value("--min-mass") + " is not between 0 and 1");
    }
    const auto out = args.value("--out");
    if (out) check_output_file(args, {"--out", *out}, {{"--profile", *args.value("--profile")}});
    int threads = 0;
    prepare_compute(args, "", threads);
    StudyPrinter printer(args.has("--quiet"));
    const Based b = open_base(args, std::nullopt, printer);
    const std::shared_ptr<const Profile> scored = b.study->oracle(min_mass, printer.events());
    printer.finish();
    throw_if_cancelled();
    const Profile& p = *scored;
    if (out) {
        save_profile(p, *out);
        if (!args.has("--quiet")) std::fprintf(stderr, "l2a: wrote %s\n", out->c_str());
    }
    const std::vector<LayerOracle> layers = score_layers(
        p.distant_mass, p.router_logits, p.decisions, p.num_layers, p.num_tokens(), min_mass);
    if (args.has("--json")) {
        const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        json j = {{"profile", *args.value("--profile")},
                  {"min_mass", min_mass},
                  {"layers", json::array()}};
        for (std::size_t l = 0; l < layers.size(); ++l) {
            const LayerOracle& o = layers[l];
            j["layers"].push_back({{"layer", l},
                                   {"auc", number(o.auc)},
                                   {"precision", number(o.precision)},
                                   {"recall", number(o.recall)},
                                   {"mean_distant_mass_routed", number(o.mean_distant_mass_routed)},
                                   {"mean_distant_mass_local", number(o.mean_distant_mass_local)},
                                   {"ratio", number(o.ratio)},
                                   {"ceiling_ratio", number(o.ceiling_ratio)},
                                   {"positives", o.positives},
                                   {"missed", o.missed}});
        }
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    const auto cell = [](double v, int decimals) {
        return std::isfinite(v) ? format_fixed(v, decimals) : std::string("n/a");
    };
    std::printf(
        "routing oracle of %s: %s tokens; a token needs global attention when at least "
        "%s of it falls beyond the window\n\n",
        args.value("--profile")->c_str(), group_digits(p.num_tokens()).c_str(),
        format_setting_percent(min_mass).c_str());
    std::printf("%5s  %7s  %6s  %9s  %6s  %12s  %12s  %6s  %7s  %s\n", "layer", "global", "AUC",
                "precision", "recall", "mass routed", "mass local", "ratio", "ceiling",
                "missed (highest first)");
    for (std::size_t l = 0; l < layers.size(); ++l) {
        const LayerOracle& o = layers[l];
        std::string missed;
        for (std::size_t i = 0; i < std::min<std::size_t>(o.missed.size(), 5); ++i) {
            missed += (i ? ", " : "") + std::to_string(o.missed[i]);
        }
        if (o.missed.size() > 5) missed += ", ...";
        const double global =
            l < p.metrics.global_fraction.size() ? p.metrics.global_fraction[l] : 0;
        std::printf("%5zu  %7s  %6s  %9s  %6s  %12s  %12s  %6s  %7s  %s\n", l,
                    format_percent(global).c_str(), cell(o.auc, 3).c_str(),
                    cell(o.precision, 3).c_str(), cell(o.recall, 3).c_str(),
                    cell(o.mean_distant_mass_routed, 3).c_str(),
                    cell(o.mean_distant_mass_local, 3).c_str(), cell(o.ratio, 2).c_str(),
                    cell(o.ceiling_ratio, 2).c_str(), missed.empty() ? "none" : missed.c_str());
    }
    std::printf(
        "\nAUC: how well the router logit ranks the tokens that need global attention "
        "above those that do not (0.5: chance)\n"
        "ratio: mass routed / mass local; ceiling: the same for the best choice of as many tokens "
        "(near 1: the layer looks far for every token alike)\n");
    return 0;
}

}  // namespace l2a::cli
