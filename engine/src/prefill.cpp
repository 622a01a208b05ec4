#include "l2a/engine/prefill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include <ATen/Parallel.h>

#include "attention.h"
#include "l2a/engine/rope.h"
#include "model_impl.h"

namespace l2a {
namespace {

using Clock = std::chrono::steady_clock;

// Host-timed named ranges, forwarded to the observer and kept for the Profile.
class RangeRecorder {
public:
    RangeRecorder(PrefillObserver* observer, std::vector<TimedRange>& out)
        : observer_(observer), out_(out), start_(Clock::now()) {}

    void begin(std::string name) {
        if (observer_) observer_->on_range_begin(name);
        open_.push_back(out_.size());
        out_.push_back({std::move(name), now_ns(), 0, static_cast<int>(open_.size()) - 1});
    }
    void end() {
        TimedRange& range = out_[open_.back()];
        open_.pop_back();
        range.end_ns = now_ns();
        if (observer_) observer_->on_range_end(range.name);
    }
    // Closes ranges left open by an exception so observers see balanced pairs.
    void unwind() {
        while (!open_.empty()) end();
    }
    double seconds() const {
        return std::chrono::duration<double>(Clock::now() - start_).count();
    }

private:
    std::int64_t now_ns() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    }
    PrefillObserver* observer_;
    std::vector<TimedRange>& out_;
    std::vector<std::size_t> open_;
    Clock::time_point start_;
};

struct Range {
    Range(RangeRecorder& recorder, std::string name) : recorder(recorder) { recorder.begin(std::move(name)); }
    ~Range() { recorder.end(); }
    Range(const Range&) = delete;
    Range& operator=(const Range&) = delete;
    RangeRecorder& recorder;
};

// splitmix64: a small, fully specified generator, so that random routing with a given seed
// picks the same tokens on every platform and in every later version.
std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void validate(const Model& model, std::span<const std::int32_t> tokens, const RunOptions& options) {
    const ModelConfig& c = model.config();
    const std::string& where = model.summary().path;
    if (tokens.empty()) fail("", "nothing to run: the input has no tokens");
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
            fail("", "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                         " is outside the model's vocabulary (0.." + std::to_string(c.vocab_size - 1) + ")");
        }
    }
    if (options.chunk_size < 1) fail("", "--chunk: must be at least 1");
    if (options.device != "cpu") {
        fail("", "--device " + options.device + ": this build runs on the CPU only (device: cpu)");
    }
    if (options.backend != "reference") {
        fail("", "--backend " + options.backend +
                     ": not available in this build (available: reference)");
    }
    if (!c.is_l2a()) {
        const std::string plain = where + " is a plain " + model_type_name(c.model_type) +
                                  " model without L2A layers";
        if (options.routing.kind != RoutingKind::Learned) fail("", "--routing: " + plain);
        if (!options.prune.empty()) fail("", "--prune: " + plain);
        if (options.threshold) fail("", "--threshold: " + plain);
        return;
    }
    for (int layer : options.prune) {
        if (layer < 0 || layer >= c.num_hidden_layers) {
            fail("", "--prune: layer " + std::to_string(layer) + " does not exist (the model has " +
                         std::to_string(c.num_hidden_layers) + " layers: 0-" +
                         std::to_string(c.num_hidden_layers - 1) + ")");
        }
    }
    if (options.threshold && !(*options.threshold > 0.0 && *options.threshold < 1.0)) {
        fail("", "--threshold: " + std::to_string(*options.threshold) +
                     " is not a probability strictly between 0 and 1");
    }
}

// Projects normalized rows to heads: [n, d] -> [heads, n, D], with bias and QK-norm.
at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   const at::Tensor& norm, std::int64_t heads, std::int64_t head_dim, double eps) {
    at::Tensor y = bias.defined() ? at::addmm(bias, x, weight.t()) : at::matmul(x, weight.t());
    y = y.view({x.size(0), heads, head_dim});
    if (norm.defined()) y = rms_norm(y, norm, eps);
    return y.permute({1, 0, 2}).contiguous();
}

at::Tensor output_projection(const at::Tensor& attn, const AttentionWeights& w) {
    return w.o_bias.defined() ? at::addmm(w.o_bias, attn, w.o_proj.t()) : at::matmul(attn, w.o_proj.t());
}

struct AttentionInputs {
    const AttentionWeights& weights;
    const at::Tensor& queries_from;  // rows that produce queries: [n, d]
    const at::Tensor& query_positions;  // [n] int64
    const at::Tensor& keys_from;     // all rows: [T, d]
    const at::Tensor& all_positions; // [T] int64
};

// Attention of one set of projections, returned after the output projection: [n, d].
at::Tensor attention(const AttentionInputs& in, const ModelConfig& c, const RopeTables& rope,
                     std::int64_t window, std::int64_t chunk, const std::function<void()>& check) {
    const double eps = c.rms_norm_eps;
    const AttentionWeights& w = in.weights;
    at::Tensor q = project(in.queries_from, w.q_proj, w.q_bias, w.q_norm, c.num_attention_heads, c.head_dim, eps);
    at::Tensor k = project(in.keys_from, w.k_proj, w.k_bias, w.k_norm, c.num_key_value_heads, c.head_dim, eps);
    at::Tensor v = project(in.keys_from, w.v_proj, w.v_bias, at::Tensor(), c.num_key_value_heads, c.head_dim, eps);
    q = apply_rope(q, rope, in.query_positions);
    k = apply_rope(k, rope, in.all_positions);
    const std::int64_t key_block = std::max<std::int64_t>(chunk, 1024);
    at::Tensor out = blocked_attention(q, in.query_positions, k, v, window, chunk, key_block, check);
    return output_projection(out, w);
}

at::Tensor router_logits(const LayerWeights& layer, const at::Tensor& u, RouterInput input) {
    switch (input) {
    case RouterInput::HiddenLinearProj: return at::matmul(u, layer.router);
    case RouterInput::HiddenFirstDim: return u.select(1, 0).contiguous();
    case RouterInput::HiddenMean: return u.mean(-1);
    }
    return {};
}

// Applies the routing policy to one layer's router logits.
void decide(const RunOptions& options, const L2AConfig& l2a, int layer, std::span<const float> z,
            std::span<std::uint8_t> out) {
    const std::size_t t = z.size();
    switch (options.routing.kind) {
    case RoutingKind::Learned: {
        const double theta = options.threshold.value_or(l2a.sigmoid_threshold);
        const double cut = l2a.sigmoid_temp * std::log(theta / (1.0 - theta));
        for (std::size_t i = 0; i < t; ++i) out[i] = static_cast<double>(z[i]) >= cut ? 1 : 0;
        break;
    }
    case RoutingKind::Global: std::fill(out.begin(), out.end(), 1); break;
    case RoutingKind::Local: std::fill(out.begin(), out.end(), 0); break;
    case RoutingKind::Random: {
        std::uint64_t state = options.seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(layer + 1));
        for (std::size_t i = 0; i < t; ++i) {
            const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
            out[i] = u < options.routing.fraction ? 1 : 0;
        }
        break;
    }
    case RoutingKind::Top: {
        const auto keep = static_cast<std::size_t>(
            std::llround(options.routing.fraction * static_cast<double>(t)));
        std::vector<std::uint32_t> order(t);
        std::iota(order.begin(), order.end(), 0u);
        // Highest logits first; among equal logits the earlier token wins.
        std::stable_sort(order.begin(), order.end(),
                         [&](std::uint32_t a, std::uint32_t b) { return z[a] > z[b]; });
        std::fill(out.begin(), out.end(), 0);
        for (std::size_t i = 0; i < std::min(keep, t); ++i) out[order[i]] = 1;
        break;
    }
    }
}

at::Tensor mlp(const LayerWeights& layer, const at::Tensor& x) {
    at::Tensor gate = at::matmul(x, layer.gate_proj.t());
    at::Tensor up = at::matmul(x, layer.up_proj.t());
    return at::matmul(at::silu(gate) * up, layer.down_proj.t());
}

}  // namespace

void set_cpu_threads(int threads) {
    if (threads > 0) at::set_num_threads(threads);
}

int cpu_threads() { return at::get_num_threads(); }

PrefillResult run_prefill(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks) {
    validate(model, tokens, options);
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const auto T = static_cast<std::int64_t>(tokens.size());
    const std::int64_t L = c.num_hidden_layers;
    const std::int64_t chunk = options.chunk_size;

    PrefillResult result;
    result.num_tokens = T;
    result.num_layers = L;
    result.router_logits.assign(static_cast<std::size_t>(L * T), std::numeric_limits<float>::quiet_NaN());
    result.decisions.assign(static_cast<std::size_t>(L * T), 1);
    result.token_nll.assign(static_cast<std::size_t>(T), std::numeric_limits<float>::quiet_NaN());

    RangeRecorder ranges(hooks.observer, result.ranges);
    auto check = [&] {
        if (hooks.cancel && hooks.cancel->load(std::memory_order_relaxed)) throw Cancelled();
    };
    auto progress = [&](double done, const std::string& stage) {
        if (hooks.progress) hooks.progress(std::clamp(done / static_cast<double>(L + 1), 0.0, 1.0), stage);
    };

    at::InferenceMode inference;
    try {
        const at::TensorOptions i64 = at::TensorOptions().dtype(at::kLong);
        at::Tensor ids = at::empty({T}, i64);
        std::copy(tokens.begin(), tokens.end(), ids.data_ptr<std::int64_t>());
        const at::Tensor positions = at::arange(T, i64);
        const RopeParams rope_params = compute_rope(c, T);
        const RopeTables rope = make_rope_tables(rope_params.inv_freq, rope_params.attention_scaling, T);

        at::Tensor x;
        {
            Range r(ranges, "embed");
            x = m.embed.index_select(0, ids);
        }
        progress(0, "layer 0 / " + std::to_string(L));

        for (std::int64_t li = 0; li < L; ++li) {
            check();
            const int layer = static_cast<int>(li);
            const LayerWeights& w = m.layers[static_cast<std::size_t>(li)];
            const std::string name = "layer " + std::to_string(li);
            if (hooks.observer) hooks.observer->on_layer_begin(layer);
            Range layer_range(ranges, name);
            std::span<float> z_out(result.router_logits.data() + li * T, static_cast<std::size_t>(T));
            std::span<std::uint8_t> d_out(result.decisions.data() + li * T, static_cast<std::size_t>(T));

            at::Tensor h;
            if (!c.is_l2a()) {
                // Plain Qwen layer: full causal attention, which is global attention for every token.
                Range r(ranges, name + " / global");
                at::Tensor xn = rms_norm(x, w.input_norm, c.rms_norm_eps);
                h = x + attention({w.attn, xn, positions, xn, positions}, c, rope, 0, chunk, check);
            } else {
                {
                    Range r(ranges, name + " / local");
                    at::Tensor xn = rms_norm(x, w.input_norm, c.rms_norm_eps);
                    h = x + attention({w.attn, xn, positions, xn, positions}, c, rope,
                                      c.l2a.sliding_window, chunk, check);
                }
                at::Tensor u;
                {
                    Range r(ranges, name + " / router");
                    u = rms_norm(h, w.global_norm, c.rms_norm_eps);
                    at::Tensor z = router_logits(w, u, c.l2a.router_input).contiguous();
                    std::copy_n(z.data_ptr<float>(), T, z_out.begin());
                    const bool pruned =
                        std::binary_search(options.prune.begin(), options.prune.end(), layer);
                    if (pruned) {
                        std::fill(d_out.begin(), d_out.end(), 0);
                    } else {
                        decide(options, c.l2a, layer, z_out, d_out);
                    }
                }
                std::vector<std::int64_t> routed;
                for (std::int64_t t = 0; t < T; ++t) {
                    if (d_out[static_cast<std::size_t>(t)]) routed.push_back(t);
                }
                if (!routed.empty()) {
                    Range r(ranges, name + " / global");
                    at::Tensor idx = at::tensor(routed, i64);
                    at::Tensor a = attention({w.global, u.index_select(0, idx), idx, u, positions}, c,
                                             rope, 0, chunk, check);
                    h.index_add_(0, idx, a);  // gated residual: unrouted rows add nothing
                }
            }
            if (hooks.observer) hooks.observer->on_routing(layer, z_out, d_out);
            progress(static_cast<double>(li) + 0.8, name + " / mlp");
            {
                Range r(ranges, name + " / mlp");
                at::Tensor y = at::empty_like(h);
                const std::int64_t rows = std::max<std::int64_t>(chunk, 256);
                for (std::int64_t r0 = 0; r0 < T; r0 += rows) {
                    check();
                    const std::int64_t n = std::min(rows, T - r0);
                    at::Tensor hc = h.narrow(0, r0, n);
                    y.narrow(0, r0, n).copy_(hc + mlp(w, rms_norm(hc, w.post_norm, c.rms_norm_eps)));
                }
                x = y;
            }
            if (hooks.observer) hooks.observer->on_layer_end(layer);
            progress(static_cast<double>(li + 1), "layer " + std::to_string(li + 1) + " / " + std::to_string(L));
        }

        {
            Range r(ranges, "lm_head");
            at::Tensor xn = rms_norm(x, m.final_norm, c.rms_norm_eps);
            const std::int64_t rows = std::max<std::int64_t>(chunk, 64);
            for (std::int64_t r0 = 0; r0 < T; r0 += rows) {
                check();
                const std::int64_t n = std::min(rows, T - r0);
                at::Tensor logits = at::matmul(xn.narrow(0, r0, n), m.lm_head.t()).contiguous();
                if (hooks.logits_sink) hooks.logits_sink(r0, n, c.vocab_size, logits.data_ptr<float>());
                // Row t predicts token t + 1.
                const std::int64_t predicted = std::min(n, T - 1 - r0);
                if (predicted > 0) {
                    at::Tensor logp = at::log_softmax(logits.narrow(0, 0, predicted), -1);
                    at::Tensor next = ids.narrow(0, r0 + 1, predicted).view({predicted, 1});
                    at::Tensor nll = -logp.gather(1, next).view({predicted}).contiguous();
                    std::copy_n(nll.data_ptr<float>(), predicted, result.token_nll.begin() + r0 + 1);
                }
                progress(static_cast<double>(L) + static_cast<double>(r0 + n) / static_cast<double>(T), "lm_head");
            }
        }
    } catch (...) {
        ranges.unwind();
        throw;
    }
    result.wall_seconds = ranges.seconds();
    return result;
}

}  // namespace l2a
