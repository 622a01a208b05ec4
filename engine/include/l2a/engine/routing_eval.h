// Does a model's routing mean something? Measured on documents whose long-range references are
// known (l2a make-docs writes them with a sidecar listing each reference span): how often the
// positions that must predict a reference run global attention compared with the others, how
// much global attention there is overall, and how much the loss on reference tokens rises when
// global attention is taken away (all tokens local, or one layer pruned).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "l2a/engine/model.h"
#include "l2a/engine/run_options.h"

namespace l2a {

// One document and where its references are: [begin, end) byte ranges of the .txt whose bytes
// can only be predicted by looking far back, with their kind ("key", "term", ...).
struct ReferencedDocument {
    std::filesystem::path path;
    std::string text;
    struct Span {
        std::size_t begin = 0, end = 0;
        std::string kind;
    };
    std::vector<Span> references;
};

// Reads FILE.txt and its sidecar FILE.json. Throws l2a::Error naming the file: no sidecar, a
// malformed one, a span outside the text.
ReferencedDocument load_referenced_document(const std::filesystem::path& txt);

// The .txt files of a folder that have a .json sidecar, sorted. Throws when there are none.
std::vector<std::filesystem::path> referenced_documents_in(const std::filesystem::path& dir);

struct RoutingEvalOptions {
    std::string device = "cpu";
    std::string backend = "reference";
    std::int64_t max_tokens = 0;  // per document; 0: all
};

// Loss of one variant of the runs, in nats per token.
struct RoutingEvalVariant {
    std::string name;  // "learned", "all local", "prune busiest (layer 3)", ...
    RunOptions options;
    double reference_nll = 0.0;  // mean over reference tokens
    double other_nll = 0.0;      // mean over the other tokens (token 0 has no prediction)
    double global_fraction = 0.0;
};

struct RoutingEvalResult {
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
    std::int64_t reference_tokens = 0;  // tokens that are (part of) a reference
    // Routing of the learned run. A "reference position" is a position whose next token is a
    // reference token: the one that must look far back to predict it. Rates are shares of
    // (position, layer) pairs that ran global attention.
    double reference_rate = 0.0;
    double other_rate = 0.0;
    double rate_ratio = 0.0;  // reference_rate / other_rate (inf when other is 0)
    // The same rates at the reference tokens themselves and at the other tokens (token 0 too).
    double reference_token_rate = 0.0;
    double other_token_rate = 0.0;
    double global_fraction = 0.0;              // over all positions and layers
    std::vector<double> layer_fraction;        // [layers]
    std::vector<double> layer_reference_rate;  // [layers]
    std::map<std::string, double> kind_rate;   // reference rate per kind of reference
    int busiest_layer = 0;                     // most global traffic in the learned run
    int sparsest_layer = 0;                    // least
    // learned, all local, prune busiest, prune sparsest (in this order).
    std::vector<RoutingEvalVariant> variants;

    // The four checks (see routing_eval_checks).
    bool rate_ratio_ok() const { return rate_ratio >= 3.0; }
    bool fraction_ok() const { return global_fraction <= 0.30; }
    bool local_ok() const;  // all-local raises reference NLL more than other NLL
    bool prune_ok()
        const;  // pruning the busiest layer hurts reference tokens more than the sparsest
};

// Runs every document four times (learned routing, all local, busiest layer pruned, sparsest
// layer pruned; the last two once the learned runs chose the layers). `progress` gets the
// fraction done and a stage ("document 3 / 8: learned"). Throws l2a::Error for a plain model or
// bad documents, l2a::Cancelled when `cancel` becomes true.
RoutingEvalResult evaluate_routing(
    const Model& model, const std::vector<std::filesystem::path>& documents,
    const RoutingEvalOptions& options,
    const std::function<void(double, std::string_view)>& progress = {},
    const std::atomic<bool>* cancel = nullptr);

// The result as JSON (every number above, the checks and their verdicts).
std::string routing_eval_json(const RoutingEvalResult& result);

}  // namespace l2a
