// The routing evaluation: four prefills per document, sums over reference and other positions.
#include "l2a/engine/routing_eval.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/document.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/error.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/tokenizer.h"

namespace l2a {

namespace fs = std::filesystem;

ReferencedDocument load_referenced_document(const fs::path& txt) {
    ReferencedDocument d;
    d.path = txt;
    const Document document = load_document(txt);
    if (document.replaced_sequences > 0)
        fail(txt.string(), "is not valid UTF-8 (reference offsets would not hold)");
    d.text = document.text;
    fs::path sidecar = txt;
    sidecar.replace_extension(".json");
    if (!fs::exists(sidecar))
        fail(sidecar.string(), "missing: the reference spans of " + txt.filename().string());
    try {
        const auto j = nlohmann::json::parse(read_text_file(sidecar));
        for (const auto& r : j.at("references")) {
            ReferencedDocument::Span s;
            s.begin = r.at("begin").get<std::size_t>();
            s.end = r.at("end").get<std::size_t>();
            s.kind = r.value("kind", std::string("reference"));
            if (s.begin >= s.end || s.end > d.text.size()) {
                fail(sidecar.string(), "reference [" + std::to_string(s.begin) + ", " +
                                           std::to_string(s.end) + ") is outside the " +
                                           std::to_string(d.text.size()) + "-byte text");
            }
            d.references.push_back(std::move(s));
        }
    } catch (const nlohmann::json::exception& e) {
        fail(sidecar.string(), "not a reference sidecar: " + describe_json_error(e.what()));
    }
    return d;
}

std::vector<fs::path> referenced_documents_in(const fs::path& dir) {
    if (!fs::is_directory(dir)) fail(dir.string(), "not a folder of documents");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        fs::path sidecar = entry.path();
        sidecar.replace_extension(".json");
        if (entry.path().extension() == ".txt" && fs::exists(sidecar))
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty())
        fail(dir.string(),
             "holds no .txt document with a .json sidecar (l2a make-docs writes them)");
    return files;
}

bool RoutingEvalResult::local_ok() const {
    if (variants.size() < 2) return false;
    return variants[1].reference_nll - variants[0].reference_nll >
           variants[1].other_nll - variants[0].other_nll;
}

bool RoutingEvalResult::prune_ok() const {
    if (variants.size() < 4) return false;
    return variants[2].reference_nll - variants[0].reference_nll >
           variants[3].reference_nll - variants[0].reference_nll;
}

namespace {

struct Prepared {
    TokenizedDocument document;
    std::vector<std::uint8_t> reference;  // [T] 1 + kind index for reference tokens, else 0
};

struct NllSums {
    double reference = 0.0, other = 0.0;
    std::int64_t reference_count = 0, other_count = 0;
    double routed = 0.0, cells = 0.0;
    void add(const Prepared& p, const PrefillResult& r) {
        for (std::size_t t = 1; t < r.token_nll.size(); ++t) {
            if (p.reference[t]) {
                reference += r.token_nll[t];
                ++reference_count;
            } else {
                other += r.token_nll[t];
                ++other_count;
            }
        }
        for (std::uint8_t d : r.decisions) routed += d;
        cells += static_cast<double>(r.decisions.size());
    }
};

double ratio(double a, double b) {
    return b > 0 ? a / b : (a > 0 ? std::numeric_limits<double>::infinity() : 0.0);
}

}  // namespace

RoutingEvalResult evaluate_routing(const Model& model, const std::vector<fs::path>& files,
                                   const RoutingEvalOptions& options,
                                   const std::function<void(double, std::string_view)>& progress,
                                   const std::atomic<bool>* cancel) {
    if (!model.config().is_l2a())
        fail("evaluate", "the model has no L2A layers: there is no routing to evaluate");
    const Tokenizer* tokenizer = model.tokenizer();
    if (!tokenizer) fail("evaluate", "the model folder has no tokenizer.json");
    if (files.empty()) fail("evaluate", "no documents");
    const int L = model.config().num_hidden_layers;

    // Documents, tokens and which tokens are references.
    std::vector<std::string> kinds;
    std::vector<Prepared> docs;
    for (const fs::path& f : files) {
        const ReferencedDocument d = load_referenced_document(f);
        Prepared p;
        p.document = tokenize_document(f.string(), d.text, 0, *tokenizer);
        truncate(p.document, options.max_tokens);
        std::vector<std::uint8_t> byte_kind(d.text.size() + 1, 0);
        for (const auto& s : d.references) {
            auto k = std::find(kinds.begin(), kinds.end(), s.kind);
            if (k == kinds.end()) k = kinds.insert(kinds.end(), s.kind);
            const auto code =
                static_cast<std::uint8_t>(std::min<std::ptrdiff_t>(254, k - kinds.begin()) + 1);
            for (std::size_t b = s.begin; b < s.end; ++b) byte_kind[b] = code;
        }
        const std::size_t T = p.document.ids.size();
        p.reference.assign(T, 0);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::uint32_t b = p.document.begin[t]; b < p.document.end[t] && b < d.text.size();
                 ++b) {
                if (byte_kind[b]) {
                    p.reference[t] = byte_kind[b];
                    break;
                }
            }
        }
        if (T < 2) fail(f.string(), "has fewer than two tokens");
        docs.push_back(std::move(p));
    }

    RunOptions base;
    base.device = options.device;
    base.backend = options.backend;
    base.token_nll = true;
    const double runs = 4.0 * static_cast<double>(docs.size());
    double done = 0;
    auto run = [&](const Prepared& p, const RunOptions& o, std::string_view what,
                   std::size_t index) {
        PrefillHooks hooks;
        hooks.cancel = cancel;
        const std::string stage = "document " + std::to_string(index + 1) + " / " +
                                  std::to_string(docs.size()) + ": " + std::string(what);
        hooks.progress = [&](const RunProgress& p) {
            if (progress) progress((done + p.fraction) / runs, stage);
        };
        PrefillResult r = run_prefill(model, p.document.ids, o, hooks);
        done += 1.0;
        return r;
    };

    RoutingEvalResult result;
    result.documents = static_cast<std::int64_t>(docs.size());
    result.layer_fraction.assign(static_cast<std::size_t>(L), 0.0);
    result.layer_reference_rate.assign(static_cast<std::size_t>(L), 0.0);
    std::vector<double> layer_total(static_cast<std::size_t>(L), 0.0),
        layer_ref(static_cast<std::size_t>(L), 0.0);
    std::vector<double> kind_routed(kinds.size(), 0.0), kind_cells(kinds.size(), 0.0);
    double ref_routed = 0, ref_cells = 0, other_routed = 0, other_cells = 0;
    double token_ref_routed = 0, token_ref_cells = 0, token_other_routed = 0, token_other_cells = 0;
    NllSums learned;
    for (std::size_t i = 0; i < docs.size(); ++i) {
        const Prepared& p = docs[i];
        const PrefillResult r = run(p, base, "learned routing", i);
        const auto T = static_cast<std::size_t>(r.num_tokens);
        result.tokens += r.num_tokens;
        for (std::size_t t = 0; t < T; ++t) result.reference_tokens += p.reference[t] ? 1 : 0;
        learned.add(p, r);
        for (std::size_t l = 0; l < static_cast<std::size_t>(L); ++l) {
            const std::uint8_t* d = r.decisions.data() + l * T;
            for (std::size_t t = 0; t < T; ++t) {
                layer_total[l] += d[t];
                (p.reference[t] ? token_ref_routed : token_other_routed) += d[t];
                (p.reference[t] ? token_ref_cells : token_other_cells) += 1;
            }
            // Position t predicts token t + 1 (the last position predicts nothing measured).
            for (std::size_t t = 0; t + 1 < T; ++t) {
                if (const std::uint8_t kind = p.reference[t + 1]) {
                    ref_routed += d[t];
                    ref_cells += 1;
                    layer_ref[l] += d[t];
                    kind_routed[kind - 1] += d[t];
                    kind_cells[kind - 1] += 1;
                } else {
                    other_routed += d[t];
                    other_cells += 1;
                }
            }
        }
    }
    const double ref_positions = ref_cells / static_cast<double>(L);
    for (std::size_t l = 0; l < static_cast<std::size_t>(L); ++l) {
        result.layer_fraction[l] = ratio(layer_total[l], static_cast<double>(result.tokens));
        result.layer_reference_rate[l] = ratio(layer_ref[l], ref_positions);
    }
    for (std::size_t k = 0; k < kinds.size(); ++k)
        result.kind_rate[kinds[k]] = ratio(kind_routed[k], kind_cells[k]);
    result.reference_rate = ratio(ref_routed, ref_cells);
    result.other_rate = ratio(other_routed, other_cells);
    result.rate_ratio = ratio(result.reference_rate, result.other_rate);
    result.reference_token_rate = ratio(token_ref_routed, token_ref_cells);
    result.other_token_rate = ratio(token_other_routed, token_other_cells);
    result.global_fraction = ratio(learned.routed, learned.cells);
    result.busiest_layer = static_cast<int>(
        std::max_element(result.layer_fraction.begin(), result.layer_fraction.end()) -
        result.layer_fraction.begin());
    result.sparsest_layer = static_cast<int>(
        std::min_element(result.layer_fraction.begin(), result.layer_fraction.end()) -
        result.layer_fraction.begin());

    auto variant = [&](std::string name, const RunOptions& o, NllSums sums) {
        RoutingEvalVariant v;
        v.name = std::move(name);
        v.options = o;
        v.reference_nll = ratio(sums.reference, static_cast<double>(sums.reference_count));
        v.other_nll = ratio(sums.other, static_cast<double>(sums.other_count));
        v.global_fraction = ratio(sums.routed, sums.cells);
        result.variants.push_back(std::move(v));
    };
    variant("learned", base, learned);
    RunOptions local = base;
    local.routing.kind = RoutingKind::Local;
    RunOptions busiest = base, sparsest = base;
    busiest.prune = {result.busiest_layer};
    sparsest.prune = {result.sparsest_layer};
    const std::pair<std::string, RunOptions> others[] = {
        {"all local", local},
        {"prune busiest (layer " + std::to_string(result.busiest_layer) + ")", busiest},
        {"prune sparsest (layer " + std::to_string(result.sparsest_layer) + ")", sparsest}};
    for (const auto& [name, o] : others) {
        NllSums sums;
        for (std::size_t i = 0; i < docs.size(); ++i) sums.add(docs[i], run(docs[i], o, name, i));
        variant(name, o, sums);
    }
    if (progress) progress(1.0, "done");
    return result;
}

std::string routing_eval_json(const RoutingEvalResult& r) {
    auto number = [](double x) {
        return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
    };
    nlohmann::json variants = nlohmann::json::array();
    for (const auto& v : r.variants) {
        variants.push_back({{"name", v.name},
                            {"routing", v.options.routing.to_string()},
                            {"prune", v.options.prune},
                            {"reference_nll", number(v.reference_nll)},
                            {"other_nll", number(v.other_nll)},
                            {"global_fraction", number(v.global_fraction)}});
    }
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [k, rate] : r.kind_rate) kinds[k] = number(rate);
    return nlohmann::json{{"documents", r.documents},
                          {"tokens", r.tokens},
                          {"reference_tokens", r.reference_tokens},
                          {"reference_rate", number(r.reference_rate)},
                          {"other_rate", number(r.other_rate)},
                          {"rate_ratio", number(r.rate_ratio)},
                          {"reference_token_rate", number(r.reference_token_rate)},
                          {"other_token_rate", number(r.other_token_rate)},
                          {"global_fraction", number(r.global_fraction)},
                          {"layer_fraction", r.layer_fraction},
                          {"layer_reference_rate", r.layer_reference_rate},
                          {"kind_rate", kinds},
                          {"busiest_layer", r.busiest_layer},
                          {"sparsest_layer", r.sparsest_layer},
                          {"variants", variants},
                          {"checks",
                           {{"reference_rate_at_least_3x_other", r.rate_ratio_ok()},
                            {"global_fraction_at_most_30_percent", r.fraction_ok()},
                            {"all_local_hurts_references_more", r.local_ok()},
                            {"pruning_busiest_hurts_references_more_than_sparsest", r.prune_ok()}}}}
               .dump(2) +
           "\n";
}

}  // namespace l2a
