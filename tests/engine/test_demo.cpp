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

// Sets an environment variable for one scope and restores it afterwards.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~ScopedEnv() {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

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

TEST_F(Demo, ModelDirFollowsTheEnvironment) {
    {
        ScopedEnv demo("L2A_DEMO_DIR", "/tmp/somewhere/demo");
        EXPECT_EQ(demo_model_dir(), fs::path("/tmp/somewhere/demo"));
    }
    ScopedEnv demo("L2A_DEMO_DIR", nullptr);
    {
        ScopedEnv xdg("XDG_CACHE_HOME", "/var/cache/me");
        EXPECT_EQ(demo_model_dir(), fs::path("/var/cache/me/l2a-studio/demo-untrained-v1"));
    }
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    ScopedEnv home("HOME", "/home/someone");
    EXPECT_EQ(demo_model_dir(), fs::path("/home/someone/.cache/l2a-studio/demo-untrained-v1"));
}

TEST_F(Demo, SameBytesOnEveryCreation) {
    const fs::path dir = scratch_dir();
    const fs::path a = ensure_demo_model(dir / "a");
    const fs::path b = ensure_demo_model(dir / "b");
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
    ensure_demo_model(dir);
    const auto written = fs::last_write_time(dir / "model.safetensors");
    const std::string weights = read_file(dir / "model.safetensors");
    ensure_demo_model(dir);
    EXPECT_EQ(fs::last_write_time(dir / "model.safetensors"), written);

    fs::remove(dir / "tokenizer.json");
    ensure_demo_model(dir);
    EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));

    write_text_atomically(dir / "config.json", "{}");  // not the demo's config any more
    ensure_demo_model(dir);
    EXPECT_TRUE(read_file(dir / "model.safetensors") == weights);
    EXPECT_EQ(load_model_config(dir / "config.json").model_type, ModelType::L2AQwen3);
}

TEST_F(Demo, ConfigAndWeightsDescribeAnUntrainedL2AQwen3) {
    const fs::path dir = ensure_demo_model(scratch_dir() / "demo");
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
    const fs::path dir = ensure_demo_model(scratch_dir() / "demo");
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
    const fs::path dir = ensure_demo_model(scratch_dir() / "demo");
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

TEST_F(Demo, DocumentIsDeterministicEnglishWithReferences) {
    const std::string doc = demo_document();
    EXPECT_EQ(doc, demo_document());
    EXPECT_GT(doc.size(), 5000u);
    EXPECT_LT(doc.size(), 7000u);
    for (unsigned char c : doc) {
        EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "unexpected byte " << int(c);
        if (!(c == '\n' || (c >= 0x20 && c < 0x7f))) break;
    }
    const auto definition = doc.find("Definition 3: a *quorum* is");
    ASSERT_NE(definition, std::string::npos);
    EXPECT_LT(definition, 2000u);  // definitions come early
    EXPECT_NE(doc.find("## Section 2:"), std::string::npos);
    EXPECT_GT(doc.find("as in Definition", definition), definition);

    const std::string big = demo_document(40000);
    EXPECT_GT(big.size(), 38000u);
    EXPECT_LT(big.size(), 44000u);
    EXPECT_NE(big.find("## Section 30:"), std::string::npos);
    // Passages recur verbatim far apart, which is what global attention is for.
    const std::string golden = "The golden rule, repeated on purpose";
    EXPECT_GT(big.rfind(golden), big.find(golden) + 20000);
    EXPECT_LT(demo_document(300).size(), 400u);
}

}  // namespace
}  // namespace l2a
