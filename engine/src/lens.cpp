#include "l2a/engine/lens.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>

#include "attention.h"
#include "hidden_state.h"
#include "l2a/engine/error.h"
#include "layer_ops.h"
#include "lens_math.h"
#include "model_impl.h"

namespace l2a {

at::Tensor attention_weights_of(const at::Tensor& q, const at::Tensor& k) {
    const std::int64_t hq = q.size(0);
    const std::int64_t dim = q.size(1);
    const std::int64_t n = k.size(0);
    const std::int64_t hkv = k.size(1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    const at::Tensor qg = (q.to(at::kFloat) * scale).reshape({hkv, hq / hkv, dim});
    const at::Tensor kt = k.to(at::kFloat).permute({1, 2, 0});  // [Hkv, D, n]
    return at::softmax(at::bmm(qg, kt).reshape({hq, n}), -1);
}

at::Tensor distant_mass_of(const at::Tensor& q_rows, const at::Tensor& k_rows, std::int64_t window,
                           std::int64_t query_block, std::int64_t key_block) {
    const std::int64_t T = q_rows.size(0);
    const std::int64_t hq = q_rows.size(1);
    const std::int64_t dim = q_rows.size(2);
    const std::int64_t hkv = k_rows.size(1);
    const std::int64_t group = hq / hkv;
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    const float neg_inf = -std::numeric_limits<float>::infinity();

    // Head-major fp32, the `group` query heads that share a key head side by side as rows.
    const at::Tensor q =
        (q_rows.to(at::kFloat) * scale).permute({1, 0, 2}).reshape({hkv, group, T, dim});
    const at::Tensor kt = k_rows.to(at::kFloat).permute({1, 2, 0}).contiguous();  // [Hkv, D, T]
    const at::TensorOptions f32 = q.options();
    const at::TensorOptions i64 = f32.dtype(at::kLong);
    at::Tensor out = at::zeros({T, hq}, f32);

    for (std::int64_t q0 = 0; q0 < T; q0 += query_block) {
        const std::int64_t qn = std::min(query_block, T - q0);
        const std::int64_t first = q0;
        const std::int64_t last = q0 + qn - 1;
        if (last < window) continue;  // every query of the block sees only its window: 0
        const at::Tensor qc = q.narrow(2, q0, qn).reshape({hkv, group * qn, dim});
        const at::Tensor qpos = at::arange(first, last + 1, i64).view({qn, 1});

        // One maximum for both sums: their ratio is the share, and key 0 (in the first key
        // block, allowed for every query) makes the maximum finite from the first block on.
        at::Tensor row_max = at::full({hkv, group * qn, 1}, neg_inf, f32);
        at::Tensor sum_all = at::zeros({hkv, group * qn, 1}, f32);
        at::Tensor sum_old = at::zeros({hkv, group * qn, 1}, f32);
        for (std::int64_t k0 = 0; k0 <= last; k0 += key_block) {
            const std::int64_t kn = std::min(key_block, last + 1 - k0);
            const std::int64_t k_last = k0 + kn - 1;
            const at::Tensor kpos = at::arange(k0, k_last + 1, i64).view({1, kn});
            at::Tensor scores = at::bmm(qc, kt.narrow(2, k0, kn));  // [Hkv, group * qn, kn]
            if (k_last > first) {                                   // some key after some query
                scores = scores.view({hkv, group, qn, kn})
                             .masked_fill(kpos > qpos, neg_inf)
                             .view({hkv, group * qn, kn});
            }
            const at::Tensor new_max =
                at::maximum(row_max, std::get<0>(scores.max(-1, /*keepdim=*/true)));
            const at::Tensor p = at::exp(scores - new_max);
            const at::Tensor correction = at::exp(row_max - new_max);
            sum_all = sum_all * correction + p.sum(-1, /*keepdim=*/true);
            sum_old = sum_old * correction;
            if (k0 <= last - window) {  // some key older than some query's window
                if (k_last <= first - window) {
                    sum_old += p.sum(-1, /*keepdim=*/true);
                } else {
                    sum_old += p.view({hkv, group, qn, kn})
                                   .masked_fill(kpos > qpos - window, 0.0)
                                   .view({hkv, group * qn, kn})
                                   .sum(-1, /*keepdim=*/true);
                }
            }
            row_max = new_max;
        }
        const at::Tensor mass = (sum_old / sum_all).view({hq, qn});
        out.narrow(0, q0, qn).copy_(mass.t());
    }
    return out;
}

namespace {

// Query rows per block, as a run's default --chunk.
constexpr std::int64_t kQueryBlock = 256;

// The checks both entry points share, before any arithmetic.
void validate(const Model& model, std::size_t values, std::int64_t num_tokens, int layer) {
    const ModelConfig& c = model.config();
    const std::string name = "layer " + std::to_string(layer);
    if (layer < 0 || layer >= c.num_hidden_layers) {
        fail("", name + ": the model has " + std::to_string(c.num_hidden_layers) + " layers (0-" +
                     std::to_string(c.num_hidden_layers - 1) + ")");
    }
    if (!c.is_l2a()) {
        fail("", name + " has no global attention: the model is a plain " +
                     model_type_name(c.model_type) + " model");
    }
    if (num_tokens < 1) fail("", "the state entering " + name + " has no tokens");
    const auto expected = static_cast<std::size_t>(num_tokens * c.hidden_size);
    if (values != expected) {
        fail("", "the state entering " + name + " has " + std::to_string(values) +
                     " values, expected " + std::to_string(num_tokens) + " tokens x " +
                     std::to_string(c.hidden_size));
    }
}

// The normalized inputs of a layer's two attention sets over its first rows, as the forward
// computes them: xn = RMSNorm_in(x) (local) and u = RMSNorm_global(x + SWA(xn)) (global).
struct AttentionInputs {
    at::Tensor xn;
    at::Tensor u;
};

// From the residual stream `state` [rows, hidden] on the model's device, which stays unchanged.
AttentionInputs attention_inputs(const Model::Impl& m, const LayerOps& ops, const LayerWeights& w,
                                 const at::Tensor& state) {
    // A copy: the layer adds the local attention to x in place.
    at::Tensor x = state.to(m.dtype, /*non_blocking=*/false, /*copy=*/true);
    AttentionInputs out;
    out.xn = ops.norm(x, w.input_norm);
    at::Tensor local = ops.causal_attention(w.attn, out.xn, m.config.l2a.sliding_window);
    out.u = ops.add_norm_router(x, std::move(local), w).u;
    return out;
}

// The first `rows` rows of fp32 host state, on the model's device.
at::Tensor device_state(const Model::Impl& m, std::span<const float> hidden, std::int64_t rows) {
    at::Tensor host =
        at::empty({rows, m.config.hidden_size}, at::TensorOptions().dtype(at::kFloat));
    std::copy_n(hidden.begin(), rows * m.config.hidden_size, host.data_ptr<float>());
    return host.to(m.device);
}

// The first `rows` rows of a kept state as fp32 on the model's device (no host round trip when
// the state is there already).
at::Tensor kept_rows(const Model::Impl& m, const HiddenState& state, std::int64_t rows) {
    return state_tensor(state)
        .view({-1, m.config.hidden_size})
        .narrow(0, 0, rows)
        .to(m.device)
        .to(at::kFloat);
}

// Whether the project's attention kernels take this model's tensors: a CUDA model in bf16 or
// fp16 with a head size the kernels have (64 or 128), in a build with the CUDA engine path.
[[maybe_unused]] bool kernels_apply(const Model::Impl& m) {
#if L2A_ENGINE_CUDA
    const std::int64_t dim = m.config.head_dim;
    return m.device.is_cuda() && (m.dtype == at::kBFloat16 || m.dtype == at::kHalf) &&
           (dim == 64 || dim == 128);
#else
    (void)m;
    return false;
#endif
}

// The unfused operations over positions 0..rows-1 of a run of `sequence_length` tokens:
// attention through the kernels where they apply, else the blocked fp32 reference.
std::unique_ptr<LayerOps> lens_ops(const Model::Impl& m, const SequenceRows& rows) {
    AttentionBackend attend = &reference_attention;
#if L2A_ENGINE_CUDA
    if (kernels_apply(m)) attend = &kernels_attention;
#endif
    return make_layer_ops(layer_ops_settings(m, attend, kQueryBlock, rows, [] {}),
                          /*fused=*/false);
}

template <typename T>
std::vector<T> to_host(const at::Tensor& t) {
    const at::Tensor host = t.to(at::kCPU).contiguous();
    return std::vector<T>(host.data_ptr<T>(), host.data_ptr<T>() + host.numel());
}

[[noreturn]] void libtorch_failed(const c10::Error& e, const std::string& what) {
    const std::string text = e.what_without_backtrace();
    fail("", "LibTorch failed while computing " + what + ": " + text.substr(0, text.find('\n')));
}

// The lens with the state's first rows from `state_rows(rows)` (fp32 on the model's device).
AttentionLens lens_of(const Model& model, const std::function<at::Tensor(std::int64_t)>& state_rows,
                      std::size_t values, std::int64_t num_tokens, int layer, std::int64_t token) {
    validate(model, values, num_tokens, layer);
    if (token < 0 || token >= num_tokens) {
        fail("", "token " + std::to_string(token) + " is outside the state entering layer " +
                     std::to_string(layer) + " (tokens 0-" + std::to_string(num_tokens - 1) + ")");
    }
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const LayerWeights& w = m.layers[static_cast<std::size_t>(layer)];
    const std::int64_t window = c.l2a.sliding_window;
    const std::int64_t heads = c.num_attention_heads;
    const std::int64_t kv_heads = c.num_key_value_heads;
    const std::int64_t rows = token + 1;

    AttentionLens lens;
    lens.token = token;
    lens.layer = layer;
    lens.window = window;
    lens.heads = heads;
    at::InferenceMode inference;
    try {
        const SequenceRows sequence(c, rows, num_tokens, m.device);
        const std::unique_ptr<LayerOps> ops = lens_ops(m, sequence);
        const AttentionInputs in = attention_inputs(m, *ops, w, state_rows(rows));
        const std::vector<std::int64_t> query_position{token};
        const QueryRows query = ops->routed_rows(query_position);

        const at::Tensor q = ops->project(in.u.narrow(0, token, 1), w.global.q_proj,
                                          w.global.q_bias, w.global.q_norm, heads, &query);
        const at::Tensor k = ops->project(in.u, w.global.k_proj, w.global.k_bias, w.global.k_norm,
                                          kv_heads, &sequence.every_row);
        const at::Tensor weights = attention_weights_of(q.select(0, 0), k);  // [H, rows]
        lens.weights = to_host<float>(weights);
        lens.mean_weights = to_host<float>(weights.mean(0));

        const std::int64_t first = std::max<std::int64_t>(0, token - window + 1);
        std::vector<std::int64_t> window_positions(static_cast<std::size_t>(rows - first));
        std::iota(window_positions.begin(), window_positions.end(), first);
        const QueryRows window_rows = ops->routed_rows(window_positions);
        const at::Tensor q_local = ops->project(in.xn.narrow(0, token, 1), w.attn.q_proj,
                                                w.attn.q_bias, w.attn.q_norm, heads, &query);
        const at::Tensor k_local =
            ops->project(in.xn.narrow(0, first, rows - first), w.attn.k_proj, w.attn.k_bias,
                         w.attn.k_norm, kv_heads, &window_rows);
        lens.local_weights = to_host<float>(attention_weights_of(q_local.select(0, 0), k_local));
    } catch (const c10::Error& e) {
        libtorch_failed(e, "the attention lens of token " + std::to_string(token) + " in layer " +
                               std::to_string(layer));
    }

    // Keys 0..token-window are older than the window.
    const std::int64_t old = std::max<std::int64_t>(0, token - window + 1);
    lens.head_distant_mass.assign(static_cast<std::size_t>(heads), 0.0);
    for (std::int64_t h = 0; h < heads; ++h) {
        const float* row = lens.weights.data() + h * rows;
        lens.head_distant_mass[static_cast<std::size_t>(h)] = std::accumulate(row, row + old, 0.0);
    }
    lens.distant_mass =
        std::accumulate(lens.head_distant_mass.begin(), lens.head_distant_mass.end(), 0.0) /
        static_cast<double>(heads);
    return lens;
}

// The distant mass of every token with the whole state from `state_rows` (as lens_of).
std::vector<float> distant_mass_of(const Model& model,
                                   const std::function<at::Tensor(std::int64_t)>& state_rows,
                                   std::size_t values, std::int64_t num_tokens, int layer) {
    validate(model, values, num_tokens, layer);
    at::InferenceMode inference;
    at::Tensor state;
    try {
        state = state_rows(num_tokens);
    } catch (const c10::Error& e) {
        libtorch_failed(e, "the distant mass of layer " + std::to_string(layer));
    }
    return layer_distant_mass(model, state, layer);
}

}  // namespace

AttentionLens attention_lens(const Model& model, std::span<const float> hidden_entering,
                             std::int64_t num_tokens, int layer, std::int64_t token) {
    return lens_of(
        model, [&](std::int64_t rows) { return device_state(model.impl(), hidden_entering, rows); },
        hidden_entering.size(), num_tokens, layer, token);
}

AttentionLens attention_lens(const Model& model, const HiddenState& hidden_entering,
                             std::int64_t num_tokens, int layer, std::int64_t token) {
    return lens_of(
        model, [&](std::int64_t rows) { return kept_rows(model.impl(), hidden_entering, rows); },
        hidden_entering.size(), num_tokens, layer, token);
}

std::vector<float> distant_mass(const Model& model, std::span<const float> hidden_entering,
                                std::int64_t num_tokens, int layer) {
    return distant_mass_of(
        model, [&](std::int64_t rows) { return device_state(model.impl(), hidden_entering, rows); },
        hidden_entering.size(), num_tokens, layer);
}

std::vector<float> distant_mass(const Model& model, const HiddenState& hidden_entering,
                                std::int64_t num_tokens, int layer) {
    return distant_mass_of(
        model, [&](std::int64_t rows) { return kept_rows(model.impl(), hidden_entering, rows); },
        hidden_entering.size(), num_tokens, layer);
}

std::vector<float> layer_distant_mass(const Model& model, const at::Tensor& state, int layer) {
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const LayerWeights& w = m.layers[static_cast<std::size_t>(layer)];
    const std::int64_t num_tokens = state.size(0);
    at::InferenceMode inference;
    try {
        const SequenceRows sequence(c, num_tokens, num_tokens, m.device);
        const std::unique_ptr<LayerOps> ops = lens_ops(m, sequence);
        at::Tensor q;
        at::Tensor k;
        {
            const AttentionInputs in = attention_inputs(m, *ops, w, state);
            q = ops->project(in.u, w.global.q_proj, w.global.q_bias, w.global.q_norm,
                             c.num_attention_heads, &sequence.every_row);
            k = ops->project(in.u, w.global.k_proj, w.global.k_bias, w.global.k_norm,
                             c.num_key_value_heads, &sequence.every_row);
        }
#if L2A_ENGINE_CUDA
        // Two passes of the sliding-window kernel (full causal, then the window) give both LSEs.
        if (kernels_apply(m)) {
            return to_host<float>(kernels_distant_mass(q, k, c.l2a.sliding_window).mean(1));
        }
#endif
        // Wider key blocks on a GPU: fewer, larger launches.
        const std::int64_t key_block = m.device.is_cuda() ? 4096 : 1024;
        return to_host<float>(
            distant_mass_of(q, k, c.l2a.sliding_window, kQueryBlock, key_block).mean(1));
    } catch (const c10::Error& e) {
        libtorch_failed(e, "the distant mass of layer " + std::to_string(layer));
    }
}

std::vector<std::int64_t> top_weights(std::span<const float> weights, std::size_t k) {
    std::vector<std::int64_t> order(weights.size());
    std::iota(order.begin(), order.end(), std::int64_t{0});
    const std::size_t n = std::min(k, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [&](std::int64_t a, std::int64_t b) {
                          const float wa = weights[static_cast<std::size_t>(a)];
                          const float wb = weights[static_cast<std::size_t>(b)];
                          return wa != wb ? wa > wb : a < b;
                      });
    order.resize(n);
    return order;
}

}  // namespace l2a
