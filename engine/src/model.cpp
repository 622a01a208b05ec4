#include "l2a/engine/model.h"

#include <string>
#include <utility>

#include "l2a/engine/checkpoint.h"
#include "l2a/engine/error.h"
#include "model_impl.h"

namespace l2a {
namespace {

at::ScalarType scalar_type(DType dtype) {
    switch (dtype) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I32: return at::kInt;
    case DType::I64: return at::kLong;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
    }
    return at::kFloat;
}

bool is_float(DType dtype) {
    return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// Copies a mapped tensor into an owned fp32 tensor (the mapping closes with the checkpoint).
class WeightReader {
public:
    explicit WeightReader(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

    at::Tensor get(const std::string& name, std::vector<std::int64_t> shape) {
        TensorView view = checkpoint_.get(name, shape);
        if (!is_float(view.info->dtype)) {
            fail(checkpoint_.file_of(name).string(),
                 "tensor '" + name + "' has dtype " + dtype_name(view.info->dtype) +
                     ", expected a floating-point type (F32, F16 or BF16)");
        }
        at::Tensor mapped = at::from_blob(const_cast<std::byte*>(view.data), shape,
                                          at::TensorOptions().dtype(scalar_type(view.info->dtype)));
        at::Tensor owned = mapped.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
        parameters_ += owned.numel();
        return owned;
    }

    at::Tensor get_optional(const std::string& name, std::vector<std::int64_t> shape) {
        return checkpoint_.has(name) ? get(name, std::move(shape)) : at::Tensor();
    }

    std::int64_t parameters() const { return parameters_; }

private:
    const Checkpoint& checkpoint_;
    std::int64_t parameters_ = 0;
};

AttentionWeights load_attention(WeightReader& reader, const ModelConfig& c, const std::string& prefix,
                                const std::string& suffix) {
    const std::int64_t d = c.hidden_size;
    const std::int64_t q_out = c.num_attention_heads * c.head_dim;
    const std::int64_t kv_out = c.num_key_value_heads * c.head_dim;
    AttentionWeights a;
    a.q_proj = reader.get(prefix + "q_proj" + suffix + ".weight", {q_out, d});
    a.k_proj = reader.get(prefix + "k_proj" + suffix + ".weight", {kv_out, d});
    a.v_proj = reader.get(prefix + "v_proj" + suffix + ".weight", {kv_out, d});
    a.o_proj = reader.get(prefix + "o_proj" + suffix + ".weight", {d, q_out});
    if (c.has_qkv_bias()) {
        a.q_bias = reader.get(prefix + "q_proj" + suffix + ".bias", {q_out});
        a.k_bias = reader.get(prefix + "k_proj" + suffix + ".bias", {kv_out});
        a.v_bias = reader.get(prefix + "v_proj" + suffix + ".bias", {kv_out});
        // Qwen3 puts the bias flag on all four projections, Qwen2 on q/k/v only.
        if (c.has_qk_norm()) a.o_bias = reader.get(prefix + "o_proj" + suffix + ".bias", {d});
    }
    if (c.has_qk_norm()) {
        a.q_norm = reader.get(prefix + "q_norm" + suffix + ".weight", {c.head_dim});
        a.k_norm = reader.get(prefix + "k_norm" + suffix + ".weight", {c.head_dim});
    }
    return a;
}

std::string router_input_name(RouterInput input) {
    switch (input) {
    case RouterInput::HiddenLinearProj: return "hidden_linearproj";
    case RouterInput::HiddenFirstDim: return "hidden_firstdim";
    case RouterInput::HiddenMean: return "hidden_mean";
    }
    return "?";
}

}  // namespace

Model::Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

const ModelConfig& Model::config() const { return impl_->config; }
const ModelSummary& Model::summary() const { return impl_->summary; }
const Tokenizer* Model::tokenizer() const {
    return impl_->tokenizer ? &*impl_->tokenizer : nullptr;
}

Model Model::load(const std::filesystem::path& model_dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(model_dir, ec)) {
        fail(model_dir.string(), std::filesystem::exists(model_dir, ec)
                                     ? "not a folder (a model is a folder with config.json and weights)"
                                     : "no such model folder");
    }
    auto impl = std::make_shared<Impl>();
    impl->dir = model_dir;
    impl->config = load_model_config(model_dir / "config.json");
    const ModelConfig& c = impl->config;

    {
        at::NoGradGuard no_grad;
        Checkpoint checkpoint = Checkpoint::open(model_dir);
        WeightReader reader(checkpoint);
        const std::int64_t d = c.hidden_size;
        impl->embed = reader.get("model.embed_tokens.weight", {c.vocab_size, d});
        impl->final_norm = reader.get("model.norm.weight", {d});
        if (c.tie_word_embeddings) {
            impl->lm_head = impl->embed;
        } else {
            impl->lm_head = reader.get("lm_head.weight", {c.vocab_size, d});
        }
        impl->layers.reserve(static_cast<std::size_t>(c.num_hidden_layers));
        for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            LayerWeights layer;
            layer.input_norm = reader.get(p + "input_layernorm.weight", {d});
            layer.post_norm = reader.get(p + "post_attention_layernorm.weight", {d});
            layer.attn = load_attention(reader, c, p + "self_attn.", "");
            layer.gate_proj = reader.get(p + "mlp.gate_proj.weight", {c.intermediate_size, d});
            layer.up_proj = reader.get(p + "mlp.up_proj.weight", {c.intermediate_size, d});
            layer.down_proj = reader.get(p + "mlp.down_proj.weight", {d, c.intermediate_size});
            if (c.is_l2a()) {
                layer.global_norm = reader.get(p + "input_layernorm_global.weight", {d});
                layer.global = load_attention(reader, c, p + "self_attn.", "_global");
                if (c.l2a.router_input == RouterInput::HiddenLinearProj) {
                    layer.router = reader.get(p + "self_attn.sigmoid_linear.weight", {1, d}).reshape({d});
                }
            }
            impl->layers.push_back(std::move(layer));
        }

        ModelSummary& s = impl->summary;
        s.path = model_dir.string();
        s.model_type = model_type_name(c.model_type);
        s.num_layers = c.num_hidden_layers;
        s.hidden_size = d;
        s.intermediate_size = c.intermediate_size;
        s.num_heads = c.num_attention_heads;
        s.num_kv_heads = c.num_key_value_heads;
        s.head_dim = c.head_dim;
        s.vocab_size = c.vocab_size;
        s.parameter_count = reader.parameters();
        s.is_l2a = c.is_l2a();
        s.untrained = c.untrained;
        if (c.is_l2a()) {
            s.sliding_window = c.l2a.sliding_window;
            s.sigmoid_temp = c.l2a.sigmoid_temp;
            s.sigmoid_threshold = c.l2a.sigmoid_threshold;
            s.router_input = router_input_name(c.l2a.router_input);
        }
    }

    const std::filesystem::path tokenizer_json = model_dir / "tokenizer.json";
    if (std::filesystem::exists(tokenizer_json, ec)) {
        impl->tokenizer.emplace(Tokenizer::from_file(tokenizer_json));
    }
    return Model(std::move(impl));
}

}  // namespace l2a
