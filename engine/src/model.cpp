#include "l2a/engine/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "device_runtime.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/checkpoint.h"
#include "l2a/engine/device.h"
#include "l2a/engine/error.h"
#include "l2a/engine/run_choices.h"
#include "l2a/engine/tensor_names.h"
#include "model_impl.h"

namespace l2a {
namespace {

at::ScalarType scalar_type(DType dtype) {
    switch (dtype) {
        case DType::F32:
            return at::kFloat;
        case DType::F16:
            return at::kHalf;
        case DType::BF16:
            return at::kBFloat16;
        case DType::I32:
            return at::kInt;
        case DType::I64:
            return at::kLong;
        case DType::U8:
            return at::kByte;
        case DType::BOOL:
            return at::kBool;
    }
    return at::kFloat;
}

bool is_float(DType dtype) {
    return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// What a tensor is, for weights that are made rather than read (Model::random).
enum class Init { Matrix, Norm, Bias, Router };

// The part of a tensor a tensor-parallel rank keeps: `count` rows of dimension `dim` from `first`
// (dim -1: all of it).
struct Slice {
    int dim = -1;
    std::int64_t first = 0;
    std::int64_t count = 0;
};

// The rank's part of one tensor of `full` (a view), or `full` itself.
at::Tensor narrow_to(const at::Tensor& full, const Slice& slice) {
    return slice.dim < 0 ? full : full.narrow(slice.dim, slice.first, slice.count);
}

// Copies mapped tensors onto the placement's device, in its dtype (the mapping closes with the
// checkpoint).
class CheckpointWeights {
public:
    CheckpointWeights(const Checkpoint& checkpoint, const at::Device& device, at::ScalarType dtype)
        : checkpoint_(checkpoint), device_(device), dtype_(dtype) {}

    // The tensor `name` of `shape`, or only `slice` of it (read from the mapping: the rest never
    // leaves the file). The parameter count is of the whole tensor.
    at::Tensor get(const std::string& name, std::vector<std::int64_t> shape, Init /*init*/,
                   const Slice& slice = {}) {
        TensorView view = checkpoint_.get(name, shape);
        if (!is_float(view.info->dtype)) {
            fail(checkpoint_.file_of(name).string(),
                 "tensor '" + name + "' has dtype " + dtype_name(view.info->dtype) +
                     ", expected a floating-point type (F32, F16 or BF16)");
        }
        const at::Tensor whole =
            at::from_blob(const_cast<std::byte*>(view.data), shape,
                          at::TensorOptions().dtype(scalar_type(view.info->dtype)));
        // A slice is gathered on the host first (only its bytes are read).
        const at::Tensor mapped = slice.dim < 0 ? whole : narrow_to(whole, slice).contiguous();
        // The stored dtype travels (fewer bytes over PCIe); the conversion runs on the device.
        at::Tensor owned = device_.is_cpu()
                               ? mapped.to(dtype_, /*non_blocking=*/false, /*copy=*/true)
                               : mapped.to(device_, mapped.scalar_type(), false, true).to(dtype_);
        parameters_ += whole.numel();
        used_.push_back(name);
        // One pass per tensor on its device (min and max, which NaN and Inf reach, with no
        // full-size temporary), read back once for all of them (nonfinite()).
        if (owned.numel() > 0) {
            const auto [lo, hi] = at::aminmax(owned);
            finite_.push_back(at::isfinite(lo).logical_and(at::isfinite(hi)));
        } else {
            finite_.push_back(at::ones({}, owned.options().dtype(at::kBool)));
        }
        return owned;
    }

    std::int64_t parameters() const { return parameters_; }

    // The tensors read that hold NaN or Inf in the placement's dtype, with how many.
    std::vector<std::pair<std::string, std::int64_t>> nonfinite() const {
        std::vector<std::pair<std::string, std::int64_t>> bad;
        if (finite_.empty()) return bad;
        const at::Tensor flags = at::stack(finite_).to(at::kCPU);
        const bool* ok = flags.data_ptr<bool>();
        for (std::size_t i = 0; i < used_.size(); ++i) {
            if (ok[i]) continue;
            // Error path only: read the tensor again to count.
            const TensorView view = checkpoint_.get(used_[i]);
            const std::vector<std::int64_t> shape(view.info->shape.begin(), view.info->shape.end());
            const at::Tensor mapped =
                at::from_blob(const_cast<std::byte*>(view.data), shape,
                              at::TensorOptions().dtype(scalar_type(view.info->dtype)));
            const std::int64_t stored = (~at::isfinite(mapped)).sum().item<std::int64_t>();
            bad.emplace_back(used_[i], stored);  // 0: finite as stored, not in the dtype
        }
        return bad;
    }

    // Names in the checkpoint that no get() asked for.
    std::vector<std::string> unused() const {
        std::set<std::string, std::less<>> used(used_.begin(), used_.end());
        std::vector<std::string> names;
        for (std::string& name : checkpoint_.tensor_names()) {
            if (!used.contains(name)) names.push_back(std::move(name));
        }
        return names;
    }

private:
    const Checkpoint& checkpoint_;
    at::Device device_;
    at::ScalarType dtype_;
    std::int64_t parameters_ = 0;
    std::vector<std::string> used_;
    std::vector<at::Tensor> finite_;
};

// Weights the config leaves out (a config with fewer layers than the checkpoint, usually a
// mistake): one warning for the layers beyond num_hidden_layers.
void warn_unused(const CheckpointWeights& weights, const Checkpoint& checkpoint,
                 Model::Impl& impl) {
    std::int64_t count = 0, first = -1, last = -1;
    std::string example;
    for (const std::string& name : weights.unused()) {
        const std::int64_t layer = tensor_names::layer_of(name);
        if (layer < impl.config.num_hidden_layers) continue;
        ++count;
        first = first < 0 ? layer : std::min(first, layer);
        last = std::max(last, layer);
        if (example.empty()) example = name;
    }
    if (count == 0) return;
    const std::string layers = first == last
                                   ? "layer " + std::to_string(first)
                                   : "layers " + std::to_string(first) + "-" + std::to_string(last);
    impl.warnings.push_back(checkpoint.file_of(example).filename().string() + ": " +
                            std::to_string(count) + " tensors of " + layers +
                            " are not used by config.json (num_hidden_layers = " +
                            std::to_string(impl.config.num_hidden_layers) + ")");
}

// NaN or Inf in the weights make every later number meaningless: refused, naming the tensor,
// unless the placement allows them (then a warning).
void check_finite(const CheckpointWeights& weights, const Checkpoint& checkpoint,
                  Model::Impl& impl) {
    const auto bad = weights.nonfinite();
    if (bad.empty()) return;
    const auto& [name, stored] = bad.front();
    std::string what =
        "tensor '" + name + "' holds " +
        (stored > 0 ? std::to_string(stored) + " non-finite value" + (stored == 1 ? "" : "s") +
                          " (NaN or Inf)"
                    : "values that overflow " + impl.placement.dtype + " (Inf after conversion)");
    if (bad.size() == 2) what += ", and 1 more tensor does too";
    if (bad.size() > 2) what += ", and " + std::to_string(bad.size() - 1) + " more tensors do too";
    const std::string file = checkpoint.file_of(name).string();
    if (!impl.placement.allow_nonfinite_weights) {
        fail(file, what +
                       "; refusing to run a model with broken weights (--allow-nonfinite-weights "
                       "runs it anyway)");
    }
    impl.warnings.push_back(file + ": " + what + "; running anyway (--allow-nonfinite-weights)");
}

// Random weights made on the device. Each tensor has its own generator, seeded by the model seed
// and the tensor's name, so that a plain model and an L2A model of the same shape and seed share
// every base weight (the L2A model's local set equals the plain model's attention).
class RandomWeights {
public:
    RandomWeights(std::uint64_t seed, const at::Device& device, at::ScalarType dtype)
        : seed_(seed), device_(device), dtype_(dtype) {}

    // A slice is cut from the whole tensor (made one at a time), so that every rank's part
    // equals the same part of the whole model made with the same seed.
    at::Tensor get(const std::string& name, std::vector<std::int64_t> shape, Init init,
                   const Slice& slice = {}) {
        const at::TensorOptions options = at::TensorOptions().device(device_).dtype(dtype_);
        at::Tensor t;
        switch (init) {
            case Init::Norm:
                t = at::ones(shape, options);
                break;
            case Init::Bias:
                t = at::zeros(shape, options);
                break;
            case Init::Matrix:
            case Init::Router: {
                at::Generator generator = make_generator(tensor_seed(name));
                t = at::empty(shape, options).normal_(0.0, 0.02, generator);
                break;
            }
        }
        parameters_ += t.numel();
        return slice.dim < 0 ? t : narrow_to(t, slice).contiguous();
    }

    std::int64_t parameters() const { return parameters_; }

private:
    std::uint64_t tensor_seed(const std::string& name) const {
        std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
        for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
        return h ^ (seed_ * 0x9E3779B97F4A7C15ull);
    }
    at::Generator make_generator(std::uint64_t seed) const {
        if (device_.is_cpu()) return at::detail::createCPUGenerator(seed);
        at::Generator generator = at::detail::getCUDAHooks().getNewGenerator(device_.index());
        generator.set_current_seed(seed);
        return generator;
    }

    std::uint64_t seed_;
    at::Device device_;
    at::ScalarType dtype_;
    std::int64_t parameters_ = 0;
};

// Which rank of how many a model is made for (tensor parallel; 0 of 1: the whole model).
struct ShardSpec {
    int rank = 0;
    int world = 1;
    // Rows [rank * n / world, (rank + 1) * n / world) of dimension `dim` of a tensor of n there.
    Slice part(int dim, std::int64_t n) const {
        if (world == 1) return {};
        return {dim, rank * (n / world), n / world};
    }
};

template <typename Weights>
AttentionWeights make_attention(Weights& weights, const ModelConfig& c, std::int64_t layer,
                                tensor_names::AttentionSet set, const ShardSpec& shard) {
    using enum tensor_names::AttentionPart;
    using tensor_names::TensorKind;
    const auto name = [&](tensor_names::AttentionPart part, TensorKind kind = TensorKind::Weight) {
        return tensor_names::attention_tensor(layer, set, part, kind);
    };
    const std::int64_t d = c.hidden_size;
    const std::int64_t q_out = c.num_attention_heads * c.head_dim;
    const std::int64_t kv_out = c.num_key_value_heads * c.head_dim;
    // Tensor parallel: the rank's heads (Q/K/V rows, column-parallel) and the matching O columns
    // (row-parallel); the O bias is added once, by rank 0 (tensor_parallel.h).
    AttentionWeights a;
    a.q_proj = weights.get(name(QProj), {q_out, d}, Init::Matrix, shard.part(0, q_out));
    a.k_proj = weights.get(name(KProj), {kv_out, d}, Init::Matrix, shard.part(0, kv_out));
    a.v_proj = weights.get(name(VProj), {kv_out, d}, Init::Matrix, shard.part(0, kv_out));
    a.o_proj = weights.get(name(OProj), {d, q_out}, Init::Matrix, shard.part(1, q_out));
    if (c.has_qkv_bias()) {
        a.q_bias =
            weights.get(name(QProj, TensorKind::Bias), {q_out}, Init::Bias, shard.part(0, q_out));
        a.k_bias =
            weights.get(name(KProj, TensorKind::Bias), {kv_out}, Init::Bias, shard.part(0, kv_out));
        a.v_bias =
            weights.get(name(VProj, TensorKind::Bias), {kv_out}, Init::Bias, shard.part(0, kv_out));
        // Qwen3 puts the bias flag on all four projections, Qwen2 on q/k/v only.
        if (c.has_qk_norm()) {
            at::Tensor bias = weights.get(name(OProj, TensorKind::Bias), {d}, Init::Bias);
            if (shard.rank == 0) a.o_bias = std::move(bias);
        }
    }
    if (c.has_qk_norm()) {
        a.q_norm = weights.get(name(QNorm), {c.head_dim}, Init::Norm);
        a.k_norm = weights.get(name(KNorm), {c.head_dim}, Init::Norm);
    }
    return a;
}

// Makes impl's weights for impl.config, the whole model's; with a shard, only the rank's part of
// the split tensors (impl.config is then the caller's to divide).
template <typename Weights>
void make_weights(Weights& weights, Model::Impl& impl, const ShardSpec& shard = {}) {
    namespace names = tensor_names;
    const ModelConfig& c = impl.config;
    const std::int64_t d = c.hidden_size;
    impl.embed = weights.get(std::string(names::kEmbedTokens), {c.vocab_size, d}, Init::Matrix);
    impl.final_norm = weights.get(std::string(names::kFinalNorm), {d}, Init::Norm);
    impl.lm_head = c.tie_word_embeddings
                       ? impl.embed
                       : weights.get(std::string(names::kLmHead), {c.vocab_size, d}, Init::Matrix);
    impl.layers.reserve(static_cast<std::size_t>(c.num_hidden_layers));
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const auto name = [i](std::string_view tensor) { return names::layer_tensor(i, tensor); };
        const std::int64_t m = c.intermediate_size;
        LayerWeights layer;
        layer.input_norm = weights.get(name(names::kInputNorm), {d}, Init::Norm);
        layer.post_norm = weights.get(name(names::kPostAttentionNorm), {d}, Init::Norm);
        layer.attn = make_attention(weights, c, i, names::AttentionSet::Local, shard);
        layer.gate_proj =
            weights.get(name(names::kMlpGate), {m, d}, Init::Matrix, shard.part(0, m));
        layer.up_proj = weights.get(name(names::kMlpUp), {m, d}, Init::Matrix, shard.part(0, m));
        layer.down_proj =
            weights.get(name(names::kMlpDown), {d, m}, Init::Matrix, shard.part(1, m));
        if (c.is_l2a()) {
            layer.global_norm = weights.get(name(names::kGlobalInputNorm), {d}, Init::Norm);
            layer.global = make_attention(weights, c, i, names::AttentionSet::Global, shard);
            if (c.l2a.router_input == RouterInput::HiddenLinearProj) {
                layer.router = weights.get(name(names::kRouter), {1, d}, Init::Router).reshape({d});
            }
        }
        impl.layers.push_back(std::move(layer));
    }
}

// FNV-1a 64 of the file's bytes as 16 hex digits.
std::string config_file_hash(const std::filesystem::path& path) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : read_text_file(path)) h = (h ^ ch) * 0x100000001b3ull;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string text(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) text[static_cast<std::size_t>(i)] = kHex[h & 0xf];
    return text;
}

// The bytes of the files that hold the checkpoint's tensors.
std::int64_t weight_file_bytes(const Checkpoint& checkpoint) {
    std::set<std::filesystem::path> files;
    for (const std::string& name : checkpoint.tensor_names())
        files.insert(checkpoint.file_of(name));
    std::int64_t bytes = 0;
    for (const std::filesystem::path& file : files) {
        std::error_code error;
        const auto size = std::filesystem::file_size(file, error);
        if (!error) bytes += static_cast<std::int64_t>(size);
    }
    return bytes;
}

void fill_summary(Model::Impl& impl, std::string path, std::int64_t parameters) {
    impl.summary = summarize_config(impl.config, std::move(path), parameters);
}

// Checks the placement against this build and machine and resolves dtype "auto".
void place(Model::Impl& impl, const Placement& requested) {
    impl.device = resolve_device(requested.device);
    Placement& p = impl.placement;
    p.device = requested.device;
    p.dtype = requested.dtype;
    p.allow_nonfinite_weights = requested.allow_nonfinite_weights;
    std::optional<WeightDtype> dtype = parse_weight_dtype(p.dtype);
    if (!dtype) fail("", "--dtype " + requested.dtype + ": expected " + kWeightDtypeChoices);
    if (*dtype == WeightDtype::Auto)
        dtype = impl.device.is_cpu() ? WeightDtype::Fp32 : WeightDtype::Bf16;
    p.dtype = weight_dtype_name(*dtype);
    switch (*dtype) {
        case WeightDtype::Bf16:
            impl.dtype = at::kBFloat16;
            break;
        case WeightDtype::Fp16:
            impl.dtype = at::kHalf;
            break;
        default:
            impl.dtype = at::kFloat;
            break;
    }
    if (impl.device.is_cpu() && impl.dtype != at::kFloat) {
        fail("", "--dtype " + requested.dtype +
                     ": the CPU engine runs fp32 only (bf16 and fp16 need --device cuda)");
    }
}

// Weights that do not fit are an error that says so, not a crash.
template <typename Make>
void make_on_device(Model::Impl& impl, const std::string& what, Make&& make) {
    try {
        make();
    } catch (const c10::OutOfMemoryError&) {
        impl.layers.clear();
        impl.embed = impl.lm_head = impl.final_norm = at::Tensor();
        fail("", out_of_memory_message(impl.device, "loading " + what,
                                       std::to_string(impl.config.num_hidden_layers) +
                                           " layers in " + impl.placement.dtype,
                                       "try a smaller model"));
    }
}

}  // namespace

ModelSummary summarize_config(const ModelConfig& c, std::string path,
                              std::int64_t parameter_count) {
    ModelSummary s;
    s.path = std::move(path);
    s.model_type = model_type_name(c.model_type);
    s.num_layers = c.num_hidden_layers;
    s.hidden_size = c.hidden_size;
    s.intermediate_size = c.intermediate_size;
    s.num_heads = c.num_attention_heads;
    s.num_kv_heads = c.num_key_value_heads;
    s.head_dim = c.head_dim;
    s.vocab_size = c.vocab_size;
    s.parameter_count = parameter_count;
    s.is_l2a = c.is_l2a();
    s.untrained = c.untrained;
    if (c.is_l2a()) {
        s.sliding_window = c.l2a.sliding_window;
        s.sigmoid_temp = c.l2a.sigmoid_temp;
        s.sigmoid_threshold = c.l2a.sigmoid_threshold;
        s.router_input = router_input_name(c.l2a.router_input);
    }
    return s;
}

Model::Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

const Placement& Model::placement() const { return impl_->placement; }
const ModelConfig& Model::config() const { return impl_->config; }
const ModelSummary& Model::summary() const { return impl_->summary; }
const Tokenizer* Model::tokenizer() const {
    return impl_->tokenizer ? &*impl_->tokenizer : nullptr;
}
const std::vector<std::string>& Model::warnings() const { return impl_->warnings; }

namespace {

// The whole model's config becomes the rank's shard's: its heads and MLP slice.
void divide_for_shard(Model::Impl& impl, const ShardSpec& shard) {
    if (shard.world == 1) return;
    impl.config.num_attention_heads /= shard.world;
    impl.config.num_key_value_heads /= shard.world;
    impl.config.intermediate_size /= shard.world;
    impl.shard_rank = shard.rank;
    impl.shard_world = shard.world;
}

std::shared_ptr<Model::Impl> load_model(const std::filesystem::path& model_dir,
                                        const Placement& placement, const ShardSpec& shard) {
    auto impl = std::make_shared<Model::Impl>();
    place(*impl, placement);
    impl->dir = model_dir;
    // A missing folder, a file, or a folder without config.json: said of the folder.
    impl->config = load_model_config(model_dir / "config.json");
    check_tensor_parallel_split(impl->config, model_dir.string(), shard.rank, shard.world);

    {
        at::NoGradGuard no_grad;
        Checkpoint checkpoint = Checkpoint::open(model_dir);
        CheckpointWeights weights(checkpoint, impl->device, impl->dtype);
        make_on_device(*impl, model_dir.string(), [&] { make_weights(weights, *impl, shard); });
        check_finite(weights, checkpoint, *impl);
        warn_unused(weights, checkpoint, *impl);
        fill_summary(*impl, model_dir.string(), weights.parameters());
        impl->summary.config_hash = config_file_hash(model_dir / "config.json");
        impl->summary.weight_bytes = weight_file_bytes(checkpoint);
    }
    divide_for_shard(*impl, shard);

    const std::filesystem::path tokenizer_json = model_dir / "tokenizer.json";
    std::error_code ec;
    if (std::filesystem::exists(tokenizer_json, ec)) {
        impl->tokenizer.emplace(Tokenizer::from_file(tokenizer_json));
    }
    return impl;
}

std::shared_ptr<Model::Impl> random_model(const ModelConfig& config, std::uint64_t seed,
                                          const Placement& placement, const ShardSpec& shard) {
    auto impl = std::make_shared<Model::Impl>();
    place(*impl, placement);
    const ModelConfig& c = config;
    const std::string name = std::string("random ") + model_type_name(c.model_type) + " model";
    if (c.vocab_size < 1 || c.hidden_size < 1 || c.intermediate_size < 1 ||
        c.num_hidden_layers < 1 || c.num_attention_heads < 1 || c.num_key_value_heads < 1 ||
        c.head_dim < 2 || c.head_dim % 2 != 0 ||
        c.num_attention_heads % c.num_key_value_heads != 0) {
        fail("", name + ": the configuration has an empty or inconsistent shape");
    }
    if (c.is_l2a() && c.l2a.sliding_window < 1)
        fail("", name + ": sliding_window must be at least 1");
    check_tensor_parallel_split(c, name, shard.rank, shard.world);
    impl->config = config;
    impl->config.untrained = true;
    {
        at::NoGradGuard no_grad;
        RandomWeights weights(seed, impl->device, impl->dtype);
        make_on_device(*impl, name, [&] { make_weights(weights, *impl, shard); });
        fill_summary(*impl, name + " (seed " + std::to_string(seed) + ")", weights.parameters());
    }
    divide_for_shard(*impl, shard);
    return impl;
}

}  // namespace

Model Model::load(const std::filesystem::path& model_dir, const Placement& placement) {
    return Model(load_model(model_dir, placement, {}));
}

Model Model::random(const ModelConfig& config, std::uint64_t seed, const Placement& placement) {
    return Model(random_model(config, seed, placement, {}));
}

Model load_model_shard(const std::filesystem::path& model_dir, const Placement& placement, int rank,
                       int world) {
    return Model(load_model(model_dir, placement, {rank, world}));
}

Model random_model_shard(const ModelConfig& config, std::uint64_t seed, const Placement& placement,
                         int rank, int world) {
    return Model(random_model(config, seed, placement, {rank, world}));
}

void check_tensor_parallel_split(const ModelConfig& c, const std::string& where, int rank,
                                 int world) {
    if (world < 1) fail(where, "tensor parallel: " + std::to_string(world) + " ranks");
    if (rank < 0 || rank >= world) {
        fail(where, "tensor parallel: rank " + std::to_string(rank) + " is not in 0.." +
                        std::to_string(world - 1));
    }
    const auto require_divides = [&](std::int64_t n, const char* what) {
        if (n % world != 0) {
            fail(where, "tensor parallel over " + std::to_string(world) + " ranks: " + what + " (" +
                            std::to_string(n) + ") is not a multiple of " + std::to_string(world));
        }
    };
    require_divides(c.num_attention_heads, "num_attention_heads");
    require_divides(c.num_key_value_heads, "num_key_value_heads");
    require_divides(c.intermediate_size, "intermediate_size");
}

}  // namespace l2a
