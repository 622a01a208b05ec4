// Training on the CPU with a tiny byte-level L2A model: the loss goes down, the sparsity weight
// makes routing sparser, a resumed run continues exactly as an uninterrupted one, the router
// learns through the straight-through estimator, and the checkpoint runs in the engine.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/config.h"
#include "l2a/engine/construct.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/safetensors.h"
#include "l2a/engine/synthetic_docs.h"
#include "l2a/engine/tokenizer.h"
#include "l2a/engine/train.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

fs::path work() { return fs::path(L2A_TEST_WORK_DIR) / "train"; }

ModelConfig tiny_config() {
    ModelConfig c;
    c.model_type = ModelType::L2AQwen3;
    c.vocab_size = 259;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 16;
    c.max_position_embeddings = 4096;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    c.l2a.sliding_window = 16;
    c.l2a.sigmoid_temp = 0.1;
    c.l2a.sigmoid_threshold = 0.5;
    return c;
}

// Documents and the byte-level tokenizer, once per process.
const fs::path& data_dir() {
    static const fs::path dir = [] {
        const fs::path d = work() / "data";
        fs::create_directories(d);
        for (int i = 0; i < 4; ++i) {
            SyntheticDocOptions o;
            o.target_bytes = 3000;
            o.min_distance = 200;
            o.seed = 100 + static_cast<std::uint64_t>(i);
            write_text_atomically(d / ("doc_" + std::to_string(i) + ".txt"),
                                  make_synthetic_doc(o).text);
        }
        write_text_atomically(work() / "tokenizer.json", byte_level_tokenizer_json());
        return d;
    }();
    return dir;
}

TrainOptions tiny_options(const std::string& name) {
    TrainOptions o;
    o.init_config = tiny_config();
    o.tokenizer_json = work() / "tokenizer.json";
    o.data_dir = data_dir();
    o.out_dir = work() / name;
    fs::remove_all(o.out_dir);
    o.train_all = true;
    o.steps = 40;
    o.batch = 2;
    o.seq_len = 64;
    o.lr = 3e-3;
    o.warmup = 4;
    o.lambda = 0.0;
    o.dense_prob = 0.1;
    o.seed = 3;
    return o;
}

double mean_of(const std::vector<TrainStepLog>& steps, std::size_t first, std::size_t count,
               double TrainStepLog::*field) {
    double sum = 0.0;
    for (std::size_t i = first; i < first + count; ++i) sum += steps[i].*field;
    return sum / static_cast<double>(count);
}

double routed(const std::vector<TrainStepLog>& steps, std::size_t first, std::size_t count) {
    double sum = 0.0;
    for (std::size_t i = first; i < first + count; ++i) {
        sum +=
            std::accumulate(steps[i].global_fraction.begin(), steps[i].global_fraction.end(), 0.0) /
            static_cast<double>(steps[i].global_fraction.size());
    }
    return sum / static_cast<double>(count);
}

std::vector<float> tensor(const fs::path& file, const std::string& name) {
    const auto f = SafetensorsFile::open(file);
    return test::read_tensor<float>(f, name, DType::F32);
}

TEST(Train, LossGoesDownAndTheCheckpointRuns) {
    TrainOptions o = tiny_options("loss");
    const TrainResult r = train(o);
    ASSERT_EQ(r.steps.size(), 40u);
    const double first = mean_of(r.steps, 0, 5, &TrainStepLog::cross_entropy);
    const double last = mean_of(r.steps, 35, 5, &TrainStepLog::cross_entropy);
    EXPECT_LT(last, first - 0.5) << "cross-entropy " << first << " -> " << last;
    EXPECT_GT(r.trainable_parameters, 0);
    EXPECT_TRUE(fs::exists(o.out_dir / "train.csv"));

    // The checkpoint is an l2a_qwen3 model the engine runs.
    const Model model = Model::load(r.last_checkpoint);
    EXPECT_TRUE(model.summary().is_l2a);
    ASSERT_NE(model.tokenizer(), nullptr);
    const std::vector<std::int32_t> ids =
        model.tokenizer()->encode("Key K-1234 is 'amber falcon'.").ids;
    const PrefillResult run = run_prefill(model, ids, RunOptions{});
    EXPECT_EQ(run.num_layers, 2);
    EXPECT_TRUE(std::isfinite(run.token_nll.back()));
}

TEST(Train, SparsityGrowsWithLambda) {
    // The sparsity term (mean over layers and tokens of p^2) at the end of equal runs that
    // differ only in lambda: each larger lambda ends sparser, and no run routes more tokens.
    // (lambda 2e-4 weighs p^2 at 2e-4 x 64 tokens / 2 layers = 0.0064 nats per token and layer.)
    std::vector<double> term, fraction;
    for (const double lambda : {0.0, 2e-4, 0.1}) {
        TrainOptions o = tiny_options("lambda" + std::to_string(term.size()));
        o.lambda = lambda;
        o.seed = 5;  // weights where lambda 0 keeps about half the tokens routed
        const TrainResult r = train(o);
        term.push_back(mean_of(r.steps, 35, 5, &TrainStepLog::sparsity));
        fraction.push_back(routed(r.steps, 35, 5));
        if (lambda > 0) {
            EXPECT_EQ(r.steps[2].lambda, 0.0);               // still warming up
            EXPECT_NEAR(r.steps[39].lambda, lambda, 1e-12);  // ramped to the end
        }
    }
    EXPECT_LT(term[1], term[0] * 0.5) << term[0] << " -> " << term[1];
    EXPECT_LT(term[2], term[1] * 0.5) << term[1] << " -> " << term[2];
    RecordProperty("sparsity_terms", std::to_string(term[0]) + " " + std::to_string(term[1]) + " " +
                                         std::to_string(term[2]));
    EXPECT_LE(fraction[2], fraction[0]);
}

// A run of `o` stopped (as by Ctrl-C) once step `last` is done: its checkpoint is `last`.
TrainResult stopped_after(const TrainOptions& o, std::int64_t last) {
    std::atomic<bool> stop{false};
    return train(
        o, [&](const TrainStepLog& s) { stop = s.step >= last; }, &stop);
}

TEST(Train, ResumeContinuesExactly) {
    TrainOptions straight = tiny_options("straight");
    straight.steps = 16;
    const TrainResult whole = train(straight);

    TrainOptions first = tiny_options("resumed");
    first.steps = 16;
    ASSERT_EQ(stopped_after(first, 8).steps.size(), 8u);
    TrainOptions second = first;
    second.resume = true;
    const TrainResult rest = train(second);
    ASSERT_EQ(rest.steps.size(), 8u);
    for (std::size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(rest.steps[i].step, static_cast<std::int64_t>(9 + i));
        EXPECT_EQ(rest.steps[i].loss, whole.steps[8 + i].loss) << "step " << 9 + i;
    }
    const auto a = tensor(whole.last_checkpoint / "model.safetensors",
                          "model.layers.1.self_attn.sigmoid_linear.weight");
    const auto b = tensor(rest.last_checkpoint / "model.safetensors",
                          "model.layers.1.self_attn.sigmoid_linear.weight");
    EXPECT_EQ(a, b);

    // Other options than the checkpoint's are refused, naming the state file.
    TrainOptions other = first;
    other.resume = true;
    other.lr = 1e-2;
    EXPECT_CONTAINS(test::message_of([&] { train(other); }), "train_state.json");
}

// The first step's cross-entropy is the initial model's loss on the window: with one document
// exactly one window long, it must equal the inference engine's mean NLL on that document
// (learned routing; the window W = 16 < T, so the blocked local attention is exercised, and a
// random router routes some tokens and not others). Plain models too.
double engine_mean_nll(const Model& model, const std::vector<std::int32_t>& ids) {
    const PrefillResult run = run_prefill(model, ids, RunOptions{});
    double sum = 0.0;
    for (std::size_t t = 1; t < run.token_nll.size(); ++t) sum += run.token_nll[t];
    return sum / static_cast<double>(run.token_nll.size() - 1);
}

// One generated document of about `bytes` bytes (references 50+ bytes back) as `folder`/doc.txt,
// for runs whose one training window is the whole document; returns its text.
std::string write_one_doc(const fs::path& folder, std::size_t bytes, std::uint64_t seed) {
    fs::create_directories(folder);
    SyntheticDocOptions d;
    d.target_bytes = bytes;
    d.min_distance = 50;
    d.seed = seed;
    std::string text = make_synthetic_doc(d).text;
    write_text_atomically(folder / "doc.txt", text);
    return text;
}

TEST(Train, FirstStepLossEqualsTheEngine) {
    const fs::path one = work() / "one-doc";
    const std::string text = write_one_doc(one, 200, 5);
    for (const ModelType type : {ModelType::L2AQwen3, ModelType::Qwen3}) {
        for (const bool checkpointing : {false, true}) {
            TrainOptions o = tiny_options(std::string("first-step-") + model_type_name(type) +
                                          (checkpointing ? "-ckpt" : ""));
            o.init_config->model_type = type;
            o.data_dir = one;
            o.batch = 1;
            o.seq_len = static_cast<std::int64_t>(text.size()) -
                        1;  // the document plus <|endoftext|>: one window
            o.steps = 1;
            o.gradient_checkpointing = checkpointing;
            const TrainResult r = train(o);
            const Model model = Model::random(*o.init_config, o.seed, Placement{});
            const Encoding e = Tokenizer::from_file(o.tokenizer_json).encode(text);
            EXPECT_NEAR(r.steps[0].cross_entropy, engine_mean_nll(model, e.ids), 2e-5)
                << model_type_name(type);
            if (type == ModelType::L2AQwen3) {
                const auto& f = r.steps[0].global_fraction;
                ASSERT_EQ(f.size(), 2u);
                EXPECT_GT(f[0] + f[1], 0.0);  // a random router routes some tokens
                EXPECT_LT(f[0] + f[1], 2.0);  // and not all
            } else {
                EXPECT_TRUE(r.steps[0].global_fraction.empty());
            }
        }
    }
}

// The training forward (train.cpp) and the inference engine (prefill.cpp) are two definitions of
// one model: the first step's cross-entropy equals the engine's mean NLL, and each layer's share
// of routed tokens equals the engine's decisions, for every router input mode of both L2A model
// types and for the plain types.
TEST(Train, ForwardEqualsTheEngineForEveryModelTypeAndRouterInput) {
    const fs::path one = work() / "one-doc-routers";
    fs::create_directories(one);
    SyntheticDocOptions d;
    d.target_bytes = 200;
    d.min_distance = 50;
    d.seed = 6;
    const std::string text = make_synthetic_doc(d).text;
    write_text_atomically(one / "doc.txt", text);
    struct Case {
        ModelType type;
        bool sigmoid_linear;
        const char* sig_input_type;
        RouterInput input;
    };
    const Case cases[] = {
        {ModelType::L2AQwen3, true, "hidden_linearproj", RouterInput::HiddenLinearProj},
        {ModelType::L2AQwen3, true, "hidden_firstdim", RouterInput::HiddenFirstDim},
        {ModelType::L2AQwen3, false, "hidden_linearproj", RouterInput::HiddenMean},
        {ModelType::L2AQwen2, true, "hidden_linearproj", RouterInput::HiddenLinearProj},
        {ModelType::L2AQwen2, true, "hidden_firstdim", RouterInput::HiddenFirstDim},
        {ModelType::L2AQwen2, false, "hidden_linearproj", RouterInput::HiddenMean},
        {ModelType::Qwen3, true, "hidden_linearproj", RouterInput::HiddenLinearProj},
        {ModelType::Qwen2, true, "hidden_linearproj", RouterInput::HiddenLinearProj},
    };
    for (const Case& k : cases) {
        const std::string label = std::string(model_type_name(k.type)) + " " + k.sig_input_type +
                                  (k.sigmoid_linear ? "" : " (mean)");
        TrainOptions o = tiny_options(std::string("forward-") + model_type_name(k.type) + "-" +
                                      k.sig_input_type + (k.sigmoid_linear ? "" : "-mean"));
        ModelConfig& c = *o.init_config;
        c.model_type = k.type;
        c.attention_bias = k.type == ModelType::Qwen2 || k.type == ModelType::L2AQwen2;
        c.l2a.sigmoid_linear = k.sigmoid_linear;
        c.l2a.sig_input_type = k.sig_input_type;
        c.l2a.router_input = k.input;
        o.data_dir = one;
        o.batch = 1;
        o.seq_len = static_cast<std::int64_t>(text.size()) -
                    1;  // the document plus <|endoftext|>: one window
        o.steps = 1;
        const TrainResult r = train(o);
        const Model model = Model::random(c, o.seed, Placement{});
        const Encoding e = Tokenizer::from_file(o.tokenizer_json).encode(text);
        const PrefillResult run = run_prefill(model, e.ids, RunOptions{});
        double nll = 0.0;
        for (std::size_t t = 1; t < run.token_nll.size(); ++t) nll += run.token_nll[t];
        nll /= static_cast<double>(run.token_nll.size() - 1);
        EXPECT_NEAR(r.steps[0].cross_entropy, nll, 2e-5) << label;
        if (!c.is_l2a()) {
            EXPECT_TRUE(r.steps[0].global_fraction.empty()) << label;
            continue;
        }
        const auto& fraction = r.steps[0].global_fraction;
        ASSERT_EQ(fraction.size(), 2u) << label;
        // Training sees the window's inputs, every token but the last; decisions are causal, so
        // the engine's first seq_len decisions of each layer are the ones to compare.
        const auto T = static_cast<std::size_t>(run.num_tokens);
        const auto inputs = static_cast<std::ptrdiff_t>(o.seq_len);
        double routed_layers = 0.0;
        for (std::size_t layer = 0; layer < 2; ++layer) {
            const auto first = run.decisions.begin() + static_cast<std::ptrdiff_t>(layer * T);
            const double engine = static_cast<double>(std::accumulate(first, first + inputs, 0)) /
                                  static_cast<double>(inputs);
            EXPECT_NEAR(fraction[layer], engine, 1e-6) << label << ", layer " << layer;
            routed_layers += engine;
        }
        // Random routers route some tokens and not all, so the decisions are tested both ways.
        EXPECT_GT(routed_layers, 0.0) << label;
        EXPECT_LT(routed_layers, 2.0) << label;
    }
}

// Gradient checkpointing recomputes each layer in the backward pass: the same updates as
// keeping every activation (to rounding), for an L2A model with the dense draws and for the
// attention-only group (frozen embeddings: the first layer's input needs no gradient).
TEST(Train, GradientCheckpointingGivesTheSameWeights) {
    for (const bool all : {true, false}) {
        TrainOptions plain = tiny_options(std::string("ckpt-off-") + (all ? "all" : "attn"));
        plain.steps = 4;
        plain.train_all = all;
        plain.dense_prob = 0.5;
        TrainOptions checkpointed = plain;
        checkpointed.out_dir = work() / (std::string("ckpt-on-") + (all ? "all" : "attn"));
        fs::remove_all(checkpointed.out_dir);
        checkpointed.gradient_checkpointing = true;
        const TrainResult a = train(plain), b = train(checkpointed);
        for (std::size_t i = 0; i < a.steps.size(); ++i)
            EXPECT_NEAR(a.steps[i].loss, b.steps[i].loss, 1e-5);
        const auto fa = SafetensorsFile::open(a.last_checkpoint / "model.safetensors");
        const auto fb = SafetensorsFile::open(b.last_checkpoint / "model.safetensors");
        for (const std::string name :
             {"model.layers.0.self_attn.q_proj.weight",
              "model.layers.1.self_attn.o_proj_global.weight",
              "model.layers.0.self_attn.sigmoid_linear.weight", "model.embed_tokens.weight"}) {
            const auto x = test::read_tensor<float>(fa, name, DType::F32),
                       y = test::read_tensor<float>(fb, name, DType::F32);
            ASSERT_EQ(x.size(), y.size());
            double worst = 0.0;
            for (std::size_t i = 0; i < x.size(); ++i)
                worst = std::max(worst, static_cast<double>(std::abs(x[i] - y[i])));
            EXPECT_LT(worst, 1e-5) << name;
        }
    }
}

// A plain Qwen3 model (the base of the recipe) trains, and l2a construct turns its checkpoint
// into an L2A model.
TEST(Train, PlainBaseTrainsAndConstructs) {
    TrainOptions o = tiny_options("plain");
    o.init_config->model_type = ModelType::Qwen3;
    o.lambda = 1e-3;  // no sparsity term without routers: the log says lambda 0 all the same
    const TrainResult r = train(o);
    EXPECT_LT(mean_of(r.steps, 35, 5, &TrainStepLog::cross_entropy),
              mean_of(r.steps, 0, 5, &TrainStepLog::cross_entropy) - 0.5);
    EXPECT_DOUBLE_EQ(r.steps.back().sparsity, 0.0);
    EXPECT_DOUBLE_EQ(r.steps.back().lambda, 0.0);
    const Model base = Model::load(r.last_checkpoint);
    EXPECT_FALSE(base.summary().is_l2a);
    const std::string header = read_text_file(o.out_dir / "train.csv").substr(0, 80);
    EXPECT_EQ(header.find("global_fraction"), std::string::npos);
    const fs::path l2a = work() / "plain-constructed";
    fs::remove_all(l2a);
    ConstructOptions c;
    c.window = 4096;
    construct_l2a(r.last_checkpoint, l2a, c);
    // Every token local with a window covering the text: the base model's loss.
    const Model constructed = Model::load(l2a);
    const std::vector<std::int32_t> ids =
        base.tokenizer()->encode("Key K-1234 is 'amber falcon'. Recall that key").ids;
    RunOptions local;
    local.routing.kind = RoutingKind::Local;
    const PrefillResult x = run_prefill(base, ids, RunOptions{}),
                        y = run_prefill(constructed, ids, local);
    for (std::size_t t = 1; t < ids.size(); ++t) EXPECT_NEAR(x.token_nll[t], y.token_nll[t], 1e-4);
}

// --train local: the local set, norms and routers train, while the global attention set and its
// input norm keep their bytes (with dense draws, so the global set does get gradients); a plain
// model, or the whole network, cannot be trained that way.
TEST(Train, LocalGroupKeepsTheGlobalSetFixed) {
    TrainOptions o = tiny_options("local-group");
    o.train_all = false;
    o.freeze_global = true;
    o.steps = 4;
    o.dense_prob = 1.0;
    o.save_every = 1;
    const TrainResult r = train(o);
    const fs::path first = o.out_dir / "step-1" / "model.safetensors",
                   last = r.last_checkpoint / "model.safetensors";
    const auto moved = [&](const std::string& name) {
        const auto a = tensor(first, name), b = tensor(last, name);
        double sum = 0.0;
        for (std::size_t i = 0; i < a.size(); ++i) sum += std::abs(a[i] - b[i]);
        return sum;
    };
    for (const std::string name :
         {"model.layers.0.self_attn.q_proj_global.weight",
          "model.layers.1.self_attn.o_proj_global.weight",
          "model.layers.0.self_attn.k_norm_global.weight",
          "model.layers.1.input_layernorm_global.weight", "model.layers.1.mlp.up_proj.weight"})
        EXPECT_EQ(moved(name), 0.0) << name;
    for (const std::string name :
         {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.o_proj.weight",
          "model.layers.0.input_layernorm.weight"})
        EXPECT_GT(moved(name), 1e-4) << name;

    TrainOptions all = tiny_options("local-group-all");
    all.freeze_global = true;  // train_all stays true
    EXPECT_CONTAINS(test::message_of([&] { train(all); }), "--train local");
    TrainOptions plain = tiny_options("local-group-plain");
    plain.init_config->model_type = ModelType::Qwen3;
    plain.train_all = false;
    plain.freeze_global = true;
    EXPECT_CONTAINS(test::message_of([&] { train(plain); }), "L2A model");
}

// The locality pressure's distant mass is the routing oracle's: with every position at or after
// the window probed and a weight too small to matter, the first step logs the mean over layers
// and those positions of the engine's distant mass (the state entering each layer, the global
// set's queries), for an L2A model (its own window), with and without gradient checkpointing.
TEST(Train, LocalityMeasuresTheOraclesDistantMass) {
    const fs::path one = work() / "locality-doc";
    const std::string text = write_one_doc(one, 300, 6);
    const auto engine_mean = [](const Model& model, std::vector<std::int32_t> ids,
                                std::int64_t window, std::size_t layers) {
        ids.pop_back();  // the training window's inputs: every token but the last
        double sum = 0.0;
        std::size_t count = 0;
        PrefillHooks hooks;
        hooks.distant_mass = [&](int layer, std::span<const float> mass) {
            if (static_cast<std::size_t>(layer) >= layers) return;
            for (std::size_t t = static_cast<std::size_t>(window); t < mass.size(); ++t) {
                sum += mass[t];
                ++count;
            }
        };
        run_prefill(model, ids, RunOptions{}, hooks);
        return sum / static_cast<double>(count);
    };
    const auto options = [&](const std::string& name, ModelType type) {
        TrainOptions o = tiny_options(name);
        o.init_config->model_type = type;
        o.data_dir = one;
        o.batch = 1;
        o.seq_len = static_cast<std::int64_t>(text.size()) - 1;  // one window, as above
        o.steps = 1;
        o.locality = 1e-12;
        o.locality_queries = 1 << 20;  // more than there are: every position
        return o;
    };
    const std::vector<std::int32_t> ids =
        Tokenizer::from_file(work() / "tokenizer.json").encode(text).ids;
    for (const bool checkpointing : {false, true}) {
        TrainOptions o =
            options(checkpointing ? "locality-l2a-ckpt" : "locality-l2a", ModelType::L2AQwen3);
        o.gradient_checkpointing = checkpointing;
        const TrainResult r = train(o);
        const Model model = Model::random(*o.init_config, o.seed, Placement{});
        const double expected = engine_mean(model, ids, 16, 2);
        EXPECT_GT(expected, 0.05);  // random attention does reach past the window
        EXPECT_NEAR(r.steps[0].distant_mass, expected, 1e-5) << checkpointing;
    }
    // A plain model measures its own attention (which l2a construct copies into the global set,
    // there fed the state after the local attention: the oracle reads the constructed model).
    TrainOptions plain = options("locality-plain", ModelType::Qwen3);
    plain.locality_window = 16;
    const double plain_mass = train(plain).steps[0].distant_mass;
    EXPECT_GT(plain_mass, 0.05);
    EXPECT_LT(plain_mass, 1.0);

    // Checked before the data are read: a plain model without a window, a window that leaves no
    // older key, and a global set that --train local keeps fixed.
    TrainOptions no_window = options("locality-no-window", ModelType::Qwen3);
    no_window.data_dir = work() / "nowhere";
    EXPECT_CONTAINS(test::message_of([&] { train(no_window); }), "no sliding window");
    TrainOptions wide = options("locality-wide", ModelType::L2AQwen3);
    wide.data_dir = work() / "nowhere";
    wide.locality_window = wide.seq_len;
    EXPECT_CONTAINS(test::message_of([&] { train(wide); }), "leaves no key older");
    TrainOptions frozen = options("locality-frozen", ModelType::L2AQwen3);
    frozen.data_dir = work() / "nowhere";
    frozen.train_all = false;
    frozen.freeze_global = true;
    EXPECT_CONTAINS(test::message_of([&] { train(frozen); }), "--train local");
}

// The pressure works: a plain base trained with it ends with much less of its attention past the
// window than the same run without it (measured the same way, at a weight too small to matter),
// at a cost in loss that stays small; its train.csv has the distant_mass column, and a resumed
// run needs the same pressure.
TEST(Train, LocalityPressureKeepsAttentionNear) {
    const auto run = [](const std::string& name, double locality) {
        TrainOptions o = tiny_options(name);
        o.init_config->model_type = ModelType::Qwen3;
        o.locality = locality;
        o.locality_window = 16;
        o.locality_queries = 32;
        return std::pair{o, train(o)};
    };
    const auto [free_options, free] = run("locality-free", 1e-12);
    const auto [pressed_options, pressed] = run("locality-pressed", 3.0);
    const double free_mass = mean_of(free.steps, 35, 5, &TrainStepLog::distant_mass),
                 pressed_mass = mean_of(pressed.steps, 35, 5, &TrainStepLog::distant_mass);
    EXPECT_GT(free_mass, 0.1);
    EXPECT_LT(pressed_mass, 0.5 * free_mass) << free_mass;
    EXPECT_LT(mean_of(pressed.steps, 35, 5, &TrainStepLog::cross_entropy),
              mean_of(free.steps, 35, 5, &TrainStepLog::cross_entropy) + 0.5);
    const std::string header = read_text_file(pressed_options.out_dir / "train.csv");
    EXPECT_CONTAINS(header.substr(0, header.find('\n')), ",distant_mass");

    TrainOptions resumed = pressed_options;
    resumed.resume = true;
    resumed.locality = 1.0;
    EXPECT_CONTAINS(test::message_of([&] { train(resumed); }), "other options");
    resumed.locality = 3.0;
    EXPECT_TRUE(train(resumed).steps.empty());  // the same options: resumes, all steps done
    resumed.locality = 0.0;
    EXPECT_CONTAINS(test::message_of([&] { train(resumed); }), "other options");

    // An L2A model's own window (--locality-window not given) is what the checkpoint records, so
    // a run stopped early resumes with the same options or that window given, not another.
    TrainOptions l2a = tiny_options("locality-l2a-resume");
    l2a.locality = 0.5;
    l2a.steps = 4;
    ASSERT_EQ(stopped_after(l2a, 2).steps.size(), 2u);
    l2a.resume = true;
    EXPECT_EQ(train(l2a).steps.size(), 2u);
    l2a.locality_window = 16;  // the model's window, now given: the same options
    EXPECT_TRUE(train(l2a).steps.empty());
    l2a.locality_window = 8;
    EXPECT_CONTAINS(test::message_of([&] { train(l2a); }), "other options");
}

// Weight decay shrinks the matrices but leaves the RMSNorm gains alone: decayed query and key
// norm gains would cap how sharp attention can get. A strong decay for three steps scales the
// matrices by about 0.79 against a run without it; the gains differ only by the optimizer's own
// small steps.
TEST(Train, WeightDecayShrinksMatricesButNotNormGains) {
    TrainOptions plain = tiny_options("decay-off");
    plain.steps = 3;
    plain.weight_decay = 0.0;
    TrainOptions decayed = tiny_options("decay-on");
    decayed.steps = 3;
    decayed.weight_decay = 50.0;
    const TrainResult a = train(plain), b = train(decayed);
    const auto size = [](const std::vector<float>& v) {
        double sum = 0.0;
        for (const float x : v) sum += static_cast<double>(x) * x;
        return std::sqrt(sum);
    };
    const fs::path fa = a.last_checkpoint / "model.safetensors",
                   fb = b.last_checkpoint / "model.safetensors";
    for (const std::string name :
         {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
          "model.embed_tokens.weight"}) {
        const double ratio = size(tensor(fb, name)) / size(tensor(fa, name));
        EXPECT_GT(ratio, 0.7) << name;
        EXPECT_LT(ratio, 0.85) << name;
    }
    for (const std::string name :
         {"model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm_global.weight",
          "model.layers.0.input_layernorm.weight", "model.norm.weight"}) {
        const auto x = tensor(fa, name), y = tensor(fb, name);
        ASSERT_EQ(x.size(), y.size());
        double worst = 0.0;
        for (std::size_t i = 0; i < x.size(); ++i)
            worst = std::max(worst, static_cast<double>(std::abs(x[i] - y[i])));
        EXPECT_LT(worst, 0.03) << name;
        EXPECT_NEAR(size(y) / size(x), 1.0, 0.02) << name;
    }
}

// --lambda-layers: a factor of 0 frees a layer's router from the sparsity term, a large one
// presses it toward local. Two runs that differ only in which layer gets the pressure: each
// layer routes less where it is pressed. Factors of 1 are the plain objective, to the bit.
TEST(Train, LayerLambdaPressesOnlyItsLayer) {
    const auto run = [](const std::string& name, std::vector<double> factors) {
        TrainOptions o = tiny_options(name);
        o.train_all = false;  // attention, norms and routers
        o.lambda = 2e-4;
        o.seed = 4;  // weights where lambda 0 routes most tokens in both layers
        o.layer_lambda = std::move(factors);
        return train(o);
    };
    const auto layer_routed = [](const TrainResult& r, std::size_t layer) {
        double sum = 0.0;
        for (std::size_t i = 35; i < 40; ++i) sum += r.steps[i].global_fraction[layer];
        return sum / 5.0;
    };
    const TrainResult first = run("layer-lambda-10", {1.0, 0.0});
    const TrainResult second = run("layer-lambda-01", {0.0, 1.0});
    RecordProperty("routed", std::to_string(layer_routed(first, 0)) + " " +
                                 std::to_string(layer_routed(first, 1)) + " / " +
                                 std::to_string(layer_routed(second, 0)) + " " +
                                 std::to_string(layer_routed(second, 1)));
    EXPECT_LT(layer_routed(first, 0), layer_routed(second, 0) - 0.3);
    EXPECT_LT(layer_routed(second, 1), layer_routed(first, 1) - 0.3);

    const TrainResult ones = run("layer-lambda-11", {1.0, 1.0});
    const TrainResult plain = run("layer-lambda-none", {});
    ASSERT_EQ(ones.steps.size(), plain.steps.size());
    for (std::size_t i = 0; i < ones.steps.size(); ++i)
        EXPECT_EQ(ones.steps[i].loss, plain.steps[i].loss) << i;

    EXPECT_CONTAINS(test::message_of([&] {
                        run("layer-lambda-count", {1.0, 1.0, 1.0});
                    }),
                    "the model has 2 layers");
    EXPECT_CONTAINS(test::message_of([&] {
                        run("layer-lambda-negative", {1.0, -1.0});
                    }),
                    "--lambda-layers");
    // The factors are part of the options a checkpoint resumes with: the same ones go on,
    // none (or others) are refused, naming the state file.
    TrainOptions resumable = tiny_options("layer-lambda-resume");
    resumable.train_all = false;
    resumable.lambda = 2e-4;
    resumable.layer_lambda = {1.0, 0.0};
    resumable.steps = 12;
    ASSERT_EQ(stopped_after(resumable, 6).steps.size(), 6u);
    TrainOptions without = resumable;
    without.resume = true;
    without.layer_lambda.clear();
    EXPECT_CONTAINS(test::message_of([&] { train(without); }), "train_state.json");
    TrainOptions again = resumable;
    again.resume = true;
    const TrainResult rest = train(again);
    ASSERT_EQ(rest.steps.size(), 6u);
    EXPECT_EQ(rest.steps.front().step, 7);

    TrainOptions plain_model = tiny_options("layer-lambda-plain");
    plain_model.init_config->model_type = ModelType::Qwen3;
    plain_model.layer_lambda = {1.0, 1.0};
    EXPECT_CONTAINS(test::message_of([&] { train(plain_model); }), "no routers");
}

TEST(Train, RouterLearnsThroughTheStraightThroughEstimator) {
    // Attention, norms and router train (the FFN, embeddings and head are frozen); no dense
    // draws and no weight decay, so the router moves only if the estimator's p - stopgrad(p)
    // carries a gradient to it.
    TrainOptions o = tiny_options("router");
    o.train_all = false;
    o.steps = 6;
    o.dense_prob = 0.0;
    o.weight_decay = 0.0;
    o.save_every = 1;
    const TrainResult r = train(o);
    const std::string name = "model.layers.0.self_attn.sigmoid_linear.weight";
    const auto early = tensor(o.out_dir / "step-1" / "model.safetensors", name);
    const auto late = tensor(r.last_checkpoint / "model.safetensors", name);
    ASSERT_EQ(early.size(), late.size());
    double moved = 0.0;
    for (std::size_t i = 0; i < early.size(); ++i) moved += std::abs(late[i] - early[i]);
    EXPECT_GT(moved, 1e-4);
    // The frozen MLP did not move.
    const std::string mlp = "model.layers.0.mlp.up_proj.weight";
    EXPECT_EQ(tensor(o.out_dir / "step-1" / "model.safetensors", mlp),
              tensor(r.last_checkpoint / "model.safetensors", mlp));

    TrainOptions bad = tiny_options("bad");
    bad.data_dir = work() / "nowhere";
    EXPECT_CONTAINS(test::message_of([&] { train(bad); }), "nowhere");
}

}  // namespace
}  // namespace l2a
