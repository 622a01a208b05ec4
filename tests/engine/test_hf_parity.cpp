// The engine against HuggingFace transformers: tiny random Qwen2/Qwen3 checkpoints written by
// tests/engine/hf_reference.py (several head layouts, rope scalings, tied and untied heads,
// biases, shards, bf16 weights, legacy config.json) must give transformers' logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/safetensors.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

constexpr double kLogitTolerance = 1e-3;
// Both sides run in float32; splitting the same computation into chunks only reorders sums.
constexpr double kChunkTolerance = 1e-5;

using test::max_abs_difference;
using test::read_file;
using test::read_tensor;
using test::ReferenceStatus;
using test::scientific;

fs::path work_dir() { return fs::path(L2A_TEST_WORK_DIR) / "hf_parity"; }

// ctest runs every test in its own process, so each process asks the script once; the script
// returns at once when its outputs are current.
const ReferenceStatus& reference_status() {
    static const ReferenceStatus status = [] {
        fs::create_directories(work_dir());
        return test::make_reference(fs::path(L2A_SOURCE_DIR) / "tests/engine/hf_reference.py",
                                    test::shell_quote(work_dir().string()),
                                    work_dir() / "hf_reference.log", "transformers reference",
                                    "hf_reference.py");
    }();
    return status;
}

struct Reference {
    nlohmann::json spec;  // the case as hf_reference.py describes it
    std::vector<std::int32_t> tokens;
    std::vector<float> logits;  // [T, V]
    std::vector<float> token_nll;
    std::int64_t vocab = 0;
};

Reference load_reference(const std::string& case_name) {
    const auto file = SafetensorsFile::open(work_dir() / (case_name + ".reference.safetensors"));
    Reference reference;
    reference.spec = nlohmann::json::parse(file.metadata().at("case"));
    reference.tokens = read_tensor<std::int32_t>(file, "tokens", DType::I32);
    reference.logits = read_tensor<float>(file, "logits", DType::F32);
    reference.token_nll = read_tensor<float>(file, "token_nll", DType::F32);
    reference.vocab = file.view("logits").info->shape.at(1);
    return reference;
}

struct EngineRun {
    PrefillResult result;
    std::vector<float> logits;  // [T, V], assembled from the sink
    std::int64_t vocab = 0;
    bool rows_in_order = true;
};

EngineRun run_engine(const Model& model, const std::vector<std::int32_t>& tokens,
                     std::int64_t chunk_size) {
    EngineRun run;
    RunOptions options;
    options.chunk_size = chunk_size;
    PrefillHooks hooks;
    std::int64_t next_row = 0;
    hooks.logits_sink = [&](std::int64_t first_row, std::int64_t rows, std::int64_t vocab,
                            const float* data) {
        run.rows_in_order = run.rows_in_order && first_row == next_row;
        run.vocab = vocab;
        next_row = first_row + rows;
        run.logits.insert(run.logits.end(), data, data + rows * vocab);
    };
    run.result = run_prefill(model, tokens, options, hooks);
    return run;
}

std::int64_t argmax(const float* row, std::int64_t n) {
    return std::max_element(row, row + n) - row;
}

struct ParityCase {
    std::string name;
    std::int64_t chunk_size;  // small chunks put chunk boundaries inside the sequence
};

void PrintTo(const ParityCase& parity_case, std::ostream* os) {
    *os << parity_case.name << " (chunk size " << parity_case.chunk_size << ")";
}

// Must list exactly the cases of hf_reference.py (checked by CaseListMatchesReferenceScript).
const std::vector<ParityCase>& parity_cases() {
    static const std::vector<ParityCase> cases = {
        {"qwen3_mha", 3},
        {"qwen3_gqa2_tied_hd32", 7},
        {"qwen3_gqa4_bias", 16},
        {"qwen3_yarn", 7},
        {"qwen3_linear", 16},
        {"qwen3_dynamic", 3},
        {"qwen3_bf16_weights", 256},
        {"qwen2_gqa2", 7},
        {"qwen2_mha_tied", 16},
        {"qwen2_gqa4_sharded", 3},
        {"qwen2_legacy_config_yarn", 7},
        {"qwen3_legacy_config", 64},
    };
    return cases;
}

class HfReference : public test::ReferenceTest<reference_status> {};

class HfParity : public HfReference, public testing::WithParamInterface<ParityCase> {};

TEST_F(HfReference, CaseListMatchesReferenceScript) {
    const auto listed = nlohmann::json::parse(read_file(work_dir() / "cases.json"));
    std::vector<std::string> expected;
    for (const ParityCase& c : parity_cases()) {
        expected.push_back(c.name);
    }
    EXPECT_EQ(listed.get<std::vector<std::string>>(), expected);
}

TEST_P(HfParity, LogitsMatchTransformers) {
    const ParityCase& parity_case = GetParam();
    const Reference reference = load_reference(parity_case.name);
    const auto T = static_cast<std::int64_t>(reference.tokens.size());
    const std::int64_t V = reference.vocab;
    ASSERT_GE(T, 40);

    const Model model = Model::load(work_dir() / parity_case.name);
    const ModelSummary& summary = model.summary();
    const nlohmann::json& spec = reference.spec;
    EXPECT_EQ(summary.model_type, spec.at("arch").get<std::string>());
    EXPECT_FALSE(summary.is_l2a);
    EXPECT_EQ(summary.num_layers, spec.at("layers").get<std::int64_t>());
    EXPECT_EQ(summary.hidden_size, spec.at("hidden").get<std::int64_t>());
    EXPECT_EQ(summary.num_heads, spec.at("heads").get<std::int64_t>());
    EXPECT_EQ(summary.num_kv_heads, spec.at("kv_heads").get<std::int64_t>());
    const std::int64_t head_dim = spec.contains("head_dim")
                                      ? spec.at("head_dim").get<std::int64_t>()
                                      : summary.hidden_size / summary.num_heads;
    EXPECT_EQ(summary.head_dim, head_dim);
    EXPECT_EQ(summary.vocab_size, V);

    const EngineRun run = run_engine(model, reference.tokens, parity_case.chunk_size);
    EXPECT_TRUE(run.rows_in_order);
    ASSERT_EQ(run.vocab, V);
    ASSERT_EQ(run.logits.size(), reference.logits.size());
    EXPECT_EQ(run.result.num_tokens, T);
    EXPECT_EQ(run.result.num_layers, summary.num_layers);

    const double difference = max_abs_difference(run.logits, reference.logits);
    RecordProperty("max_logit_difference", scientific(difference));
    EXPECT_LE(difference, kLogitTolerance)
        << parity_case.name << " (chunk size " << parity_case.chunk_size << ")";

    // Greedy predictions must agree; a reference near-tie may go either way.
    int argmax_mismatches = 0;
    for (std::int64_t t = 0; t < T; ++t) {
        const float* engine_row = run.logits.data() + t * V;
        const float* reference_row = reference.logits.data() + t * V;
        const std::int64_t engine_pick = argmax(engine_row, V);
        const std::int64_t reference_pick = argmax(reference_row, V);
        if (engine_pick != reference_pick &&
            reference_row[reference_pick] - reference_row[engine_pick] > 1e-5f) {
            ++argmax_mismatches;
        }
    }
    EXPECT_EQ(argmax_mismatches, 0);

    ASSERT_EQ(run.result.token_nll.size(), static_cast<std::size_t>(T));
    EXPECT_TRUE(std::isnan(run.result.token_nll[0]));
    std::vector<float> engine_nll(run.result.token_nll.begin() + 1, run.result.token_nll.end());
    std::vector<float> reference_nll(reference.token_nll.begin() + 1, reference.token_nll.end());
    EXPECT_LE(max_abs_difference(engine_nll, reference_nll), kLogitTolerance);

    // A plain model has no router: its logits are reported as NaN.
    ASSERT_EQ(run.result.router_logits.size(), static_cast<std::size_t>(summary.num_layers * T));
    EXPECT_TRUE(std::all_of(run.result.router_logits.begin(), run.result.router_logits.end(),
                            [](float z) { return std::isnan(z); }));
}

TEST_P(HfParity, ChunkSizeDoesNotChangeLogits) {
    const ParityCase& parity_case = GetParam();
    const Reference reference = load_reference(parity_case.name);
    const Model model = Model::load(work_dir() / parity_case.name);
    const EngineRun chunked = run_engine(model, reference.tokens, parity_case.chunk_size);
    const EngineRun whole = run_engine(model, reference.tokens, 4096);
    ASSERT_EQ(chunked.logits.size(), whole.logits.size());
    EXPECT_LE(max_abs_difference(chunked.logits, whole.logits), kChunkTolerance);
}

INSTANTIATE_TEST_SUITE_P(Cases, HfParity, testing::ValuesIn(parity_cases()),
                         [](const testing::TestParamInfo<ParityCase>& info) {
                             return info.param.name;
                         });

}  // namespace
}  // namespace l2a
