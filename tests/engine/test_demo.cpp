#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "l2a/engine/atomic_file.h"
#include "l2a/engine/checkpoint.h"
#include "l2a/engine/config.h"
#include "l2a/engine/demo.h"
#include "l2a/engine/tokenizer.h"
#include "scoped_env.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

// Each test works in its own folder (the demo model is 22 MB), removed again when it passes.
class Demo : public test::ScratchDirTest {
protected:
    Demo() : ScratchDirTest("demo") {}
    fs::path scratch_dir() const { return dir_; }
};

using test::read_file;
using test::ScopedEnv;

// Every tensor an l2a_qwen3 checkpoint needs (L2A.md), with its shape, for the demo's sizes.
std::map<std::string, std::vector<std::int64_t>> expected_tensors(const ModelConfig& c) {
    const std::int64_t d = c.hidden_size;
    const std::int64_t D = c.head_dim;
    const std::int64_t q = c.num_attention_heads * D;
    const std::int64_t kv = c.num_key_value_heads * D;
    std::map<std::string, std::vector<std::int64_t>> shapes;
    shapes["model.embed_tokens.weight"] = {c.vocab_size, d};
    shapes["model.norm.weight"] = {d};
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        shapes[p + "input_layernorm.weight"] = {d};
        shapes[p + "input_layernorm_global.weight"] = {d};
        shapes[p + "post_attention_layernorm.weight"] = {d};
        for (std::string s : {"", "_global"}) {
            shapes[p + "self_attn.q_proj" + s + ".weight"] = {q, d};
            shapes[p + "self_attn.k_proj" + s + ".weight"] = {kv, d};
            shapes[p + "self_attn.v_proj" + s + ".weight"] = {kv, d};
            shapes[p + "self_attn.o_proj" + s + ".weight"] = {d, q};
            shapes[p + "self_attn.q_norm" + s + ".weight"] = {D};
            shapes[p + "self_attn.k_norm" + s + ".weight"] = {D};
        }
        shapes[p + "self_attn.sigmoid_linear.weight"] = {1, d};
        shapes[p + "mlp.gate_proj.weight"] = {c.intermediate_size, d};
        shapes[p + "mlp.up_proj.weight"] = {c.intermediate_size, d};
        shapes[p + "mlp.down_proj.weight"] = {d, c.intermediate_size};
    }
    return shapes;
}

TEST_F(Demo, ModelDirFollowsTheEnvironmentElseTheShippedModel) {
    {
        ScopedEnv demo("L2A_DEMO_DIR", "/tmp/somewhere/demo");
        EXPECT_EQ(demo_model_dir(), fs::path("/tmp/somewhere/demo"));
        EXPECT_EQ(demo_model_candidates(), std::vector<fs::path>{fs::path("/tmp/somewhere/demo")});
        // Missing: the error names the folder and what to do.
        const std::string message = test::message_of([] { require_demo_model(); });
        EXPECT_NE(message.find("/tmp/somewhere/demo"), std::string::npos) << message;
        EXPECT_NE(message.find("demo model is missing"), std::string::npos) << message;
        EXPECT_NE(message.find("L2A_DEMO_DIR"), std::string::npos) << message;
    }
    ScopedEnv demo("L2A_DEMO_DIR", nullptr);
    // In a build tree: the source tree's assets (no share/ folder beside bin/).
    const fs::path shipped = fs::path(L2A_SOURCE_DIR) / "assets" / "models" / "l2a-demo";
    EXPECT_EQ(fs::weakly_canonical(require_demo_model()), fs::weakly_canonical(shipped));
    const auto candidates = demo_model_candidates();
    ASSERT_EQ(candidates.size(), 2u);
    EXPECT_EQ(candidates[0].filename(), "l2a-demo");
    EXPECT_EQ(candidates[0].parent_path().filename(), "models");
}

// The shipped demo model: trained (no untrained mark), the demo's shape, within the size limits
// it is held to (at most 8M parameters, 16 MB of weights, a context of at least 8K tokens).
TEST_F(Demo, ShippedModelIsATrainedSmallL2AQwen3) {
    ScopedEnv demo("L2A_DEMO_DIR", nullptr);
    const fs::path dir = require_demo_model();
    const ModelConfig c = load_model_config(dir / "config.json");
    EXPECT_EQ(c.model_type, ModelType::L2AQwen3);
    EXPECT_FALSE(c.untrained);
    EXPECT_EQ(c.vocab_size, 264);
    EXPECT_GE(c.max_position_embeddings, 8192);
    EXPECT_EQ(c.l2a.router_input, RouterInput::HiddenLinearProj);
    EXPECT_LE(fs::file_size(dir / "model.safetensors"), 16u * 1000 * 1000);
    const Checkpoint checkpoint = Checkpoint::open(dir);
    std::int64_t parameters = 0;
    for (const auto& [name, shape] : expected_tensors(c)) {
        const TensorView view = checkpoint.get(name, shape);
        EXPECT_EQ(view.info->dtype, DType::BF16) << name;
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        parameters += n;
    }
    EXPECT_EQ(checkpoint.tensor_names().size(), expected_tensors(c).size());
    EXPECT_LE(parameters, 8'000'000);
    EXPECT_GT(parameters, 5'000'000);
    // Its routers were trained: not the zero router that l2a construct writes.
    for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
        const std::string name =
            "model.layers." + std::to_string(layer) + ".self_attn.sigmoid_linear.weight";
        const auto bits = test::elements_of<std::uint16_t>(checkpoint.get(name));
        // bf16: zero and minus zero have no bits but the sign bit.
        EXPECT_TRUE(std::any_of(bits.begin(), bits.end(), [](std::uint16_t b) {
            return (b & 0x7fff) != 0;
        })) << name;
    }
    EXPECT_EQ(Tokenizer::from_file(dir / "tokenizer.json").vocab_size(), 259);
}

TEST_F(Demo, SameBytesOnEveryCreation) {
    const fs::path dir = scratch_dir();
    const fs::path a = ensure_untrained_model(dir / "a");
    const fs::path b = ensure_untrained_model(dir / "b");
    EXPECT_EQ(a, dir / "a");
    for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
        const std::string bytes_a = read_file(a / name);
        EXPECT_GT(bytes_a.size(), 0u) << name;
        EXPECT_TRUE(bytes_a == read_file(b / name)) << name << " differs between two creations";
    }
    // Nothing but the three files (no temporary folders left beside them).
    int entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++entries;
    EXPECT_EQ(entries, 2);
}

TEST_F(Demo, ReusesACompleteFolderAndRebuildsAnIncompleteOne) {
    const fs::path dir = scratch_dir() / "demo";
    ensure_untrained_model(dir);
    const auto written = fs::last_write_time(dir / "model.safetensors");
    const std::string weights = read_file(dir / "model.safetensors");
    ensure_untrained_model(dir);
    EXPECT_EQ(fs::last_write_time(dir / "model.safetensors"), written);

    fs::remove(dir / "tokenizer.json");
    ensure_untrained_model(dir);
    EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));

    write_text_atomically(dir / "config.json", "{}");  // not the demo's config any more
    ensure_untrained_model(dir);
    EXPECT_TRUE(read_file(dir / "model.safetensors") == weights);
    EXPECT_EQ(load_model_config(dir / "config.json").model_type, ModelType::L2AQwen3);
}

TEST_F(Demo, ConfigAndWeightsDescribeAnUntrainedL2AQwen3) {
    const fs::path dir = ensure_untrained_model(scratch_dir() / "demo");
    const ModelConfig c = load_model_config(dir / "config.json");
    EXPECT_EQ(c.model_type, ModelType::L2AQwen3);
    EXPECT_TRUE(c.untrained);
    EXPECT_EQ(c.vocab_size, 264);
    EXPECT_EQ(c.hidden_size, 256);
    EXPECT_EQ(c.num_hidden_layers, 6);
    EXPECT_EQ(c.num_attention_heads, 4);
    EXPECT_EQ(c.num_key_value_heads, 2);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.intermediate_size, 704);
    EXPECT_EQ(c.max_position_embeddings, 8192);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.l2a.sliding_window, 256);
    EXPECT_DOUBLE_EQ(c.l2a.sigmoid_temp, 0.1);
    EXPECT_DOUBLE_EQ(c.l2a.sigmoid_threshold, 0.5);
    EXPECT_EQ(c.l2a.router_input, RouterInput::HiddenLinearProj);

    const Checkpoint checkpoint = Checkpoint::open(dir);
    const auto expected = expected_tensors(c);
    EXPECT_EQ(checkpoint.tensor_names().size(), expected.size());
    for (const auto& [name, shape] : expected) {
        const TensorView view = checkpoint.get(name, shape);
        EXPECT_EQ(view.info->dtype, DType::F32) << name;
        const std::vector<float> values = test::elements_of<float>(view);
        double sum = 0, sum_sq = 0;
        for (float v : values) {
            sum += v;
            sum_sq += static_cast<double>(v) * v;
        }
        const double n = static_cast<double>(values.size());
        const double mean = sum / n;
        const double std = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
        if (shape.size() == 1) {  // norm weights start at one
            EXPECT_EQ(mean, 1.0) << name;
            EXPECT_EQ(std, 0.0) << name;
        } else {
            EXPECT_NEAR(mean, 0.0, 0.02 * 6 / std::sqrt(n)) << name;
            EXPECT_NEAR(std, 0.02, 0.02 * 0.2) << name;
        }
    }
}

TEST_F(Demo, TokenizerIsByteLevel) {
    const fs::path dir = ensure_untrained_model(scratch_dir() / "demo");
    const Tokenizer tokenizer = Tokenizer::from_file(dir / "tokenizer.json");
    const std::string text = "Grüße <|im_start|>\n\tx<|endoftext|>";
    const Encoding encoding = tokenizer.encode(text);
    std::vector<std::int32_t> expected;
    for (unsigned char c : std::string("Grüße ")) expected.push_back(c);
    expected.push_back(257);
    for (unsigned char c : std::string("\n\tx")) expected.push_back(c);
    expected.push_back(256);
    EXPECT_EQ(encoding.ids, expected);
    EXPECT_EQ(tokenizer.decode(encoding.ids), text);
    EXPECT_EQ(tokenizer.vocab_size(), 259);
}

TEST_F(Demo, PythonTokenizersLoadsTheTokenizer) {
    const fs::path dir = ensure_untrained_model(scratch_dir() / "demo");
    const std::string python = L2A_PYTHON;
    if (!test::python_can_import("tokenizers")) {
        GTEST_SKIP() << "needs Python with the tokenizers package (" << python << ")";
    }
    const fs::path script = dir.parent_path() / "check.py";
    write_text_atomically(script,
                          "import sys, tokenizers\n"
                          "t = tokenizers.Tokenizer.from_file(sys.argv[1])\n"
                          "e = t.encode('Gr\\u00fc\\u00dfe <|im_start|>\\n\\tx<|endoftext|>',"
                          " add_special_tokens=False)\n"
                          "print(' '.join(map(str, e.ids)))\n"
                          "print(t.decode(e.ids, skip_special_tokens=False) =="
                          " 'Gr\\u00fc\\u00dfe <|im_start|>\\n\\tx<|endoftext|>')\n");
    const fs::path out = dir.parent_path() / "python.txt";
    const std::string command = python + " '" + script.string() + "' '" +
                                (dir / "tokenizer.json").string() + "' > '" + out.string() + "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    EXPECT_EQ(read_file(out),
              "71 114 195 188 195 159 101 32 257 10 9 120 256\n"
              "True\n");
}

TEST_F(Demo, DocumentIsDeterministicWithLongRangeReferences) {
    const std::string doc = demo_document();
    EXPECT_EQ(doc, demo_document());
    EXPECT_GT(doc.size(), 8000u);
    EXPECT_LT(doc.size(), 9000u);
    for (unsigned char c : doc) {
        EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "unexpected byte " << int(c);
        if (!(c == '\n' || (c >= 0x20 && c < 0x7f))) break;
    }
    // Facts stated early and recalled far beyond the demo model's window (64 bytes): a section
    // named in its heading and cited by number and title at least 1,536 bytes later.
    const auto heading = doc.find("\n### 1.1 ");
    ASSERT_NE(heading, std::string::npos);
    const std::string title = doc.substr(heading + 9, doc.find('\n', heading + 1) - heading - 9);
    const auto recall = doc.find("Section 1.1, " + title);
    ASSERT_NE(recall, std::string::npos) << title;
    EXPECT_GT(recall, heading + 1536);

    const std::string big = demo_document(40000);
    EXPECT_GT(big.size(), 39000u);
    EXPECT_LT(big.size(), 44000u);
    EXPECT_NE(big, doc.substr(0, big.size()));
    const std::string small = demo_document(300);
    EXPECT_LT(small.size(), 400u);
    EXPECT_GT(small.size(), 100u);
}

}  // namespace
}  // namespace l2a
