// Training. The model is re-expressed as plain tensors with gradients (the inference engine's
// weights stay untouched) and run by a short differentiable forward: full-sequence attention
// through LibTorch's scaled_dot_product_attention with a causal or sliding-window mask, since
// training sequences are short enough for it. The objective, estimator and schedules follow the
// L2A recipe (see train.h). Data windows and the dense-global draws come from one counter-based
// generator whose state is saved with the checkpoint, so a resumed run continues exactly.
// This forward is a second definition of the model next to the engine's (prefill.cpp); they
// share the router's logits (router_logits), and test_train checks that both compute the same
// loss and decisions for every model type and router input.
#include "l2a/engine/train.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <numeric>

#include "attention.h"
#include "l2a/engine/atomic_file.h"
#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/model.h"
#include "l2a/engine/rope.h"
#include "l2a/engine/safetensors.h"
#include "l2a/engine/tensor_names.h"
#include "l2a/engine/tokenizer.h"
#include "layer_ops.h"
#include "model_impl.h"
#include "splitmix.h"

namespace l2a {
namespace {

namespace fs = std::filesystem;

// One named parameter in HuggingFace's layout (the router is stored [1, d], kept [d] here).
struct Param {
    std::string name;
    at::Tensor tensor;
    bool trainable = false;
    bool router = false;
};

struct Attn {
    at::Tensor q, k, v, o, qb, kb, vb, ob, qn, kn;
};

struct Layer {
    at::Tensor input_norm, post_norm, gate, up, down, global_norm, router;
    Attn local, global;
};

struct Net {
    ModelConfig config;
    at::Tensor embed, final_norm, lm_head;
    std::vector<Layer> layers;
    std::vector<Param> params;
    RopeTables rope;
};

at::Tensor copy_param(Net& net, const std::string& name, const at::Tensor& source, bool trainable,
                      bool router = false) {
    if (!source.defined()) return {};
    at::Tensor t = source.detach().to(at::kFloat).clone();
    t.set_requires_grad(trainable);
    net.params.push_back({name, t, trainable, router});
    return t;
}

Attn copy_attention(Net& net, const AttentionWeights& w, std::int64_t layer,
                    tensor_names::AttentionSet set, bool trainable) {
    using enum tensor_names::AttentionPart;
    using tensor_names::TensorKind;
    const auto copy = [&](tensor_names::AttentionPart part, TensorKind kind, const at::Tensor& t) {
        return copy_param(net, tensor_names::attention_tensor(layer, set, part, kind), t,
                          trainable);
    };
    Attn a;
    a.q = copy(QProj, TensorKind::Weight, w.q_proj);
    a.k = copy(KProj, TensorKind::Weight, w.k_proj);
    a.v = copy(VProj, TensorKind::Weight, w.v_proj);
    a.o = copy(OProj, TensorKind::Weight, w.o_proj);
    a.qb = copy(QProj, TensorKind::Bias, w.q_bias);
    a.kb = copy(KProj, TensorKind::Bias, w.k_bias);
    a.vb = copy(VProj, TensorKind::Bias, w.v_bias);
    a.ob = copy(OProj, TensorKind::Bias, w.o_bias);
    a.qn = copy(QNorm, TensorKind::Weight, w.q_norm);
    a.kn = copy(KNorm, TensorKind::Weight, w.k_norm);
    return a;
}

Net make_net(const Model& model, bool train_all, bool freeze_global, std::int64_t max_positions) {
    namespace names = tensor_names;
    const Model::Impl& m = model.impl();
    Net net;
    net.config = m.config;
    const ModelConfig& c = net.config;
    net.embed = copy_param(net, std::string(names::kEmbedTokens), m.embed, train_all);
    net.final_norm = copy_param(net, std::string(names::kFinalNorm), m.final_norm, train_all);
    net.lm_head = c.tie_word_embeddings
                      ? net.embed
                      : copy_param(net, std::string(names::kLmHead), m.lm_head, train_all);
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const LayerWeights& w = m.layers[i];
        const auto layer = static_cast<std::int64_t>(i);
        const auto name = [layer](std::string_view tensor) {
            return names::layer_tensor(layer, tensor);
        };
        Layer l;
        l.input_norm = copy_param(net, name(names::kInputNorm), w.input_norm, true);
        l.post_norm = copy_param(net, name(names::kPostAttentionNorm), w.post_norm, true);
        l.gate = copy_param(net, name(names::kMlpGate), w.gate_proj, train_all);
        l.up = copy_param(net, name(names::kMlpUp), w.up_proj, train_all);
        l.down = copy_param(net, name(names::kMlpDown), w.down_proj, train_all);
        l.local = copy_attention(net, w.attn, layer, names::AttentionSet::Local, true);
        l.global_norm =
            copy_param(net, name(names::kGlobalInputNorm), w.global_norm, !freeze_global);
        l.global =
            copy_attention(net, w.global, layer, names::AttentionSet::Global, !freeze_global);
        l.router = copy_param(net, name(names::kRouter), w.router, true, true);
        net.layers.push_back(std::move(l));
    }
    const RopeParams rope = compute_rope(c, max_positions);
    net.rope = make_rope_tables(rope.inv_freq, rope.attention_scaling, max_positions, m.device);
    return net;
}

at::Tensor dense(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {}) {
    return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// Scaled dot-product attention of q, k, v [B, H, T, D] (k and v with H heads already), causal,
// each query seeing at most the `window` latest keys (itself included; window >= T: full causal).
// Full causal goes to LibTorch's fused kernels (FlashAttention / cuDNN on CUDA). The window is
// computed in blocks of `window` queries, each against the 2 * window keys that can reach it, so
// memory grows as T * window, never T * T.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            std::int64_t window) {
    const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    if (window >= T) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    const std::int64_t W = window, blocks = (T + W - 1) / W, padded = blocks * W;
    // Queries padded at the end (their rows are dropped); keys and values also padded with W
    // rows in front, so that block b's keys are rows [b * W, b * W + 2W) of the padded tensor,
    // i.e. positions [(b - 1) * W, (b + 1) * W).
    const at::Tensor qb = at::constant_pad_nd(q, {0, 0, 0, padded - T})
                              .view({B, H, blocks, W, D})
                              .permute({0, 2, 1, 3, 4})
                              .reshape({B * blocks, H, W, D});
    auto key_blocks = [&](const at::Tensor& t) {
        return at::constant_pad_nd(t, {0, 0, W, padded - T})
            .unfold(2, 2 * W, W)       // [B, H, blocks, D, 2W]
            .permute({0, 2, 1, 4, 3})  // [B, blocks, H, 2W, D]
            .reshape({B * blocks, H, 2 * W, D});
    };
    // Query r of a block (position b * W + r) sees key c (position (b - 1) * W + c) when
    // 0 <= r + W - c < W, i.e. r < c <= r + W; in block 0 the first W keys are padding.
    const auto options = at::TensorOptions().dtype(at::kLong).device(q.device());
    const at::Tensor r = at::arange(W, options).unsqueeze(1),
                     c = at::arange(2 * W, options).unsqueeze(0);
    const at::Tensor inside = (c > r) & (c <= r + W);  // [W, 2W]
    at::Tensor mask = inside.unsqueeze(0).repeat({blocks, 1, 1});
    mask.select(0, 0).logical_and_(c >= W);
    mask = mask.unsqueeze(0).expand({B, blocks, W, 2 * W}).reshape({B * blocks, 1, W, 2 * W});
    const at::Tensor out = at::scaled_dot_product_attention(qb, key_blocks(k), key_blocks(v), mask);
    return out.view({B, blocks, H, W, D})
        .permute({0, 2, 1, 3, 4})
        .reshape({B, H, padded, D})
        .narrow(2, 0, T);
}

// The query positions whose distant mass the locality pressure measures ([S] long, the same in
// every sequence of the batch; empty: no pressure) and the window it counts from
// (sample_probe makes one per step).
struct Probe {
    at::Tensor queries;
    std::int64_t window = 0;
    bool on() const { return queries.defined() && queries.numel() > 0; }
};

// The mean over batch, heads and the probe's queries of the softmax mass on keys older than the
// window (keys 0..t-W of query t), as the routing oracle measures it. q, k: [B, H, T, D], k with
// the query heads' count, RoPE applied.
at::Tensor probe_distant_mass(const at::Tensor& q, const at::Tensor& k, const Probe& probe) {
    const at::Tensor t = probe.queries.unsqueeze(1);                                      // [S, 1]
    const at::Tensor keys = at::arange(k.size(2), probe.queries.options()).unsqueeze(0);  // [1, T]
    at::Tensor scores = at::matmul(q.index_select(2, probe.queries), k.transpose(-1, -2))
                            .to(at::kFloat)
                            .mul(1.0 / std::sqrt(static_cast<double>(q.size(3))));  // [B, H, S, T]
    scores = scores.masked_fill(keys > t, -std::numeric_limits<float>::infinity());
    return at::softmax(scores, -1).masked_fill(keys > t - probe.window, 0.0).sum(-1).mean();
}

// x: [B, T, d] -> attention output [B, T, d]. With `probe` on, `distant` receives the probe's
// distant mass of this attention.
at::Tensor attention(const Net& net, const Attn& a, const at::Tensor& x, std::int64_t window,
                     const at::Tensor& positions, const Probe* probe = nullptr,
                     at::Tensor* distant = nullptr) {
    const ModelConfig& c = net.config;
    const std::int64_t B = x.size(0), T = x.size(1), H = c.num_attention_heads,
                       Hkv = c.num_key_value_heads, D = c.head_dim;
    at::Tensor q = dense(x, a.q, a.qb).view({B * T, H, D});
    at::Tensor k = dense(x, a.k, a.kb).view({B * T, Hkv, D});
    at::Tensor v = dense(x, a.v, a.vb).view({B, T, Hkv, D});
    if (a.qn.defined()) {
        q = rms_norm(q, a.qn, c.rms_norm_eps);
        k = rms_norm(k, a.kn, c.rms_norm_eps);
    }
    q = apply_rope(q, net.rope, positions).view({B, T, H, D}).transpose(1, 2);
    k = apply_rope(k, net.rope, positions).view({B, T, Hkv, D}).transpose(1, 2);
    v = v.transpose(1, 2);
    if (Hkv != H) {
        k = k.repeat_interleave(H / Hkv, 1);
        v = v.repeat_interleave(H / Hkv, 1);
    }
    if (probe && probe->on()) *distant = probe_distant_mass(q, k, *probe);
    at::Tensor out = causal_attention(q.to(v.scalar_type()), k.to(v.scalar_type()), v, window);
    return dense(out.transpose(1, 2).reshape({B, T, H * D}), a.o, a.ob);
}

// One decoder layer. For an L2A layer: local attention, router, straight-through decisions,
// global attention (dense or routed rows only), MLP; `sparsity` is the sum over tokens of p^2
// averaged over the batch, `fraction` the share of hard decisions that are 1. For a plain layer
// (a base model being trained): full causal attention and MLP; sparsity and fraction are 0.
// `distant`: the probe's distant mass of the attention a token would run globally (the plain
// layer's attention, the L2A layer's global set); 0 with the probe off.
struct LayerOutput {
    at::Tensor x, sparsity, fraction, distant;
};

LayerOutput layer_forward(const Net& net, std::size_t index, const at::Tensor& x,
                          const at::Tensor& positions, bool dense_global, const Probe& probe) {
    const ModelConfig& c = net.config;
    const Layer& layer = net.layers[index];
    const std::int64_t T = x.size(1);
    const auto zero = [&] { return at::zeros({}, x.options().dtype(at::kFloat)); };
    LayerOutput out;
    out.distant = zero();
    at::Tensor h;
    if (!c.is_l2a()) {
        h = x + attention(net, layer.local,
                          rms_norm(x, layer.input_norm, c.rms_norm_eps).to(x.scalar_type()), T,
                          positions, &probe, &out.distant);
        out.sparsity = zero();
        out.fraction = zero();
    } else {
        const double tau = c.l2a.sigmoid_temp;
        const double cut = decision_cut(c.l2a);
        h = x + attention(net, layer.local,
                          rms_norm(x, layer.input_norm, c.rms_norm_eps).to(x.scalar_type()),
                          c.l2a.sliding_window, positions);
        at::Tensor u = rms_norm(h, layer.global_norm, c.rms_norm_eps).to(h.scalar_type());
        at::Tensor z = router_logits(u, layer.router, c.l2a.router_input);  // [B, T]
        at::Tensor p = at::sigmoid(z / tau);
        at::Tensor hard = (z >= cut).to(at::kFloat);
        at::Tensor d = hard + p - p.detach();  // straight-through: forward hard, gradient of p
        at::Tensor a = attention(net, layer.global, u, T, positions, &probe, &out.distant);
        // Without the dense draw, unrouted rows of the global attention are never computed,
        // so they carry no router gradient (as in the routed-only inference).
        if (!dense_global) a = a * hard.unsqueeze(-1).to(a.scalar_type());
        h = h + d.unsqueeze(-1).to(a.scalar_type()) * a;
        out.sparsity = (p * p).sum(1).mean();  // per sequence: sum over tokens, then mean
        out.fraction = hard.mean().detach();
    }
    at::Tensor n = rms_norm(h, layer.post_norm, c.rms_norm_eps).to(h.scalar_type());
    out.x = h + dense(at::silu(dense(n, layer.gate)) * dense(n, layer.up), layer.down);
    return out;
}

void set_autocast(bool on) {
    at::autocast::set_autocast_enabled(at::kCUDA, on);
    if (on) {
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    } else {
        at::autocast::clear_cache();
    }
}

// Gradient checkpointing of one layer: the forward keeps only the layer's input; the backward
// runs the layer again with gradients on and back-propagates through it, which accumulates the
// weights' gradients and returns the input's. The layer is deterministic for given inputs (the
// dense draw is an argument), so the recomputation equals the original.
class CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
public:
    static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                  const at::Tensor& x, const at::Tensor& positions,
                                                  const Net* net, std::int64_t index,
                                                  bool dense_global, bool autocast,
                                                  const at::Tensor& probe_queries,
                                                  std::int64_t probe_window) {
        ctx->save_for_backward({x, positions, probe_queries});
        ctx->saved_data["net"] = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(net));
        ctx->saved_data["index"] = index;
        ctx->saved_data["dense"] = dense_global;
        ctx->saved_data["autocast"] = autocast;
        ctx->saved_data["probe_window"] = probe_window;
        LayerOutput out = layer_forward(*net, static_cast<std::size_t>(index), x, positions,
                                        dense_global, Probe{probe_queries, probe_window});
        ctx->mark_non_differentiable({out.fraction});
        return {out.x, out.sparsity, out.fraction, out.distant};
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto* net = reinterpret_cast<const Net*>(
            static_cast<std::intptr_t>(ctx->saved_data["net"].toInt()));
        const bool autocast = ctx->saved_data["autocast"].toBool();
        at::Tensor x = saved[0].detach().set_requires_grad(true);
        {
            at::AutoGradMode enable(true);
            // The backward may run on another thread: autocast is per thread.
            if (autocast) set_autocast(true);
            LayerOutput out =
                layer_forward(*net, static_cast<std::size_t>(ctx->saved_data["index"].toInt()), x,
                              saved[1], ctx->saved_data["dense"].toBool(),
                              Probe{saved[2], ctx->saved_data["probe_window"].toInt()});
            if (autocast) set_autocast(false);
            std::vector<at::Tensor> outputs{out.x}, output_grads{grads[0]};
            if (out.sparsity.requires_grad() && grads[1].defined()) {
                outputs.push_back(out.sparsity);
                output_grads.push_back(grads[1]);
            }
            if (out.distant.requires_grad() && grads[3].defined()) {
                outputs.push_back(out.distant);
                output_grads.push_back(grads[3]);
            }
            torch::autograd::backward(outputs, output_grads);
        }
        return {x.grad(), {}, {}, {}, {}, {}, {}, {}};
    }
};

struct Forward {
    at::Tensor loss, cross_entropy, sparsity, distant;
    std::vector<double> global_fraction;  // empty for a plain model
};

// `layer_factors`: lambda's factor per layer ([layers], on the device), or undefined for 1 each.
// With `probe` on, the loss has `locality` times the mean over layers of the probe's distant mass.
Forward forward(const Net& net, const at::Tensor& inputs, const at::Tensor& targets, double lambda,
                const at::Tensor& layer_factors, const std::vector<bool>& dense_global,
                const Probe& probe, double locality, bool checkpointing, bool autocast) {
    const ModelConfig& c = net.config;
    const std::int64_t B = inputs.size(0), T = inputs.size(1);
    const auto device = inputs.device();
    const at::Tensor pos =
        at::arange(T, at::TensorOptions().dtype(at::kLong).device(device)).repeat({B});

    Forward f;
    at::Tensor x = at::embedding(net.embed, inputs);
    // A checkpointed layer passes gradients on only when its input needs them (frozen
    // embeddings: it would not).
    if (checkpointing && !x.requires_grad()) x = x.detach().set_requires_grad(true);
    std::vector<at::Tensor> sparsity, fraction, distant;
    for (std::size_t l = 0; l < net.layers.size(); ++l) {
        LayerOutput out;
        if (checkpointing) {
            auto outputs = CheckpointedLayer::apply(x, pos, &net, static_cast<std::int64_t>(l),
                                                    static_cast<bool>(dense_global[l]), autocast,
                                                    probe.queries, probe.window);
            out = {outputs[0], outputs[1], outputs[2], outputs[3]};
        } else {
            out = layer_forward(net, l, x, pos, dense_global[l], probe);
        }
        x = out.x;
        sparsity.push_back(out.sparsity);
        fraction.push_back(out.fraction);
        distant.push_back(out.distant);
    }
    at::Tensor logits =
        dense(rms_norm(x, net.final_norm, c.rms_norm_eps).to(x.scalar_type()), net.lm_head);
    f.cross_entropy =
        at::cross_entropy_loss(logits.to(at::kFloat).view({B * T, -1}), targets.view({B * T}));
    const at::Tensor per_layer = at::stack(sparsity);
    f.sparsity = per_layer.mean();
    f.loss = f.cross_entropy +
             lambda * (layer_factors.defined()
                           ? (per_layer * layer_factors.to(per_layer.scalar_type())).mean()
                           : f.sparsity);
    f.distant = at::stack(distant).mean();
    if (probe.on()) f.loss = f.loss + locality * f.distant;
    if (c.is_l2a()) {
        const at::Tensor fractions = at::stack(fraction).to(at::kCPU, at::kDouble).contiguous();
        f.global_fraction.assign(fractions.data_ptr<double>(),
                                 fractions.data_ptr<double>() + fractions.numel());
    }
    return f;
}

// The locality pressure's query positions for one step (`o.locality_window` resolved): at or
// after the window (earlier ones have no key older than it), drawn uniformly with replacement,
// or all of them when there are no more; none without pressure (and no draw from `rng`).
Probe sample_probe(const TrainOptions& o, std::uint64_t& rng, const at::Device& device) {
    std::vector<std::int64_t> queries;
    if (o.locality > 0) {
        const std::int64_t first = o.locality_window, count = o.seq_len - first;
        if (o.locality_queries >= count) {
            queries.resize(static_cast<std::size_t>(count));
            std::iota(queries.begin(), queries.end(), first);
        } else {
            for (std::int64_t i = 0; i < o.locality_queries; ++i) {
                queries.push_back(first + static_cast<std::int64_t>(
                                              splitmix64(rng) % static_cast<std::uint64_t>(count)));
            }
        }
    }
    return {at::tensor(queries, at::TensorOptions().dtype(at::kLong)).to(device),
            o.locality_window};
}

// ---- data ------------------------------------------------------------------------------------

std::vector<std::int32_t> load_tokens(const fs::path& dir, const Tokenizer& tokenizer) {
    if (!fs::is_directory(dir)) fail(dir.string(), "not a folder of .txt documents");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() == ".txt") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) fail(dir.string(), "holds no .txt documents");
    std::vector<std::int32_t> ids;
    const auto eot = tokenizer.token_to_id("<|endoftext|>");
    for (const fs::path& f : files) {
        const Encoding e = tokenizer.encode(load_document(f).text);
        ids.insert(ids.end(), e.ids.begin(), e.ids.end());
        if (eot) ids.push_back(*eot);
    }
    return ids;
}

// ---- checkpoints -----------------------------------------------------------------------------

void save_model(const Net& net, const fs::path& dir, const fs::path& tokenizer_json) {
    fs::create_directories(dir);
    ModelConfig c = net.config;
    c.untrained = false;
    write_text_atomically(dir / "config.json", model_config_to_json(c));
    if (!tokenizer_json.empty() && fs::exists(tokenizer_json)) {
        fs::copy_file(tokenizer_json, dir / "tokenizer.json", fs::copy_options::overwrite_existing);
    }
    SafetensorsWriter writer(dir / "model.safetensors");
    writer.set_metadata("format", "pt");
    for (const Param& p : net.params) {
        std::vector<std::int64_t> shape(p.tensor.sizes().begin(), p.tensor.sizes().end());
        if (p.router) shape = {1, shape.front()};
        writer.declare(p.name, DType::F32, shape);
    }
    for (const Param& p : net.params) {
        const at::Tensor t = p.tensor.detach().to(at::kCPU).contiguous();
        writer.write(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()) * sizeof(float));
    }
    writer.finish();
}

nlohmann::json options_json(const TrainOptions& o) {
    nlohmann::json j = {{"train_all", o.train_all},
                        {"freeze_global", o.freeze_global},
                        {"batch", o.batch},
                        {"seq_len", o.seq_len},
                        {"lr", o.lr},
                        {"warmup", o.warmup},
                        {"steps", o.steps},
                        {"lambda", o.lambda},
                        {"lambda_ramp_steps", o.lambda_ramp_steps},
                        {"dense_prob", o.dense_prob},
                        {"seed", o.seed},
                        {"weight_decay", o.weight_decay},
                        {"weight_decay_on", "matrices"},
                        {"min_lr_ratio", o.min_lr_ratio},
                        {"grad_clip", o.grad_clip},
                        {"router_lr_scale", o.router_lr_scale},
                        {"router_freeze_steps", o.router_freeze_steps}};
    // Only when given, so that checkpoints written before the option existed still resume.
    if (!o.layer_lambda.empty()) j["layer_lambda"] = o.layer_lambda;
    if (o.locality > 0) {
        j["locality"] = o.locality;
        j["locality_window"] = o.locality_window;
        j["locality_queries"] = o.locality_queries;
    }
    return j;
}

// Weight decay applies to the matrices (projections, MLP, embeddings) only, as is usual for
// transformers; one-dimensional tensors (RMSNorm gains, biases) keep their scale.
bool decays_weight(const at::Tensor& t) { return t.dim() >= 2; }

double lr_at(const TrainOptions& o, std::int64_t step) {  // step: 1-based
    if (step <= o.warmup)
        return o.lr * static_cast<double>(step) /
               static_cast<double>(std::max<std::int64_t>(1, o.warmup));
    const double progress = static_cast<double>(step - o.warmup) /
                            static_cast<double>(std::max<std::int64_t>(1, o.steps - o.warmup));
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(1.0, progress)));
    return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

// 0 until the end of the warm-up (and of the router freeze), then a linear ramp.
double lambda_at(const TrainOptions& o, std::int64_t step) {
    const std::int64_t start = std::max(o.warmup, o.router_freeze_steps);
    if (step <= start) return 0.0;
    const std::int64_t ramp =
        o.lambda_ramp_steps > 0 ? o.lambda_ramp_steps : std::max<std::int64_t>(1, o.steps - start);
    return o.lambda * std::min(1.0, static_cast<double>(step - start) / static_cast<double>(ramp));
}

}  // namespace

TrainResult train(const TrainOptions& o, const std::function<void(const TrainStepLog&)>& progress,
                  const std::atomic<bool>* cancel) {
    if (o.steps < 1 || o.batch < 1 || o.seq_len < 2)
        fail("train", "--steps, --batch must be positive and --seq-len at least 2");
    if (!(o.lr > 0)) fail("--lr", "must be positive");
    if (!(o.lambda >= 0)) fail("--lambda", "must not be negative");
    for (double f : o.layer_lambda) {
        if (!(f >= 0) || !std::isfinite(f))
            fail("--lambda-layers", "every factor must be a finite number, 0 or more");
    }
    if (!(o.dense_prob >= 0 && o.dense_prob <= 1)) fail("--dense-prob", "must be within 0..1");
    if (!(o.locality >= 0) || !std::isfinite(o.locality))
        fail("--locality", "must be a finite number, 0 or more");
    if (o.locality_window < 0) fail("--locality-window", "must not be negative");
    if (o.locality_queries < 1) fail("--locality-queries", "must be at least 1");
    if (o.out_dir.empty()) fail("--out", "give the checkpoint folder");
    const fs::path last = o.out_dir / "last";

    Placement placement;
    placement.device = o.device;
    placement.dtype = "fp32";
    fs::path model_source = o.resume ? last : o.model_dir;
    std::optional<Model> model;
    fs::path tokenizer_json;
    if (!model_source.empty()) {
        model.emplace(Model::load(model_source, placement));
        tokenizer_json = model_source / "tokenizer.json";
    } else if (o.init_config) {
        model.emplace(Model::random(*o.init_config, o.seed, placement));
        tokenizer_json = o.tokenizer_json;
    } else {
        fail("train", "give --model DIR, or a configuration to start from random weights");
    }
    // Before the data are read: a wrong combination fails at once.
    if (o.freeze_global && (o.train_all || !model->summary().is_l2a)) {
        fail("train", o.train_all ? "the global attention set can only stay fixed when the FFN "
                                    "and embeddings do too (--train local, not all)"
                                  : "--train local needs an L2A model (l2a construct makes one)");
    }
    if (!o.layer_lambda.empty()) {
        const ModelSummary& m = model->summary();
        if (!m.is_l2a) fail("--lambda-layers", "a plain model has no routers");
        if (static_cast<std::int64_t>(o.layer_lambda.size()) != m.num_layers) {
            fail("--lambda-layers", "gives " + std::to_string(o.layer_lambda.size()) +
                                        " factors; the model has " + std::to_string(m.num_layers) +
                                        " layers");
        }
    }
    TrainOptions options = o;  // with the locality window resolved
    if (o.locality > 0) {
        const ModelSummary& m = model->summary();
        if (o.freeze_global) {
            fail("--locality",
                 "presses on the global attention set, which --train local keeps "
                 "fixed: train the base with it, or --train attention");
        }
        if (options.locality_window == 0) {
            if (!m.is_l2a) {
                fail("--locality-window",
                     "a plain model has no sliding window: give the window "
                     "the distant mass counts from");
            }
            options.locality_window = model->impl().config.l2a.sliding_window;
        }
        if (options.locality_window >= o.seq_len) {
            fail(o.locality_window > 0 ? "--locality-window" : "--locality",
                 (o.locality_window > 0 ? "" : "the model's window, ") +
                     std::to_string(options.locality_window) +
                     ", leaves no key older than the window in a sequence of " +
                     std::to_string(o.seq_len) + " tokens (--seq-len)");
        }
    }
    std::optional<Tokenizer> tokenizer;
    if (model->tokenizer()) {
        tokenizer.emplace(Tokenizer::from_file(tokenizer_json));
    } else if (!tokenizer_json.empty() && fs::exists(tokenizer_json)) {
        tokenizer.emplace(Tokenizer::from_file(tokenizer_json));
    } else {
        fail("train", "no tokenizer.json: give the model folder one, or --tokenizer FILE");
    }
    const std::vector<std::int32_t> data = load_tokens(o.data_dir, *tokenizer);
    if (static_cast<std::int64_t>(data.size()) < o.seq_len + 2) {
        fail(o.data_dir.string(), "holds " + std::to_string(data.size()) +
                                      " tokens, fewer than one training window of " +
                                      std::to_string(o.seq_len + 1));
    }

    Net net = make_net(*model, o.train_all, o.freeze_global, o.seq_len);
    const at::Device device = model->impl().device;
    std::vector<at::Tensor> trainable, matrices, gains, routers;
    TrainResult result;
    for (const Param& p : net.params) {
        if (p.name == tensor_names::kLmHead && net.config.tie_word_embeddings) continue;
        result.parameters += p.tensor.numel();
        if (p.trainable) {
            trainable.push_back(p.tensor);
            (p.router ? routers : decays_weight(p.tensor) ? matrices : gains).push_back(p.tensor);
            result.trainable_parameters += p.tensor.numel();
        }
    }
    // Up to three groups: the matrices with weight decay; the norm gains and biases without it
    // (decay would pull every RMSNorm gain toward zero, and the query and key norms' gains bound
    // how sharp attention can be: with QK-norm no logit exceeds sqrt(head_dim) * |g_q| * |g_k|);
    // the routers, with their own learning rate (0 during router_freeze_steps).
    const auto adamw =
        torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay).betas({0.9, 0.95});
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(matrices, std::make_unique<torch::optim::AdamWOptions>(adamw));
    if (!gains.empty()) {
        auto no_decay = std::make_unique<torch::optim::AdamWOptions>(adamw);
        no_decay->weight_decay(0.0);
        groups.emplace_back(gains, std::move(no_decay));
    }
    const std::size_t router_group = groups.size();
    if (!routers.empty())
        groups.emplace_back(routers, std::make_unique<torch::optim::AdamWOptions>(adamw));
    torch::optim::AdamW optimizer(std::move(groups), adamw);

    std::int64_t step = 0;
    std::uint64_t rng = o.seed * 0xD1B54A32D192ED03ull + 7;
    if (o.resume) {
        const fs::path state_path = last / "train_state.json";
        nlohmann::json state;
        try {
            state = nlohmann::json::parse(read_text_file(state_path));
            step = state.at("step").get<std::int64_t>();
            rng = state.at("rng").get<std::uint64_t>();
            if (state.at("options") != options_json(options)) {
                fail(state_path.string(),
                     "was written with other options: " + state.at("options").dump());
            }
        } catch (const nlohmann::json::exception& e) {
            fail(state_path.string(), describe_json_error(e.what()));
        }
        torch::load(optimizer, (last / "optimizer.pt").string());
    }
    fs::create_directories(o.out_dir);
    const fs::path log_path = o.log_csv.empty() ? o.out_dir / "train.csv" : o.log_csv;
    std::ofstream log(log_path, o.resume ? std::ios::app : std::ios::trunc);
    if (!log) fail(log_path.string(), "cannot open for writing");
    if (!o.resume) {
        log << "step,loss,cross_entropy,sparsity,lambda,lr,tokens_per_second";
        if (o.locality > 0) log << ",distant_mass";
        if (net.config.is_l2a()) {
            for (std::size_t l = 0; l < net.layers.size(); ++l) log << ",global_fraction_" << l;
        }
        log << "\n";
    }

    auto save = [&](const fs::path& dir) {
        const fs::path temp = dir.parent_path() / ("." + dir.filename().string() + ".tmp");
        fs::remove_all(temp);
        save_model(net, temp, tokenizer_json);
        torch::save(optimizer, (temp / "optimizer.pt").string());
        write_text_atomically(
            temp / "train_state.json",
            nlohmann::json{{"step", step}, {"rng", rng}, {"options", options_json(options)}}.dump(
                2) +
                "\n");
        fs::remove_all(dir);
        fs::rename(temp, dir);
    };

    const bool autocast = o.bf16_autocast && device.is_cuda();
    const at::Tensor layer_factors =
        o.layer_lambda.empty() ? at::Tensor()
                               : at::tensor(o.layer_lambda, at::TensorOptions().dtype(at::kDouble))
                                     .to(device, at::kFloat);
    while (step < o.steps) {
        if (cancel && *cancel) break;
        const auto t0 = std::chrono::steady_clock::now();
        ++step;
        // A plain model has no routers and no sparsity term: its log says lambda 0 whatever
        // --lambda was.
        const double lr = lr_at(o, step);
        const double lambda = net.config.is_l2a() ? lambda_at(o, step) : 0.0;
        const double router_lr = step > o.router_freeze_steps ? lr * o.router_lr_scale : 0.0;
        for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g) {
            static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups()[g].options())
                .lr(g == router_group ? router_lr : lr);
        }
        // The batch: random windows of the token stream, and the dense-global draws.
        std::vector<std::int64_t> window(static_cast<std::size_t>(o.batch * (o.seq_len + 1)));
        const auto span =
            static_cast<std::uint64_t>(data.size() - static_cast<std::size_t>(o.seq_len) - 1);
        for (std::int64_t b = 0; b < o.batch; ++b) {
            const std::size_t start = static_cast<std::size_t>(splitmix64(rng) % span);
            for (std::int64_t t = 0; t <= o.seq_len; ++t) {
                window[static_cast<std::size_t>(b * (o.seq_len + 1) + t)] =
                    data[start + static_cast<std::size_t>(t)];
            }
        }
        std::vector<bool> dense_global(net.layers.size());
        for (std::size_t l = 0; l < dense_global.size(); ++l) {
            dense_global[l] = static_cast<double>(splitmix64(rng) >> 11) * 0x1.0p-53 < o.dense_prob;
        }
        const Probe probe = sample_probe(options, rng, device);
        const at::Tensor tokens =
            at::from_blob(window.data(), {o.batch, o.seq_len + 1}, at::kLong).to(device);
        const at::Tensor inputs = tokens.narrow(1, 0, o.seq_len);
        const at::Tensor targets = tokens.narrow(1, 1, o.seq_len).contiguous();

        optimizer.zero_grad();
        if (autocast) set_autocast(true);
        Forward f = forward(net, inputs, targets, lambda, layer_factors, dense_global, probe,
                            o.locality, o.gradient_checkpointing, autocast);
        if (autocast) set_autocast(false);
        f.loss.backward();
        if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(trainable, o.grad_clip);
        optimizer.step();

        TrainStepLog entry;
        entry.step = step;
        entry.loss = f.loss.item<double>();
        entry.cross_entropy = f.cross_entropy.item<double>();
        entry.sparsity = f.sparsity.item<double>() / static_cast<double>(o.seq_len);
        entry.distant_mass = f.distant.item<double>();
        entry.lambda = lambda;
        entry.lr = lr;
        entry.global_fraction = f.global_fraction;
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        entry.tokens_per_second =
            static_cast<double>(o.batch * o.seq_len) / std::max(seconds, 1e-9);
        if (!std::isfinite(entry.loss))
            fail("train",
                 "the loss is not finite at step " + std::to_string(step) + " (lower --lr)");
        log << entry.step << "," << entry.loss << "," << entry.cross_entropy << ","
            << entry.sparsity << "," << entry.lambda << "," << entry.lr << ","
            << entry.tokens_per_second;
        if (o.locality > 0) log << "," << entry.distant_mass;
        for (double g : entry.global_fraction) log << "," << g;
        log << "\n";
        log.flush();
        result.steps.push_back(entry);
        if (progress) progress(entry);
        if (o.save_every > 0 && step % o.save_every == 0 && step < o.steps) {
            save(last);
            save(o.out_dir / ("step-" + std::to_string(step)));
        }
    }
    save(last);
    result.last_checkpoint = last;
    return result;
}

}  // namespace l2a
