// `evaluate_routing` recomputed independently: the documents are tokenized here, run through
// run_prefill with per-token losses, and the rates, fractions and losses summed again over the
// reference positions read from the sidecars; the four variants are the runs they claim to be
// (all local: no global attention; the pruned layers: the busiest and sparsest of the learned
// run). The model is the untrained generated one, whose random router routes a mix of tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/routing_eval.h"
#include "l2a/engine/synthetic_docs.h"
#include "l2a/engine/tokenizer.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kMaxTokens = 700;  // the documents are about 1,000 bytes: truncated

fs::path work() { return fs::path(L2A_TEST_WORK_DIR) / "routing_eval"; }

const Model& model() {
    static const Model m = Model::load(ensure_untrained_model(work() / "model"));
    return m;
}

// `count` generated documents with their sidecars in `dir`, seeds first_seed, first_seed + 1, ...
std::vector<fs::path> write_documents(const fs::path& dir, int count, SyntheticDocOptions o,
                                      std::uint64_t first_seed) {
    fs::create_directories(dir);
    std::vector<fs::path> out;
    for (int i = 0; i < count; ++i) {
        o.seed = first_seed + static_cast<std::uint64_t>(i);
        const SyntheticDoc d = make_synthetic_doc(o);
        const fs::path txt = dir / ("doc_" + std::to_string(i) + ".txt");
        write_text_atomically(txt, d.text);
        write_text_atomically(fs::path(txt).replace_extension(".json"),
                              synthetic_doc_sidecar_json(d, o.seed));
        out.push_back(txt);
    }
    return out;
}

// Two generated documents with their sidecars; references within the first kMaxTokens bytes.
const std::vector<fs::path>& documents() {
    static const std::vector<fs::path> files = [] {
        SyntheticDocOptions o;
        o.target_bytes = 900;
        o.min_distance = 80;
        return write_documents(work() / "docs", 2, o, 40);
    }();
    return files;
}

struct Recomputed {
    double reference_nll = 0, other_nll = 0, fraction = 0;
    double reference_rate = 0, other_rate = 0, reference_token_rate = 0, other_token_rate = 0;
    std::vector<double> layer_fraction;
};

Recomputed recompute(const RunOptions& options) {
    const int L = model().config().num_hidden_layers;
    double ref_nll = 0, other_nll = 0, ref_n = 0, other_n = 0, routed = 0, cells = 0;
    double ref_routed = 0, ref_cells = 0, other_routed = 0, other_cells = 0;
    double tok_ref_routed = 0, tok_ref_cells = 0, tok_other_routed = 0, tok_other_cells = 0;
    std::vector<double> layer(static_cast<std::size_t>(L), 0.0);
    double tokens = 0;
    for (const fs::path& f : documents()) {
        const ReferencedDocument d = load_referenced_document(f);
        Encoding e = model().tokenizer()->encode(d.text);
        e.ids.resize(std::min<std::size_t>(e.ids.size(), kMaxTokens));
        const std::size_t T = e.ids.size();
        std::vector<bool> is_reference(T, false);
        for (std::size_t t = 0; t < T; ++t) {
            for (const auto& s : d.references) {
                if (e.offsets[t].first < s.end && e.offsets[t].second > s.begin)
                    is_reference[t] = true;
            }
        }
        const PrefillResult r = run_prefill(model(), e.ids, options);
        EXPECT_EQ(r.token_nll.size(), T);
        for (std::size_t t = 1; t < T; ++t) {
            (is_reference[t] ? ref_nll : other_nll) += r.token_nll[t];
            (is_reference[t] ? ref_n : other_n) += 1;
        }
        tokens += static_cast<double>(T);
        for (int l = 0; l < L; ++l) {
            for (std::size_t t = 0; t < T; ++t) {
                const double decision = r.decisions[static_cast<std::size_t>(l) * T + t];
                routed += decision;
                cells += 1;
                layer[static_cast<std::size_t>(l)] += decision;
                (is_reference[t] ? tok_ref_routed : tok_other_routed) += decision;
                (is_reference[t] ? tok_ref_cells : tok_other_cells) += 1;
                if (t + 1 < T) {
                    (is_reference[t + 1] ? ref_routed : other_routed) += decision;
                    (is_reference[t + 1] ? ref_cells : other_cells) += 1;
                }
            }
        }
    }
    Recomputed out;
    out.reference_nll = ref_nll / ref_n;
    out.other_nll = other_nll / other_n;
    out.fraction = routed / cells;
    out.reference_rate = ref_routed / ref_cells;
    out.other_rate = other_routed / other_cells;
    out.reference_token_rate = tok_ref_routed / tok_ref_cells;
    out.other_token_rate = tok_other_routed / tok_other_cells;
    for (double& x : layer) x /= tokens;
    out.layer_fraction = layer;
    return out;
}

RunOptions base_options() {
    RunOptions o;
    o.token_nll = true;
    return o;
}

TEST(RoutingEval, AgreesWithAnIndependentRecomputation) {
    RoutingEvalOptions options;
    options.max_tokens = kMaxTokens;
    std::vector<double> progress;
    const RoutingEvalResult r = evaluate_routing(
        model(), documents(), options, [&](double f, std::string_view) { progress.push_back(f); });
    ASSERT_EQ(r.variants.size(), 4u);
    EXPECT_EQ(r.documents, 2);
    EXPECT_EQ(r.tokens, 2 * kMaxTokens);
    EXPECT_GT(r.reference_tokens, 0);
    ASSERT_FALSE(progress.empty());
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
    EXPECT_DOUBLE_EQ(progress.back(), 1.0);

    const Recomputed learned = recompute(base_options());
    ASSERT_GT(learned.fraction, 0.02) << "the random router should route some tokens";
    ASSERT_LT(learned.fraction, 0.98) << "and keep some local";
    EXPECT_NEAR(r.global_fraction, learned.fraction, 1e-12);
    EXPECT_NEAR(r.reference_rate, learned.reference_rate, 1e-12);
    EXPECT_NEAR(r.other_rate, learned.other_rate, 1e-12);
    EXPECT_NEAR(r.reference_token_rate, learned.reference_token_rate, 1e-12);
    EXPECT_NEAR(r.other_token_rate, learned.other_token_rate, 1e-12);
    EXPECT_NEAR(r.rate_ratio, learned.reference_rate / learned.other_rate, 1e-9);
    EXPECT_NEAR(r.variants[0].reference_nll, learned.reference_nll, 1e-9);
    EXPECT_NEAR(r.variants[0].other_nll, learned.other_nll, 1e-9);
    ASSERT_EQ(r.layer_fraction.size(), learned.layer_fraction.size());
    for (std::size_t l = 0; l < learned.layer_fraction.size(); ++l) {
        EXPECT_NEAR(r.layer_fraction[l], learned.layer_fraction[l], 1e-12) << "layer " << l;
    }
    const auto busiest =
        std::max_element(learned.layer_fraction.begin(), learned.layer_fraction.end());
    const auto sparsest =
        std::min_element(learned.layer_fraction.begin(), learned.layer_fraction.end());
    EXPECT_EQ(r.busiest_layer, busiest - learned.layer_fraction.begin());
    EXPECT_EQ(r.sparsest_layer, sparsest - learned.layer_fraction.begin());
    EXPECT_NE(r.busiest_layer, r.sparsest_layer);

    // All local: no global attention anywhere, and the losses of a Local run.
    RunOptions local = base_options();
    local.routing.kind = RoutingKind::Local;
    const Recomputed all_local = recompute(local);
    EXPECT_EQ(r.variants[1].global_fraction, 0.0);
    EXPECT_NEAR(r.variants[1].reference_nll, all_local.reference_nll, 1e-9);
    EXPECT_NEAR(r.variants[1].other_nll, all_local.other_nll, 1e-9);
    EXPECT_NE(r.variants[1].other_nll, r.variants[0].other_nll);

    // The pruned runs: the named layers, and their losses.
    for (int v : {2, 3}) {
        RunOptions pruned = base_options();
        pruned.prune = {v == 2 ? r.busiest_layer : r.sparsest_layer};
        EXPECT_EQ(r.variants[static_cast<std::size_t>(v)].options.prune, pruned.prune);
        const Recomputed p = recompute(pruned);
        EXPECT_NEAR(r.variants[static_cast<std::size_t>(v)].reference_nll, p.reference_nll, 1e-9);
        EXPECT_NEAR(r.variants[static_cast<std::size_t>(v)].global_fraction, p.fraction, 1e-12);
        if (v == 2) {
            EXPECT_LT(p.fraction, learned.fraction);
        } else {
            EXPECT_LE(p.fraction, learned.fraction);
        }
    }

    // The checks are the comparisons they name.
    EXPECT_EQ(r.local_ok(), (all_local.reference_nll - learned.reference_nll) >
                                (all_local.other_nll - learned.other_nll));
    EXPECT_EQ(r.fraction_ok(), learned.fraction <= 0.30);
    EXPECT_EQ(r.rate_ratio_ok(), r.rate_ratio >= 3.0);
    const auto j = nlohmann::json::parse(routing_eval_json(r));
    EXPECT_NEAR(j.at("global_fraction").get<double>(), r.global_fraction, 1e-12);
    EXPECT_EQ(j.at("variants").size(), 4u);
}

TEST(RoutingEval, BadInputNamesTheFile) {
    const fs::path dir = work() / "bad";
    fs::remove_all(dir);
    fs::create_directories(dir);
    EXPECT_CONTAINS(test::message_of([&] { referenced_documents_in(dir); }), "make-docs");
    write_text_atomically(dir / "a.txt", "short text");
    EXPECT_CONTAINS(test::message_of([&] { load_referenced_document(dir / "a.txt"); }), "a.json");
    write_text_atomically(dir / "a.json", "{\"references\": [{\"begin\": 3, \"end\": 400}]}");
    EXPECT_CONTAINS(test::message_of([&] { load_referenced_document(dir / "a.txt"); }), "outside");
    write_text_atomically(dir / "a.json", "{\"refs\": 1}");
    EXPECT_CONTAINS(test::message_of([&] { load_referenced_document(dir / "a.txt"); }), "a.json");
    RoutingEvalOptions options;
    EXPECT_CONTAINS(test::message_of([&] { evaluate_routing(model(), {}, options); }),
                    "no documents");
}

// The shipped demo model, on generated documents it was not trained on (a seed of their own, as
// scripts/train-demo makes its held-out set): its routing meets the four checks of its model
// card. The untrained model meets none of the three that need a trained router.
TEST(RoutingEval, ShippedDemoModelRoutesTheLongRangeReferences) {
    // 8,192 bytes each, references 1,536 bytes or more after their facts.
    const std::vector<fs::path> files =
        write_documents(work() / "heldout", 3, SyntheticDocOptions{}, 99000);
    const Model demo = Model::load(require_demo_model());
    const RoutingEvalResult r = evaluate_routing(demo, files, RoutingEvalOptions{});
    EXPECT_TRUE(r.rate_ratio_ok()) << r.rate_ratio;
    EXPECT_GE(r.reference_token_rate, 3.0 * r.other_token_rate) << routing_eval_json(r);
    EXPECT_TRUE(r.fraction_ok()) << r.global_fraction;
    EXPECT_TRUE(r.local_ok()) << routing_eval_json(r);
    EXPECT_TRUE(r.prune_ok()) << routing_eval_json(r);
    // Global attention is what predicts the references: without it their loss grows by far.
    EXPECT_GT(r.variants[1].reference_nll - r.variants[0].reference_nll, 0.5)
        << routing_eval_json(r);

    const RoutingEvalResult untrained = evaluate_routing(model(), files, RoutingEvalOptions{});
    EXPECT_FALSE(untrained.rate_ratio_ok() && untrained.local_ok() && untrained.prune_ok())
        << routing_eval_json(untrained);
}

}  // namespace
}  // namespace l2a
