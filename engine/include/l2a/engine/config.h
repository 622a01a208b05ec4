// config.json of a Qwen-family model folder, as a plain struct.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l2a {

enum class ModelType { Qwen2, Qwen3, L2AQwen2, L2AQwen3 };
const char* model_type_name(ModelType type);  // "qwen2", "qwen3", "l2a_qwen2", "l2a_qwen3"

enum class RopeScalingType { None, Linear, Dynamic, Yarn };

// HuggingFace's rope_scaling dict, the fields used by the rope types we support.
struct RopeScaling {
    RopeScalingType type = RopeScalingType::None;
    double factor = 1.0;
    // YaRN
    std::optional<std::int64_t> original_max_position_embeddings;
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    std::optional<double> attention_factor;
    std::optional<double> mscale;  // DeepSeek-style variant of YaRN's attention factor
    std::optional<double> mscale_all_dim;
    bool truncate = true;  // HF YaRN: round the correction range
};

// How the L2A router turns the normalized hidden state into one logit per token (L2A.md).
enum class RouterInput { HiddenLinearProj, HiddenFirstDim, HiddenMean };
// "hidden_linearproj", "hidden_firstdim", "hidden_mean": the reference's sig_input_type words
// (HiddenMean is sigmoid_linear = false), as profiles and `l2a info` name the mode.
const char* router_input_name(RouterInput input);

struct L2AConfig {
    std::int64_t sliding_window = 4095;  // W: keys t-W+1 .. t
    double sigmoid_temp = 1.0;           // tau
    double sigmoid_threshold = 0.5;      // theta
    bool sigmoid_linear = true;
    std::string sig_input_type = "hidden_linearproj";
    RouterInput router_input = RouterInput::HiddenLinearProj;  // derived from the two above
    bool initfrombase = false;
};

// The router logit at and above which a token takes global attention at inference:
// tau * logit(theta) = tau * ln(theta / (1 - theta)), 0 at theta 0.5 (L2A.md). `threshold`
// replaces sigmoid_threshold (theta) when given, as the run option --threshold does.
double decision_cut(const L2AConfig& l2a, std::optional<double> threshold = std::nullopt);

struct ModelConfig {
    ModelType model_type = ModelType::Qwen3;
    std::int64_t vocab_size = 0;
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_hidden_layers = 0;
    std::int64_t num_attention_heads = 0;
    std::int64_t num_key_value_heads = 0;
    // When config.json has none: 128 for the Qwen3 types (Qwen3Config's default, which
    // transformers uses), hidden_size / num_attention_heads for the Qwen2 types.
    std::int64_t head_dim = 0;
    std::int64_t max_position_embeddings = 32768;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    double rms_norm_eps = 1e-6;
    bool attention_bias = false;  // q/k/v biases; always true for the Qwen2 types, as in HF
    bool tie_word_embeddings = false;
    std::string hidden_act = "silu";
    std::string torch_dtype = "bfloat16";
    std::optional<std::int64_t> bos_token_id;
    std::optional<std::int64_t> eos_token_id;
    bool untrained = false;  // ours: "l2a_untrained": true marks random demo weights
    L2AConfig l2a;           // meaningful when is_l2a()

    bool is_l2a() const {
        return model_type == ModelType::L2AQwen2 || model_type == ModelType::L2AQwen3;
    }
    bool has_qk_norm() const {
        return model_type == ModelType::Qwen3 || model_type == ModelType::L2AQwen3;
    }
    bool has_qkv_bias() const { return attention_bias; }
};

// Parses and validates; errors name `origin` (the file) and the field, e.g.
// "model/config.json: num_attention_heads (14) is not a multiple of num_key_value_heads (4)".
ModelConfig parse_model_config(std::string_view json_text, std::string_view origin);
ModelConfig load_model_config(const std::filesystem::path& config_json);
// Serializes back to config.json (HuggingFace field names), e.g. for the demo model.
std::string model_config_to_json(const ModelConfig& config);

}  // namespace l2a
