#include "l2a/engine/shapes.h"

#include <array>
#include <string>

#include "l2a/engine/error.h"

namespace l2a {
namespace {

struct PublishedShape {
    const char* name;
    bool qwen3;  // Qwen3 (QK-norm, no q/k/v bias) or Qwen2.5 (q/k/v bias, no QK-norm)
    std::int64_t layers;
    std::int64_t hidden;
    std::int64_t intermediate;
    std::int64_t heads;
    std::int64_t kv_heads;
    std::int64_t head_dim;
    std::int64_t vocab;
    double rope_theta;
    double rms_norm_eps;
    std::int64_t max_positions;
    bool tie_word_embeddings;
};

// Values of each model's config.json on the HuggingFace Hub (Qwen/<name>; the base models, not
// the -Instruct ones, whose max_position_embeddings is 32768 throughout). Qwen3 configs give
// head_dim explicitly; Qwen2.5 configs leave it to hidden_size / num_attention_heads.
// - qwen3-0.6b, -4b, -8b: config.json of Qwen/Qwen3-0.6B, -4B, -8B (transformers 4.51.0).
// - qwen3-1.7b, -14b: config.json of Qwen/Qwen3-1.7B, -14B; the model cards confirm layers and
//   heads (28 layers, 16/8 heads; 40 layers, 40/8 heads).
// - qwen2.5-*: config.json of Qwen/Qwen2.5-0.5B, -1.5B, -3B, -7B, -14B. Of these, only the 14B
//   base model uses rms_norm_eps 1e-5 (its -Instruct variant uses 1e-6), and 1.5B, 7B and 14B
//   declare 131072 positions where 0.5B and 3B declare 32768.
constexpr std::array<PublishedShape, 10> kShapes = {{
    {"qwen3-0.6b", true, 28, 1024, 3072, 16, 8, 128, 151936, 1e6, 1e-6, 40960, true},
    {"qwen3-1.7b", true, 28, 2048, 6144, 16, 8, 128, 151936, 1e6, 1e-6, 40960, true},
    {"qwen3-4b", true, 36, 2560, 9728, 32, 8, 128, 151936, 1e6, 1e-6, 40960, true},
    {"qwen3-8b", true, 36, 4096, 12288, 32, 8, 128, 151936, 1e6, 1e-6, 40960, false},
    {"qwen3-14b", true, 40, 5120, 17408, 40, 8, 128, 151936, 1e6, 1e-6, 40960, false},
    {"qwen2.5-0.5b", false, 24, 896, 4864, 14, 2, 64, 151936, 1e6, 1e-6, 32768, true},
    {"qwen2.5-1.5b", false, 28, 1536, 8960, 12, 2, 128, 151936, 1e6, 1e-6, 131072, true},
    {"qwen2.5-3b", false, 36, 2048, 11008, 16, 2, 128, 151936, 1e6, 1e-6, 32768, true},
    {"qwen2.5-7b", false, 28, 3584, 18944, 28, 4, 128, 152064, 1e6, 1e-6, 131072, false},
    {"qwen2.5-14b", false, 48, 5120, 13824, 40, 8, 128, 152064, 1e6, 1e-5, 131072, false},
}};

std::string known_names() {
    std::string text;
    for (const PublishedShape& s : kShapes) {
        if (!text.empty()) text += ", ";
        text += s.name;
    }
    return text;
}

}  // namespace

std::vector<std::string> published_shape_names() {
    std::vector<std::string> names;
    for (const PublishedShape& s : kShapes) names.emplace_back(s.name);
    return names;
}

ModelConfig published_shape(std::string_view name, bool l2a, std::int64_t window) {
    for (const PublishedShape& s : kShapes) {
        if (name != s.name) continue;
        if (l2a && window < 1) {
            fail("", "--window: the sliding window must be at least 1 token (got " +
                         std::to_string(window) + ")");
        }
        ModelConfig c;
        if (s.qwen3) {
            c.model_type = l2a ? ModelType::L2AQwen3 : ModelType::Qwen3;
        } else {
            c.model_type = l2a ? ModelType::L2AQwen2 : ModelType::Qwen2;
        }
        c.vocab_size = s.vocab;
        c.hidden_size = s.hidden;
        c.intermediate_size = s.intermediate;
        c.num_hidden_layers = s.layers;
        c.num_attention_heads = s.heads;
        c.num_key_value_heads = s.kv_heads;
        c.head_dim = s.head_dim;
        c.max_position_embeddings = s.max_positions;
        c.rope_theta = s.rope_theta;
        c.rms_norm_eps = s.rms_norm_eps;
        // Qwen2 has q/k/v biases by construction (no attention_bias field); Qwen3 declares false.
        c.attention_bias = !s.qwen3;
        c.tie_word_embeddings = s.tie_word_embeddings;
        c.hidden_act = "silu";
        c.torch_dtype = "bfloat16";
        c.bos_token_id = 151643;
        c.eos_token_id = 151643;
        if (l2a) {
            c.l2a.sliding_window = window;
            c.l2a.sigmoid_temp = 1.0;
            c.l2a.sigmoid_threshold = 0.5;
            c.l2a.sigmoid_linear = true;
            c.l2a.sig_input_type = "hidden_linearproj";
            c.l2a.router_input = RouterInput::HiddenLinearProj;
            c.l2a.initfrombase = false;
        }
        return c;
    }
    fail("", "--shape: unknown shape '" + std::string(name) + "' (known: " + known_names() + ")");
}

}  // namespace l2a
