#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "l2a/engine/config.h"
#include "l2a/engine/error.h"
#include "test_support.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kOrigin = "model/config.json";

// The shape of Qwen2.5-7B-Instruct's config.json (legacy rope_theta / rope_scaling spelling).
json qwen25_config() {
    return json::parse(R"({
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": 3584,
        "initializer_range": 0.02,
        "intermediate_size": 18944,
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1",
        "use_cache": true,
        "use_sliding_window": false,
        "vocab_size": 152064
    })");
}

// A small Qwen3 config as transformers 5 writes it (rope_parameters, dtype).
json qwen3_config() {
    return json::parse(R"({
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": false,
        "bos_token_id": 151643,
        "dtype": "float32",
        "eos_token_id": [151645, 151643],
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 256,
        "intermediate_size": 512,
        "max_position_embeddings": 40960,
        "model_type": "qwen3",
        "num_attention_heads": 8,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
        "sliding_window": null,
        "tie_word_embeddings": true,
        "use_sliding_window": false,
        "vocab_size": 1000
    })");
}

json l2a_qwen3_config() {
    json config = qwen3_config();
    config["model_type"] = "l2a_qwen3";
    config["sliding_window"] = 4095;
    config["sigmoid_temp"] = 0.1;
    config["sigmoid_threshold"] = 0.5;
    config["sigmoid_linear"] = true;
    config["sig_input_type"] = "hidden_linearproj";
    config["l2a_initfrombase"] = true;
    return config;
}

ModelConfig parse(const json& config) { return parse_model_config(config.dump(), kOrigin); }

// The message of the l2a::Error that parsing `config` throws ("" when it does not throw).
std::string parse_error(const std::string& text) {
    return test::thrown_error([&] { parse_model_config(text, kOrigin); }).value_or("");
}

std::string parse_error(const json& config) { return parse_error(config.dump()); }

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
    EXPECT_EQ(a.model_type, b.model_type);
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.hidden_size, b.hidden_size);
    EXPECT_EQ(a.intermediate_size, b.intermediate_size);
    EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
    EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
    EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
    EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
              b.rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(a.rope_scaling.beta_fast, b.rope_scaling.beta_fast);
    EXPECT_EQ(a.rope_scaling.beta_slow, b.rope_scaling.beta_slow);
    EXPECT_EQ(a.rope_scaling.attention_factor, b.rope_scaling.attention_factor);
    EXPECT_EQ(a.rope_scaling.mscale, b.rope_scaling.mscale);
    EXPECT_EQ(a.rope_scaling.mscale_all_dim, b.rope_scaling.mscale_all_dim);
    EXPECT_EQ(a.rope_scaling.truncate, b.rope_scaling.truncate);
    EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
    EXPECT_EQ(a.attention_bias, b.attention_bias);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.hidden_act, b.hidden_act);
    EXPECT_EQ(a.torch_dtype, b.torch_dtype);
    EXPECT_EQ(a.bos_token_id, b.bos_token_id);
    EXPECT_EQ(a.eos_token_id, b.eos_token_id);
    EXPECT_EQ(a.untrained, b.untrained);
    EXPECT_EQ(a.l2a.sliding_window, b.l2a.sliding_window);
    EXPECT_EQ(a.l2a.sigmoid_temp, b.l2a.sigmoid_temp);
    EXPECT_EQ(a.l2a.sigmoid_threshold, b.l2a.sigmoid_threshold);
    EXPECT_EQ(a.l2a.sigmoid_linear, b.l2a.sigmoid_linear);
    EXPECT_EQ(a.l2a.sig_input_type, b.l2a.sig_input_type);
    EXPECT_EQ(a.l2a.router_input, b.l2a.router_input);
    EXPECT_EQ(a.l2a.initfrombase, b.l2a.initfrombase);
}

TEST(Config, ModelTypeNames) {
    EXPECT_STREQ(model_type_name(ModelType::Qwen2), "qwen2");
    EXPECT_STREQ(model_type_name(ModelType::Qwen3), "qwen3");
    EXPECT_STREQ(model_type_name(ModelType::L2AQwen2), "l2a_qwen2");
    EXPECT_STREQ(model_type_name(ModelType::L2AQwen3), "l2a_qwen3");
}

TEST(Config, ParsesQwen25) {
    const ModelConfig config = parse(qwen25_config());
    EXPECT_EQ(config.model_type, ModelType::Qwen2);
    EXPECT_EQ(config.vocab_size, 152064);
    EXPECT_EQ(config.hidden_size, 3584);
    EXPECT_EQ(config.intermediate_size, 18944);
    EXPECT_EQ(config.num_hidden_layers, 28);
    EXPECT_EQ(config.num_attention_heads, 28);
    EXPECT_EQ(config.num_key_value_heads, 4);
    EXPECT_EQ(config.head_dim, 128);  // 3584 / 28
    EXPECT_EQ(config.max_position_embeddings, 32768);
    EXPECT_EQ(config.rope_theta, 1e6);
    EXPECT_EQ(config.rope_scaling.type, RopeScalingType::None);
    EXPECT_EQ(config.rms_norm_eps, 1e-6);
    EXPECT_TRUE(config.attention_bias);  // Qwen2 always has q/k/v biases
    EXPECT_TRUE(config.has_qkv_bias());
    EXPECT_FALSE(config.has_qk_norm());
    EXPECT_FALSE(config.tie_word_embeddings);
    EXPECT_EQ(config.hidden_act, "silu");
    EXPECT_EQ(config.torch_dtype, "bfloat16");
    EXPECT_EQ(config.bos_token_id, 151643);
    EXPECT_EQ(config.eos_token_id, 151645);
    EXPECT_FALSE(config.is_l2a());
    EXPECT_FALSE(config.untrained);
}

TEST(Config, ParsesQwen3InTransformers5Spelling) {
    const ModelConfig config = parse(qwen3_config());
    EXPECT_EQ(config.model_type, ModelType::Qwen3);
    EXPECT_EQ(config.head_dim, 64);  // explicit, not 256 / 8
    EXPECT_EQ(config.num_key_value_heads, 2);
    EXPECT_EQ(config.max_position_embeddings, 40960);
    EXPECT_EQ(config.rope_theta, 1e6);
    EXPECT_EQ(config.rope_scaling.type, RopeScalingType::None);
    EXPECT_EQ(config.rms_norm_eps, 1e-5);
    EXPECT_FALSE(config.attention_bias);
    EXPECT_TRUE(config.has_qk_norm());
    EXPECT_TRUE(config.tie_word_embeddings);
    EXPECT_EQ(config.torch_dtype, "float32");
    EXPECT_EQ(config.eos_token_id, 151645);  // first of the list
}

TEST(Config, HuggingFaceDefaults) {
    json config = json::parse(R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4})");
    ModelConfig qwen2 = parse(config);
    EXPECT_EQ(qwen2.num_key_value_heads, 4);
    EXPECT_EQ(qwen2.head_dim, 16);
    EXPECT_EQ(qwen2.max_position_embeddings, 32768);
    EXPECT_EQ(qwen2.rope_theta, 10000.0);
    EXPECT_EQ(qwen2.rms_norm_eps, 1e-6);
    EXPECT_FALSE(qwen2.tie_word_embeddings);
    EXPECT_TRUE(qwen2.attention_bias);
    EXPECT_EQ(qwen2.hidden_act, "silu");
    EXPECT_EQ(qwen2.torch_dtype, "bfloat16");
    EXPECT_FALSE(qwen2.bos_token_id.has_value());
    EXPECT_FALSE(qwen2.eos_token_id.has_value());

    // Qwen3Config declares head_dim = 128, so transformers never derives it.
    config["model_type"] = "qwen3";
    const ModelConfig qwen3 = parse(config);
    EXPECT_EQ(qwen3.head_dim, 128);
    EXPECT_FALSE(qwen3.attention_bias);
    config["model_type"] = "l2a_qwen2";
    EXPECT_EQ(parse(config).head_dim, 16);
    config["model_type"] = "l2a_qwen3";
    EXPECT_EQ(parse(config).head_dim, 128);

    // JSON null reads as "not given".
    config["num_key_value_heads"] = nullptr;
    config["head_dim"] = nullptr;
    EXPECT_EQ(parse(config).num_key_value_heads, 4);
}

TEST(Config, AttentionBias) {
    json qwen2 = qwen25_config();
    qwen2["attention_bias"] = false;  // Qwen2Attention ignores it
    EXPECT_TRUE(parse(qwen2).attention_bias);
    qwen2["model_type"] = "l2a_qwen2";
    EXPECT_TRUE(parse(qwen2).attention_bias);

    json qwen3 = qwen3_config();
    EXPECT_FALSE(parse(qwen3).attention_bias);
    qwen3["attention_bias"] = true;
    EXPECT_TRUE(parse(qwen3).attention_bias);
    qwen3.erase("attention_bias");
    EXPECT_FALSE(parse(qwen3).attention_bias);
}

TEST(Config, DtypeKeys) {
    json config = qwen3_config();
    config["torch_dtype"] = "bfloat16";
    EXPECT_EQ(parse(config).torch_dtype, "float32");  // "dtype" wins
    config.erase("dtype");
    EXPECT_EQ(parse(config).torch_dtype, "bfloat16");
    config["dtype"] = nullptr;
    EXPECT_EQ(parse(config).torch_dtype, "bfloat16");
}

TEST(Config, L2AFields) {
    const ModelConfig config = parse(l2a_qwen3_config());
    EXPECT_EQ(config.model_type, ModelType::L2AQwen3);
    EXPECT_TRUE(config.is_l2a());
    EXPECT_TRUE(config.has_qk_norm());
    EXPECT_EQ(config.l2a.sliding_window, 4095);
    EXPECT_EQ(config.l2a.sigmoid_temp, 0.1);
    EXPECT_EQ(config.l2a.sigmoid_threshold, 0.5);
    EXPECT_TRUE(config.l2a.sigmoid_linear);
    EXPECT_EQ(config.l2a.sig_input_type, "hidden_linearproj");
    EXPECT_EQ(config.l2a.router_input, RouterInput::HiddenLinearProj);
    EXPECT_TRUE(config.l2a.initfrombase);

    json custom = l2a_qwen3_config();
    custom["sliding_window"] = 128;
    custom["sigmoid_threshold"] = 0.25;
    custom["sigmoid_temp"] = 2;
    custom["l2a_untrained"] = true;
    const ModelConfig parsed = parse(custom);
    EXPECT_EQ(parsed.l2a.sliding_window, 128);
    EXPECT_EQ(parsed.l2a.sigmoid_threshold, 0.25);
    EXPECT_EQ(parsed.l2a.sigmoid_temp, 2.0);
    EXPECT_TRUE(parsed.untrained);
}

TEST(Config, L2ADefaults) {
    json config = qwen3_config();
    config["model_type"] = "l2a_qwen2";
    const ModelConfig parsed = parse(config);  // sliding_window: null counts as absent
    EXPECT_TRUE(parsed.is_l2a());
    EXPECT_TRUE(parsed.attention_bias);
    EXPECT_FALSE(parsed.has_qk_norm());
    EXPECT_EQ(parsed.l2a.sliding_window, 4095);
    EXPECT_EQ(parsed.l2a.sigmoid_temp, 1.0);
    EXPECT_EQ(parsed.l2a.sigmoid_threshold, 0.5);
    EXPECT_TRUE(parsed.l2a.sigmoid_linear);
    EXPECT_EQ(parsed.l2a.sig_input_type, "hidden_linearproj");
    EXPECT_EQ(parsed.l2a.router_input, RouterInput::HiddenLinearProj);
    EXPECT_FALSE(parsed.l2a.initfrombase);
    EXPECT_FALSE(parsed.untrained);
}

TEST(Config, RouterInputFollowsSigmoidLinearAndInputType) {
    json config = l2a_qwen3_config();
    config["sig_input_type"] = "hidden_firstdim";
    EXPECT_EQ(parse(config).l2a.router_input, RouterInput::HiddenFirstDim);
    config["sigmoid_linear"] = false;
    EXPECT_EQ(parse(config).l2a.router_input, RouterInput::HiddenMean);
    config["sig_input_type"] = "hidden_linearproj";
    EXPECT_EQ(parse(config).l2a.router_input, RouterInput::HiddenMean);
    config["sigmoid_linear"] = true;
    EXPECT_EQ(parse(config).l2a.router_input, RouterInput::HiddenLinearProj);
}

TEST(Config, PlainModelsIgnoreL2AFields) {
    json config = qwen25_config();
    config["sigmoid_threshold"] = 7;  // meaningless for a plain model, so not validated
    const ModelConfig parsed = parse(config);
    EXPECT_EQ(parsed.l2a.sigmoid_threshold, 0.5);
    EXPECT_EQ(parsed.l2a.sliding_window, 4095);
}

TEST(Config, LegacyRopeScaling) {
    json config = qwen25_config();
    config["rope_scaling"] = {
        {"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
    const ModelConfig parsed = parse(config);
    EXPECT_EQ(parsed.rope_theta, 1e6);
    EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::Yarn);
    EXPECT_EQ(parsed.rope_scaling.factor, 4.0);
    EXPECT_EQ(parsed.rope_scaling.original_max_position_embeddings, 32768);
    EXPECT_EQ(parsed.rope_scaling.beta_fast, 32.0);
    EXPECT_EQ(parsed.rope_scaling.beta_slow, 1.0);
    EXPECT_TRUE(parsed.rope_scaling.truncate);
    EXPECT_FALSE(parsed.rope_scaling.attention_factor.has_value());
    EXPECT_FALSE(parsed.rope_scaling.mscale.has_value());
    EXPECT_FALSE(parsed.rope_scaling.mscale_all_dim.has_value());

    config["rope_scaling"] = {{"rope_type", "linear"}, {"type", "yarn"}, {"factor", 2}};
    EXPECT_EQ(parse(config).rope_scaling.type, RopeScalingType::Linear);  // rope_type wins
    config["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.5}};
    EXPECT_EQ(parse(config).rope_scaling.type, RopeScalingType::Dynamic);
    EXPECT_EQ(parse(config).rope_scaling.factor, 2.5);
    config["rope_scaling"] = nullptr;
    EXPECT_EQ(parse(config).rope_scaling.type, RopeScalingType::None);
}

TEST(Config, RopeParametersSpelling) {
    json config = qwen3_config();
    config["rope_theta"] = 5.0;  // the value inside rope_parameters wins
    config["rope_parameters"] = {
        {"rope_type", "yarn"},     {"rope_theta", 1e6},
        {"factor", 2.0},           {"original_max_position_embeddings", 8192},
        {"beta_fast", 16},         {"beta_slow", 2},
        {"attention_factor", 1.5}, {"mscale", 0.5},
        {"mscale_all_dim", 0.25},  {"truncate", false}};
    ModelConfig parsed = parse(config);
    EXPECT_EQ(parsed.rope_theta, 1e6);
    const RopeScaling& rope = parsed.rope_scaling;
    EXPECT_EQ(rope.type, RopeScalingType::Yarn);
    EXPECT_EQ(rope.factor, 2.0);
    EXPECT_EQ(rope.original_max_position_embeddings, 8192);
    EXPECT_EQ(rope.beta_fast, 16.0);
    EXPECT_EQ(rope.beta_slow, 2.0);
    EXPECT_EQ(rope.attention_factor, 1.5);
    EXPECT_EQ(rope.mscale, 0.5);
    EXPECT_EQ(rope.mscale_all_dim, 0.25);
    EXPECT_FALSE(rope.truncate);

    // rope_theta only at the top level, with the rope dict lacking it.
    config["rope_parameters"] = {{"rope_type", "default"}};
    EXPECT_EQ(parse(config).rope_theta, 5.0);
    config.erase("rope_theta");
    EXPECT_EQ(parse(config).rope_theta, 10000.0);

    // A non-empty rope_scaling wins over rope_parameters; an empty one does not.
    config["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 3}, {"rope_theta", 7.0}};
    config["rope_scaling"] = json::object();
    EXPECT_EQ(parse(config).rope_scaling.type, RopeScalingType::Linear);
    config["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2}};
    parsed = parse(config);
    EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::Dynamic);
    EXPECT_EQ(parsed.rope_theta, 10000.0);

    // Nested per layer type.
    config.erase("rope_scaling");
    config["rope_parameters"] = {
        {"full_attention", {{"rope_type", "linear"}, {"factor", 2}, {"rope_theta", 3e5}}}};
    parsed = parse(config);
    EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::Linear);
    EXPECT_EQ(parsed.rope_theta, 3e5);
}

TEST(Config, YarnOriginalMaxPositions) {
    json config = qwen3_config();  // max_position_embeddings 40960
    config["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    EXPECT_EQ(parse(config).rope_scaling.original_max_position_embeddings, 40960);

    // A top-level value overrides the one in the dict, as transformers does.
    config["rope_parameters"]["original_max_position_embeddings"] = 8192;
    EXPECT_EQ(parse(config).rope_scaling.original_max_position_embeddings, 8192);
    config["original_max_position_embeddings"] = 4096;
    EXPECT_EQ(parse(config).rope_scaling.original_max_position_embeddings, 4096);
    EXPECT_EQ(parse(config).rope_scaling.factor, 4.0);  // the explicit factor is kept

    // factor: null means max_position_embeddings / original_max_position_embeddings.
    config["rope_parameters"]["factor"] = nullptr;
    EXPECT_EQ(parse(config).rope_scaling.factor, 10.0);

    // An explicit 0 for the betas means "default", as HF's `or` does.
    config["rope_parameters"]["beta_fast"] = 0;
    config["rope_parameters"]["beta_slow"] = 0;
    EXPECT_EQ(parse(config).rope_scaling.beta_fast, 32.0);
    EXPECT_EQ(parse(config).rope_scaling.beta_slow, 1.0);
}

TEST(Config, ExactMessageForUnknownModelType) {
    json config = qwen25_config();
    config["model_type"] = "llama";
    EXPECT_EQ(parse_error(config),
              "model/config.json: unsupported model_type 'llama' (supported: qwen2, qwen3, "
              "l2a_qwen2, l2a_qwen3)");
    EXPECT_EQ(parse_error(json::parse(R"({"model_type": "qwen2", "vocab_size": 1,
        "hidden_size": 56, "intermediate_size": 1, "num_hidden_layers": 1,
        "num_attention_heads": 14, "num_key_value_heads": 4})")),
              "model/config.json: num_attention_heads (14) is not a multiple of "
              "num_key_value_heads (4)");
}

struct BadConfig {
    std::string name;
    std::string text;  // the whole config.json, or a JSON patch on top of Qwen2.5 with "{..."
    std::vector<std::string> expected;  // substrings of the message
};

// Qwen2.5 (or the L2A config) with the fields of `patch_text` replaced; a null in the patch
// deletes the field.
std::string patched(const std::string& patch_text, bool l2a) {
    json config = l2a ? l2a_qwen3_config() : qwen25_config();
    config.merge_patch(json::parse(patch_text));
    return config.dump();
}

// Qwen2.5 with one field set to `value`, which may be null.
std::string assigned(const std::string& key, const json& value) {
    json config = qwen25_config();
    config[key] = value;
    return config.dump();
}

std::vector<BadConfig> bad_configs() {
    return {
        {"not_json", "{\"model_type\": ", {"malformed JSON at line 1, column 16: "}},
        {"unterminated_string",
         "{\"model_type\": \"" + std::string(5000, 'q'),
         {"malformed JSON at line 1, column 5017: "}},
        {"empty", "", {"malformed JSON at line 1, column 1: "}},
        {"second_line", "{\n  \"model_type\": qwen2\n}", {"malformed JSON at line 2, column 17: "}},
        {"array", "[1, 2]", {"config must be a JSON object, got an array"}},
        {"number", "42", {"config must be a JSON object, got number 42"}},
        {"no_model_type",
         patched(R"({"model_type": null})", false),
         {"missing required field model_type"}},
        {"model_type_number",
         patched(R"({"model_type": 2})", false),
         {"model_type must be a string, got number 2"}},
        {"no_vocab",
         patched(R"({"vocab_size": null})", false),
         {"missing required field vocab_size"}},
        {"no_hidden",
         patched(R"({"hidden_size": null})", false),
         {"missing required field hidden_size"}},
        {"no_intermediate",
         patched(R"({"intermediate_size": null})", false),
         {"missing required field intermediate_size"}},
        {"no_layers",
         patched(R"({"num_hidden_layers": null})", false),
         {"missing required field num_hidden_layers"}},
        {"no_heads",
         patched(R"({"num_attention_heads": null})", false),
         {"missing required field num_attention_heads"}},
        {"hidden_string",
         patched(R"({"hidden_size": "3584"})", false),
         {"hidden_size must be an integer, got string \"3584\""}},
        {"hidden_float",
         patched(R"({"hidden_size": 3584.5})", false),
         {"hidden_size must be an integer, got number 3584.5"}},
        {"hidden_bool",
         patched(R"({"hidden_size": true})", false),
         {"hidden_size must be an integer, got boolean true"}},
        {"vocab_huge",
         patched(R"({"vocab_size": 18446744073709551615})", false),
         {"vocab_size is too large"}},
        {"hidden_huge",
         patched(R"({"hidden_size": 1000000000000})", false),
         {"hidden_size (1000000000000) is larger than the limit of 16777216"}},
        {"window_huge",
         patched(R"({"sliding_window": 4294967296})", true),
         {"sliding_window (4294967296) is larger than the limit"}},
        {"hidden_zero",
         patched(R"({"hidden_size": 0})", false),
         {"hidden_size must be positive, got 0"}},
        {"layers_negative",
         patched(R"({"num_hidden_layers": -2})", false),
         {"num_hidden_layers must be positive, got -2"}},
        {"kv_zero",
         patched(R"({"num_key_value_heads": 0})", false),
         {"num_key_value_heads must be positive, got 0"}},
        {"heads_not_dividing",
         patched(R"({"num_key_value_heads": 5})", false),
         {"num_attention_heads (28) is not a multiple of num_key_value_heads (5)"}},
        {"hidden_not_dividing",
         patched(R"({"hidden_size": 3585})", false),
         {"hidden_size (3585) is not a multiple of num_attention_heads (28)"}},
        {"head_dim_odd", patched(R"({"head_dim": 63})", false), {"head_dim (63) must be even"}},
        {"head_dim_negative",
         patched(R"({"head_dim": -64})", false),
         {"head_dim must be positive"}},
        {"max_positions_zero",
         patched(R"({"max_position_embeddings": 0})", false),
         {"max_position_embeddings must be positive"}},
        {"eps_string",
         patched(R"({"rms_norm_eps": "1e-6"})", false),
         {"rms_norm_eps must be a number, got string"}},
        {"eps_zero", patched(R"({"rms_norm_eps": 0})", false), {"rms_norm_eps must be positive"}},
        {"tie_string",
         patched(R"({"tie_word_embeddings": "yes"})", false),
         {"tie_word_embeddings must be true or false, got string \"yes\""}},
        {"theta_negative",
         patched(R"({"rope_theta": -1})", false),
         {"rope_theta must be positive"}},
        {"theta_array",
         patched(R"({"rope_theta": [1]})", false),
         {"rope_theta must be a number, got an array"}},
        {"act_gelu",
         patched(R"({"hidden_act": "gelu"})", false),
         {"unsupported hidden_act 'gelu'"}},
        {"dtype_int8",
         patched(R"({"torch_dtype": "int8"})", false),
         {"unsupported torch_dtype 'int8'"}},
        {"eos_string",
         patched(R"({"eos_token_id": "</s>"})", false),
         {"eos_token_id must be an integer"}},
        {"qwen2_swa",
         patched(R"({"use_sliding_window": true})", false),
         {"use_sliding_window: true is not supported for qwen2"}},
        {"rope_scaling_string",
         patched(R"({"rope_scaling": "yarn"})", false),
         {"rope_scaling must be an object, got string \"yarn\""}},
        {"rope_llama3",
         patched(R"({"rope_scaling": {"rope_type": "llama3", "factor": 8}})", false),
         {"unsupported rope type 'llama3' in rope_scaling (supported: default, linear, dynamic, "
          "yarn)"}},
        {"rope_longrope_params",
         patched(R"({"rope_parameters": {"rope_type": "longrope"}})", false),
         {"unsupported rope type 'longrope' in rope_parameters"}},
        {"rope_type_number",
         patched(R"({"rope_scaling": {"rope_type": 3}})", false),
         {"rope_scaling.rope_type must be a string"}},
        {"linear_no_factor",
         patched(R"({"rope_scaling": {"rope_type": "linear"}})", false),
         {"missing rope_scaling.factor for rope type linear"}},
        {"dynamic_small_factor",
         patched(R"({"rope_scaling": {"rope_type": "dynamic", "factor": 0.9}})", false),
         {"rope_scaling.factor must be >= 1 for rope type dynamic, got 0.9"}},
        {"yarn_small_factor",
         patched(R"({"rope_scaling": {"rope_type": "yarn", "factor": 0.5}})", false),
         {"rope_scaling.factor must be >= 1 for rope type yarn, got 0.5"}},
        {"yarn_no_factor",
         patched(R"({"rope_scaling": {"rope_type": "yarn"}})", false),
         {"missing rope_scaling.factor for rope type yarn"}},
        {"vocab_null", assigned("vocab_size", nullptr), {"missing required field vocab_size"}},
        {"yarn_null_factor_below_one",
         assigned("rope_scaling", json::parse(R"({"rope_type": "yarn", "factor": null,
                                                 "original_max_position_embeddings": 65536})")),
         {"rope_scaling.factor is null", "is below 1"}},
        {"yarn_original_zero",
         patched(R"({"rope_scaling": {"rope_type": "yarn", "factor": 2,
                     "original_max_position_embeddings": 0}})",
                 false),
         {"rope_scaling.original_max_position_embeddings must be positive"}},
        {"yarn_truncate_string",
         patched(R"({"rope_scaling": {"rope_type": "yarn", "factor": 2, "truncate": "no"}})",
                 false),
         {"rope_scaling.truncate must be true or false"}},
        {"yarn_attention_factor_zero",
         patched(R"({"rope_scaling": {"rope_type": "yarn", "factor": 2,
                     "attention_factor": 0}})",
                 false),
         {"rope_scaling.attention_factor must be positive"}},
        {"partial_rotary",
         patched(R"({"partial_rotary_factor": 0.5})", false),
         {"partial_rotary_factor 0.5 is not supported"}},
        {"partial_rotary_inside",
         patched(R"({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.25}})",
                 false),
         {"rope_parameters.partial_rotary_factor 0.25 is not supported"}},
        {"nested_not_object",
         patched(R"({"rope_parameters": {"full_attention": 1}})", false),
         {"rope_parameters.full_attention must be an object"}},
        {"threshold_zero",
         patched(R"({"sigmoid_threshold": 0})", true),
         {"sigmoid_threshold must be strictly between 0 and 1, got 0"}},
        {"threshold_one",
         patched(R"({"sigmoid_threshold": 1.0})", true),
         {"sigmoid_threshold must be strictly between 0 and 1, got 1.0"}},
        {"threshold_big",
         patched(R"({"sigmoid_threshold": 1.5})", true),
         {"sigmoid_threshold must be strictly between 0 and 1, got 1.5"}},
        {"temp_zero",
         patched(R"({"sigmoid_temp": 0})", true),
         {"sigmoid_temp must be positive, got 0"}},
        {"temp_negative",
         patched(R"({"sigmoid_temp": -0.1})", true),
         {"sigmoid_temp must be positive, got -0.1"}},
        {"window_zero",
         patched(R"({"sliding_window": 0})", true),
         {"sliding_window must be at least 1, got 0"}},
        {"window_string",
         patched(R"({"sliding_window": "4095"})", true),
         {"sliding_window must be an integer"}},
        {"sigmoid_linear_int",
         patched(R"({"sigmoid_linear": 1})", true),
         {"sigmoid_linear must be true or false, got number 1"}},
        {"sig_input_unknown",
         patched(R"({"sig_input_type": "hidden_lastdim"})", true),
         {"unsupported sig_input_type 'hidden_lastdim' (supported: hidden_linearproj, "
          "hidden_firstdim)"}},
        {"untrained_string",
         patched(R"({"l2a_untrained": "true"})", true),
         {"l2a_untrained must be true or false"}},
    };
}

class ConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ConfigErrors, NameTheFileAndTheField) {
    const BadConfig& bad = GetParam();
    const std::string message = parse_error(bad.text);
    ASSERT_FALSE(message.empty()) << "accepted: " << bad.text;
    EXPECT_EQ(message.rfind("model/config.json: ", 0), 0u) << message;
    for (const std::string& part : bad.expected) {
        EXPECT_NE(message.find(part), std::string::npos)
            << "message: " << message << "\nexpected to contain: " << part;
    }
    EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
}

// Every JSON file the engine reads words the library's errors the same way: where, then why,
// without the library's tags.
TEST(JsonErrors, LibraryTagsBecomeWords) {
    auto what_of = [](auto&& action) -> std::string {
        try {
            action();
        } catch (const json::exception& e) {
            return e.what();
        }
        return "";
    };
    const std::string parse =
        what_of([] { [[maybe_unused]] const json j = json::parse("{\"a\": [1, 2,\n  }"); });
    ASSERT_NE(parse.find("[json.exception.parse_error"), std::string::npos) << parse;
    std::string m = describe_json_error(parse);
    EXPECT_EQ(m.rfind("malformed JSON at line 2, column 3: ", 0), 0u) << m;
    EXPECT_EQ(m.find("json.exception"), std::string::npos) << m;

    m = describe_json_error(
        what_of([] { [[maybe_unused]] const json j = json::parse("{}").at("step"); }));
    EXPECT_EQ(m, "unexpected JSON content: key 'step' not found");
    m = describe_json_error(what_of([] { (void)json(5).get<std::string>(); }));
    EXPECT_EQ(m, "unexpected JSON content: type must be string, but is number");

    // What the parser last read is clipped, and bytes that are not text are not echoed.
    m = describe_json_error(what_of(
        [] { [[maybe_unused]] const json j = json::parse("\"" + std::string(5000, 'q')); }));
    EXPECT_LT(m.size(), 260u) << m;
    m = describe_json_error(
        what_of([] { [[maybe_unused]] const json j = json::parse("[\"\x01\xFF\"]"); }));
    EXPECT_EQ(m.find('\x01'), std::string::npos) << m;
    EXPECT_EQ(m.find('\xFF'), std::string::npos) << m;

    const std::string tagged =
        "x.json: " + what_of([] { [[maybe_unused]] const json j = json::parse("[1]").at(3); });
    EXPECT_EQ(without_library_tags(tagged),
              "x.json: unexpected JSON content: array index 3 is out of range");
    EXPECT_EQ(without_library_tags("model: [not a tag] fine"), "model: [not a tag] fine");
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigErrors, ::testing::ValuesIn(bad_configs()),
                         [](const auto& info) { return info.param.name; });

TEST(Config, LongStringsAreShortenedInMessages) {
    json config = qwen25_config();
    config["model_type"] = std::string(10000, 'x');
    std::string message = parse_error(config);
    EXPECT_LT(message.size(), 300u);
    EXPECT_NE(message.find("unsupported model_type 'xxxx"), std::string::npos) << message;
    config["model_type"] = "qwen2";
    config["hidden_size"] = std::string(10000, 'y');
    message = parse_error(config);
    EXPECT_LT(message.size(), 300u);
    EXPECT_NE(message.find("hidden_size must be an integer, got string \"yyyy"), std::string::npos)
        << message;
    message = parse_error("{\"model_type\": \"" + std::string(10000, 'z'));
    EXPECT_LT(message.size(), 300u);
}

TEST(Config, LoadFromFile) {
    const fs::path dir = test::scratch_dir("test_config");
    const fs::path file = dir / "config.json";
    std::ofstream(file) << qwen25_config().dump(2);
    EXPECT_EQ(load_model_config(file).hidden_size, 3584);

    std::ofstream(file) << R"({"model_type": "gpt2"})";
    try {
        load_model_config(file);
        FAIL() << "gpt2 accepted";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(file.string() + ": unsupported model_type", 0), 0u)
            << e.what();
    }

    const fs::path missing = dir / "missing.json";
    try {
        load_model_config(missing);
        FAIL() << "missing file accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
    }
}

std::vector<ModelConfig> configs_to_round_trip() {
    std::vector<ModelConfig> configs;
    configs.push_back(parse(qwen25_config()));
    configs.push_back(parse(qwen3_config()));
    configs.push_back(parse(l2a_qwen3_config()));

    ModelConfig yarn = parse(qwen3_config());
    yarn.rope_scaling.type = RopeScalingType::Yarn;
    yarn.rope_scaling.factor = 3.3;
    yarn.rope_scaling.original_max_position_embeddings = 8192;
    yarn.rope_scaling.beta_fast = 24.5;
    yarn.rope_scaling.beta_slow = 1.25;
    yarn.rope_scaling.attention_factor = 1.1;
    yarn.rope_scaling.mscale = 0.707;
    yarn.rope_scaling.mscale_all_dim = 0.5;
    yarn.rope_scaling.truncate = false;
    yarn.rope_theta = 123456.789;
    yarn.rms_norm_eps = 1.0 / 3.0;
    yarn.bos_token_id.reset();
    configs.push_back(yarn);

    ModelConfig linear = parse(qwen25_config());
    linear.rope_scaling.type = RopeScalingType::Linear;
    linear.rope_scaling.factor = 2.0;
    configs.push_back(linear);

    ModelConfig dynamic = parse(qwen3_config());
    dynamic.rope_scaling.type = RopeScalingType::Dynamic;
    dynamic.rope_scaling.factor = 4.0;
    configs.push_back(dynamic);

    json l2a_qwen2 = qwen25_config();
    l2a_qwen2["model_type"] = "l2a_qwen2";
    l2a_qwen2["sliding_window"] = 64;
    l2a_qwen2["sigmoid_temp"] = 0.1;
    l2a_qwen2["sigmoid_threshold"] = 0.3;
    l2a_qwen2["sigmoid_linear"] = false;
    l2a_qwen2["sig_input_type"] = "hidden_firstdim";
    l2a_qwen2["l2a_untrained"] = true;
    configs.push_back(parse(l2a_qwen2));
    return configs;
}

TEST(Config, RoundTripsThroughJson) {
    for (const ModelConfig& config : configs_to_round_trip()) {
        SCOPED_TRACE(model_type_name(config.model_type));
        const std::string text = model_config_to_json(config);
        const ModelConfig again = parse_model_config(text, "written");
        expect_same_config(config, again);
        EXPECT_EQ(model_config_to_json(again), text);
    }
}

TEST(Config, WritesHuggingFaceFieldNames) {
    const json written = json::parse(model_config_to_json(configs_to_round_trip()[3]));
    EXPECT_EQ(written.at("model_type"), "qwen3");
    EXPECT_EQ(written.at("architectures"), json::array({"Qwen3ForCausalLM"}));
    EXPECT_EQ(written.at("rope_theta"), 123456.789);
    EXPECT_EQ(written.at("rope_scaling").at("rope_type"), "yarn");
    EXPECT_EQ(written.at("rope_scaling").at("original_max_position_embeddings"), 8192);
    EXPECT_EQ(written.at("torch_dtype"), "float32");
    EXPECT_EQ(written.at("head_dim"), 64);
    EXPECT_FALSE(written.contains("sliding_window"));
    EXPECT_FALSE(written.contains("l2a_untrained"));

    const json l2a = json::parse(model_config_to_json(configs_to_round_trip().back()));
    EXPECT_EQ(l2a.at("model_type"), "l2a_qwen2");
    EXPECT_EQ(l2a.at("sliding_window"), 64);
    EXPECT_EQ(l2a.at("sig_input_type"), "hidden_firstdim");
    EXPECT_EQ(l2a.at("sigmoid_linear"), false);
    EXPECT_EQ(l2a.at("l2a_untrained"), true);
    EXPECT_EQ(l2a.at("rope_scaling"), nullptr);
}

// transformers reads what we write for the plain model types (same geometry, same RoPE), and
// we read back what transformers then saves in its own spelling. One Python run does all.
TEST(Config, TransformersReadsWrittenConfig) {
    if (!test::python_can_import("torch, transformers")) {
        GTEST_SKIP() << "needs " << L2A_PYTHON << " with torch and transformers";
    }
    const auto configs = configs_to_round_trip();
    const std::vector<std::size_t> plain = {0, 1, 3, 4, 5};
    const fs::path work = test::scratch_dir("test_config");
    const fs::path root = work / "configs";  // one folder per config, nothing else
    for (std::size_t index : plain) {
        const fs::path dir = root / std::to_string(index);
        fs::create_directories(dir);
        std::ofstream(dir / "config.json") << model_config_to_json(configs[index]);
    }
    const std::string script =
        "import json, os, sys, transformers\n"
        "transformers.logging.set_verbosity_error()\n"
        "root = sys.argv[1]\n"
        "for name in sorted(os.listdir(root)):\n"
        "    folder = os.path.join(root, name)\n"
        "    c = transformers.AutoConfig.from_pretrained(folder)\n"
        "    json.dump({'model_type': c.model_type, 'head_dim': getattr(c, 'head_dim', None),\n"
        "               'kv': c.num_key_value_heads, 'layers': c.num_hidden_layers,\n"
        "               'eps': c.rms_norm_eps, 'tie': c.tie_word_embeddings,\n"
        "               'dtype': str(c.dtype), 'rope': c.rope_parameters},\n"
        "              open(os.path.join(folder, 'read_back.json'), 'w'))\n"
        "    c.save_pretrained(os.path.join(folder, 'resaved'))\n";
    const fs::path script_file = work / "read_back.py";
    std::ofstream(script_file) << script;
    const std::string command = std::string("\"") + L2A_PYTHON + "\" \"" + script_file.string() +
                                "\" \"" + root.string() + "\"";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;

    for (std::size_t index : plain) {
        const ModelConfig& config = configs[index];
        SCOPED_TRACE(index);
        const fs::path dir = root / std::to_string(index);
        std::ifstream in(dir / "read_back.json");
        const json read = json::parse(in);
        EXPECT_EQ(read.at("model_type"), model_type_name(config.model_type));
        EXPECT_EQ(read.at("head_dim"), config.head_dim);
        EXPECT_EQ(read.at("kv"), config.num_key_value_heads);
        EXPECT_EQ(read.at("layers"), config.num_hidden_layers);
        EXPECT_EQ(read.at("eps"), config.rms_norm_eps);
        EXPECT_EQ(read.at("tie"), config.tie_word_embeddings);
        EXPECT_EQ(read.at("dtype"), "torch." + config.torch_dtype);
        const json& rope = read.at("rope");
        EXPECT_EQ(rope.at("rope_theta"), config.rope_theta);
        const char* type = config.rope_scaling.type == RopeScalingType::None      ? "default"
                           : config.rope_scaling.type == RopeScalingType::Linear  ? "linear"
                           : config.rope_scaling.type == RopeScalingType::Dynamic ? "dynamic"
                                                                                  : "yarn";
        EXPECT_EQ(rope.at("rope_type"), type);
        if (config.rope_scaling.type != RopeScalingType::None) {
            EXPECT_EQ(rope.at("factor"), config.rope_scaling.factor);
        }
        expect_same_config(config, load_model_config(dir / "resaved" / "config.json"));
    }
}

}  // namespace
}  // namespace l2a

// A config.json that cannot be opened is said of the model folder where that is what is wrong:
// no such folder, a file given as the folder, a folder without config.json.
TEST(Config, AMissingConfigNamesTheModelFolder) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(L2A_TEST_WORK_DIR) / "config" / "missing";
    fs::remove_all(dir);
    fs::create_directories(dir / "empty");
    std::ofstream(dir / "file.bin") << "not a folder";
    const auto error_of = [](const fs::path& folder) {
        return l2a::test::message_of([&] { l2a::load_model_config(folder / "config.json"); });
    };
    EXPECT_EQ(error_of(dir / "nowhere"), (dir / "nowhere").string() + ": no such model folder");
    EXPECT_EQ(error_of(dir / "file.bin"),
              (dir / "file.bin").string() +
                  ": not a folder (a model is a folder with config.json and weights)");
    EXPECT_EQ(error_of(dir / "empty"),
              (dir / "empty").string() + ": not a model folder (it has no config.json)");
}
