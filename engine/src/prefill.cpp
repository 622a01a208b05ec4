#include "l2a/engine/prefill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <limits>
#include <numeric>
#include <string>
#include <thread>

#include <ATen/Parallel.h>
#include <sched.h>

#include "attention.h"
#include "device_runtime.h"
#include "l2a/engine/device.h"
#include "l2a/engine/rope.h"
#include "model_impl.h"
#include "splitmix.h"

namespace l2a {
namespace {

using Clock = std::chrono::steady_clock;

// Host-timed named ranges, forwarded to the observer and kept for the Profile. On a GPU the
// stream is synchronized at both ends, so that a range times the work queued inside it.
class RangeRecorder {
public:
    RangeRecorder(PrefillObserver* observer, std::vector<TimedRange>& out, const at::Device& device)
        : observer_(observer), out_(out), device_(device), start_(Clock::now()) {}

    // `layer`: the layer of a layer phase, -1 for the stages outside the layers.
    void begin(Phase phase, std::int64_t layer) {
        synchronize(device_);
        const auto index = static_cast<std::int32_t>(layer);
        if (observer_) observer_->on_range_begin(range_name(phase, index));
        open_.push_back(out_.size());
        out_.push_back({phase, index, now_ns(), 0, static_cast<int>(open_.size()) - 1, {}});
    }
    void end() {
        synchronize(device_);
        close();
    }
    // Closes ranges left open by an exception so observers see balanced pairs (no
    // synchronization: the device may be what failed).
    void unwind() {
        while (!open_.empty()) close();
    }
    // The innermost open range ("layer 3 / mlp"), for error messages.
    std::string current() const {
        return open_.empty() ? "the run" : range_name(out_[open_.back()]);
    }
    double seconds() const {
        return std::chrono::duration<double>(Clock::now() - start_).count();
    }

private:
    void close() {
        TimedRange& range = out_[open_.back()];
        open_.pop_back();
        range.end_ns = now_ns();
        if (observer_) observer_->on_range_end(range_name(range));
    }
    std::int64_t now_ns() const {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    }
    PrefillObserver* observer_;
    std::vector<TimedRange>& out_;
    at::Device device_;
    std::vector<std::size_t> open_;
    Clock::time_point start_;
};

struct Range {
    Range(RangeRecorder& recorder, Phase phase, std::int64_t layer = -1) : recorder(recorder) {
        recorder.begin(phase, layer);
    }
    ~Range() noexcept(false) {
        // During unwinding the recorder's unwind() closes what is left, without touching the device.
        if (std::uncaught_exceptions() == exceptions_) recorder.end();
    }
    Range(const Range&) = delete;
    Range& operator=(const Range&) = delete;
    RangeRecorder& recorder;
    int exceptions_ = std::uncaught_exceptions();
};

Backend validate(const Model& model, std::span<const std::int32_t> tokens, const RunOptions& options) {
    const ModelConfig& c = model.config();
    const Model::Impl& m = model.impl();
    const std::string& where = model.summary().path;
    if (tokens.empty()) fail("", "nothing to run: the input has no tokens");
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
            fail("", "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                         " is outside the model's vocabulary (0.." + std::to_string(c.vocab_size - 1) + ")");
        }
    }
    if (options.chunk_size < 1) fail("", "--chunk: must be at least 1");
    if (canonical_device(options.device) != canonical_device(m.placement.device)) {
        require_device(options.device);
        fail("", "--device " + options.device + ": the model was loaded on " + m.placement.device +
                     " (load it with the same device as the run)");
    }
    const std::optional<Backend> parsed = parse_backend(options.backend);
    if (!parsed) fail("", "--backend " + options.backend + ": expected " + kBackendChoices);
    const Backend backend = *parsed;
    if (backend != Backend::Reference) {
        if (m.device.is_cpu()) {
            fail("", "--backend " + options.backend +
                         ": runs on CUDA devices only (this run is on the CPU, where the backend "
                         "is reference)");
        }
        if (!cuda_built()) fail("", "--backend " + options.backend + ": this build has no CUDA support");
    }
    if (backend == Backend::Kernels) {
        if (m.dtype != at::kBFloat16 && m.dtype != at::kHalf) {
            fail("", "--backend kernels: needs bf16 or fp16 weights (the model is placed in " +
                         m.placement.dtype + "; use --dtype bf16)");
        }
        if (c.head_dim != 64 && c.head_dim != 128) {
            fail("", "--backend kernels: head_dim " + std::to_string(c.head_dim) +
                         " is not supported by the kernels (64 or 128); use --backend sdpa");
        }
    }
    const bool l2a = c.is_l2a() && !options.as_base;
    if (!l2a) {
        const std::string plain = c.is_l2a() ? std::string("--as-base runs no router")
                                             : where + " is a plain " + model_type_name(c.model_type) +
                                                   " model without L2A layers";
        if (options.routing.kind != RoutingKind::Learned) fail("", "--routing: " + plain);
        if (!options.prune.empty()) fail("", "--prune: " + plain);
        if (options.threshold) fail("", "--threshold: " + plain);
        return backend;
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
    return backend;
}

AttentionBackend backend_function(Backend backend) {
#if L2A_ENGINE_CUDA
    if (backend == Backend::Sdpa) return &sdpa_attention;
    if (backend == Backend::Kernels) return &kernels_attention;
#else
    (void)backend;
#endif
    return &reference_attention;
}

// How a run computes: device, dtype, backend, and the row blocks of the row-wise stages.
struct Engine {
    const ModelConfig& c;
    at::ScalarType dtype;
    AttentionBackend attend;
    std::int64_t query_block;  // attention query rows per block (--chunk)
    std::int64_t norm_rows;    // rows per block of norms and projections
    std::int64_t mlp_rows;
    std::int64_t head_rows;    // LM head
    const RopeTables& rope;
    std::function<void()> check;
    // The kernels backend's fused per-token operators (norms, QK-norm + RoPE, router logit,
    // gated scatter-add) instead of LibTorch ops.
    bool fused = false;
};

// Normalized rows in the model dtype, computed in fp32 blocks of `rows`.
at::Tensor norm_rows(const Engine& e, const at::Tensor& x, const at::Tensor& weight) {
    const std::int64_t t = x.size(0);
#if L2A_ENGINE_CUDA
    if (e.fused) {
        at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
        fused_add_rms_norm(x, {}, {}, weight, e.c.rms_norm_eps, y, {}, {});
        return y;
    }
#endif
    if (t <= e.norm_rows) return rms_norm(x, weight, e.c.rms_norm_eps).to(e.dtype);
    at::Tensor y = at::empty_like(x, x.options().dtype(e.dtype));
    for (std::int64_t r0 = 0; r0 < t; r0 += e.norm_rows) {
        const std::int64_t n = std::min(e.norm_rows, t - r0);
        y.narrow(0, r0, n).copy_(rms_norm(x.narrow(0, r0, n), weight, e.c.rms_norm_eps));
    }
    return y;
}

// Normalized rows x [n, d] projected to heads [n, heads, D] in the model dtype: bias, then
// QK-norm (optional) and RoPE at the positions of `rows` (none when null) in fp32.
at::Tensor project(const Engine& e, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   const at::Tensor& norm, std::int64_t heads, const QueryRows* rows) {
    const std::int64_t t = x.size(0);
    const std::int64_t dim = e.c.head_dim;
#if L2A_ENGINE_CUDA
    if (e.fused) {
        at::Tensor y = bias.defined() ? at::addmm(bias, x, weight.t()) : at::matmul(x, weight.t());
        y = y.view({t, heads, dim});
        if (rows) {
            fused_norm_rope(y, norm, e.c.rms_norm_eps, e.rope,
                            rows->all ? at::Tensor() : rows->device_positions32);
        }
        return y;
    }
#endif
    const at::Tensor* positions = rows ? &rows->device_positions : nullptr;
    auto block = [&](const at::Tensor& rows, std::int64_t r0) {
        at::Tensor y = bias.defined() ? at::addmm(bias, rows, weight.t()) : at::matmul(rows, weight.t());
        y = y.view({rows.size(0), heads, dim});
        if (!norm.defined() && !positions) return y;
        at::Tensor f = norm.defined() ? rms_norm(y, norm, e.c.rms_norm_eps) : y.to(at::kFloat);
        if (positions) f = apply_rope(f, e.rope, positions->narrow(0, r0, rows.size(0)));
        return f.to(e.dtype);
    };
    if (t <= e.norm_rows) return block(x, 0).contiguous();
    at::Tensor out = at::empty({t, heads, dim}, x.options().dtype(e.dtype));
    for (std::int64_t r0 = 0; r0 < t; r0 += e.norm_rows) {
        const std::int64_t n = std::min(e.norm_rows, t - r0);
        out.narrow(0, r0, n).copy_(block(x.narrow(0, r0, n), r0));
    }
    return out;
}

at::Tensor output_projection(const at::Tensor& attn, const AttentionWeights& w) {
    return w.o_bias.defined() ? at::addmm(w.o_bias, attn, w.o_proj.t()) : at::matmul(attn, w.o_proj.t());
}

// Attention of one set of projections, returned after the output projection: [n, d].
// queries_from: the normalized rows that produce queries; keys_from: all normalized rows.
at::Tensor attention(const Engine& e, const AttentionWeights& w, const at::Tensor& queries_from,
                     const QueryRows& rows, const at::Tensor& keys_from, const QueryRows& all_rows,
                     std::int64_t window) {
    const std::int64_t hq = e.c.num_attention_heads;
    const std::int64_t hkv = e.c.num_key_value_heads;
    at::Tensor out;
    {
        const at::Tensor q = project(e, queries_from, w.q_proj, w.q_bias, w.q_norm, hq, &rows);
        const at::Tensor k = project(e, keys_from, w.k_proj, w.k_bias, w.k_norm, hkv, &all_rows);
        const at::Tensor v = project(e, keys_from, w.v_proj, w.v_bias, at::Tensor(), hkv, nullptr);
        out = e.attend(q, rows, k, v, window, e.query_block, e.check);
    }
    return output_projection(out, w);
}

// Router logits (fp32) of the fp32 normalized rows.
at::Tensor router_logits(const LayerWeights& layer, const at::Tensor& u, RouterInput input) {
    switch (input) {
    case RouterInput::HiddenLinearProj: return at::matmul(u, layer.router.to(at::kFloat));
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

// Copies a device tensor's elements to a host span of the same length.
template <typename T>
void copy_to_host(const at::Tensor& t, T* out) {
    const at::Tensor host = t.device().is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
    std::copy_n(host.data_ptr<T>(), host.numel(), out);
}

}  // namespace

void set_cpu_threads(int threads) {
    if (threads > 0) at::set_num_threads(threads);
}

int cpu_threads() { return at::get_num_threads(); }

CpuLoad cpu_load() {
    CpuLoad load;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        load.cores = std::max(1, CPU_COUNT(&set));
    } else {
        load.cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    }
    double averages[1] = {0.0};
    if (getloadavg(averages, 1) == 1 && std::isfinite(averages[0]) && averages[0] >= 0.0) {
        load.load1 = averages[0];
    }
    return load;
}

int default_cpu_threads(const CpuLoad& load) {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long n = std::strtol(env, &end, 10);
        if (end != env && *end == '\0' && n > 0 && n <= 4096) return static_cast<int>(n);
    }
    const int cores = std::max(1, load.cores);
    if (load.load1 < 0.0) return cores;
    const int busy = static_cast<int>(std::lround(load.load1));
    return std::clamp(cores - busy, 1, cores);
}

int default_cpu_threads() { return default_cpu_threads(cpu_load()); }

namespace {

// Copies the device rows x [T, d] into a fp32 host array.
void keep_hidden(const at::Tensor& x, std::vector<float>& out) {
    out.resize(static_cast<std::size_t>(x.numel()));
    copy_to_host(x.to(at::kFloat), out.data());
}

// NaN or Inf in the residual stream make every later number meaningless (the loss comes out as
// "n/a"): the run stops and says where it happened.
[[noreturn]] void nonfinite_activations(const Model& model, std::int64_t layer) {
    fail(model.summary().path,
         "layer " + std::to_string(layer) +
             " produced non-finite activations (NaN or Inf); the run is stopped (the layer's "
             "weights, or values too large for " +
             model.placement().dtype + ", are the likely cause)");
}

// run_prefill from `start_layer`, with the state entering it (`hidden`: null to embed the tokens).
PrefillResult run_layers(const Model& model, std::span<const std::int32_t> tokens,
                         const RunOptions& options, std::int64_t start_layer,
                         std::span<const float> hidden, const PrefillHooks& hooks) {
    const Backend backend = validate(model, tokens, options);
    if (hidden.data()) {
        // After the options: a bad --prune names itself rather than the layer it would start at.
        const ModelConfig& config = model.config();
        if (start_layer < 0 || start_layer > config.num_hidden_layers) {
            fail("", "re-run from layer " + std::to_string(start_layer) + ": the model has " +
                         std::to_string(config.num_hidden_layers) + " layers (start 0-" +
                         std::to_string(config.num_hidden_layers) + ")");
        }
        const std::size_t expected = tokens.size() * static_cast<std::size_t>(config.hidden_size);
        if (hidden.size() != expected) {
            fail("", "re-run from layer " + std::to_string(start_layer) + ": the checkpoint has " +
                         std::to_string(hidden.size()) + " values, expected " +
                         std::to_string(tokens.size()) + " tokens x " +
                         std::to_string(config.hidden_size));
        }
    }
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    const at::Device device = m.device;
    const bool cuda = device.is_cuda();
    const bool l2a = c.is_l2a() && !options.as_base;
    const auto T = static_cast<std::int64_t>(tokens.size());
    const std::int64_t L = c.num_hidden_layers;
    const std::int64_t chunk = options.chunk_size;

    PrefillResult result;
    result.num_tokens = T;
    result.num_layers = L;
    result.router_logits.assign(static_cast<std::size_t>(L * T), std::numeric_limits<float>::quiet_NaN());
    result.decisions.assign(static_cast<std::size_t>(L * T), 1);
    result.token_nll.assign(static_cast<std::size_t>(T), std::numeric_limits<float>::quiet_NaN());
    result.device = device_label(device);
    std::fill_n(result.decisions.begin(), static_cast<std::size_t>(start_layer * T), 0);
    ResidualCheckpoints* keep = hooks.checkpoints;
    if (keep) {
        keep->entering.assign(static_cast<std::size_t>(L), {});
        keep->final_hidden.clear();
        keep->num_tokens = T;
        keep->hidden_size = c.hidden_size;
    }
    auto kept = [&](std::int64_t layer) {
        if (!keep) return false;
        if (keep->every_layer) return true;
        return std::find(keep->layers.begin(), keep->layers.end(), static_cast<int>(layer)) !=
               keep->layers.end();
    };

    RangeRecorder ranges(hooks.observer, result.ranges, device);
    auto check = [&] {
        if (hooks.cancel && hooks.cancel->load(std::memory_order_relaxed)) throw Cancelled();
    };
    auto progress = [&](double done, const std::string& stage) {
        if (hooks.progress) hooks.progress(std::clamp(done / static_cast<double>(L + 1), 0.0, 1.0), stage);
    };

    at::InferenceMode inference;
    reset_peak_memory(device);
    try {
        const at::TensorOptions i64 = at::TensorOptions().dtype(at::kLong);
        std::vector<std::int64_t> all_positions(static_cast<std::size_t>(T));
        std::iota(all_positions.begin(), all_positions.end(), std::int64_t{0});
        at::Tensor ids_host = at::empty({T}, i64);
        std::copy(tokens.begin(), tokens.end(), ids_host.data_ptr<std::int64_t>());
        const at::Tensor ids = ids_host.to(device);
        const at::Tensor positions = at::arange(T, i64.device(device));
        const QueryRows every_row{all_positions, positions, true, at::Tensor()};
        const RopeParams rope_params = compute_rope(c, T);
        const RopeTables rope =
            make_rope_tables(rope_params.inv_freq, rope_params.attention_scaling, T, device);
        // On the GPU, row-wise stages run in blocks that keep their fp32 temporaries a small,
        // fixed size; on the CPU the whole sequence is one block, as before.
        const Engine engine{c,
                            m.dtype,
                            backend_function(backend),
                            chunk,
                            cuda ? std::int64_t{16384} : T,
                            cuda ? std::int64_t{8192} : std::max<std::int64_t>(chunk, 256),
                            cuda ? std::int64_t{2048} : std::max<std::int64_t>(chunk, 64),
                            rope,
                            check,
                            backend == Backend::Kernels && c.hidden_size % 8 == 0 &&
                                c.hidden_size <= 16384};

        std::vector<at::Tensor> finite_flags;  // CUDA: per layer, read after the last one
        at::Tensor x;
        if (hidden.data()) {
            // A copy the run owns: the layers update x in place.
            at::Tensor host = at::empty({T, c.hidden_size}, at::TensorOptions().dtype(at::kFloat));
            std::copy(hidden.begin(), hidden.end(), host.data_ptr<float>());
            x = host.to(device).to(m.dtype);
        } else {
            Range r(ranges, Phase::Embed);
            x = m.embed.index_select(0, ids);
        }
        progress(static_cast<double>(start_layer),
                 "layer " + std::to_string(start_layer) + " / " + std::to_string(L));

        for (std::int64_t li = start_layer; li < L; ++li) {
            check();
            if (kept(li)) keep_hidden(x, keep->entering[static_cast<std::size_t>(li)]);
            const int layer = static_cast<int>(li);
            const LayerWeights& w = m.layers[static_cast<std::size_t>(li)];
            const std::string name = "layer " + std::to_string(li);
            if (hooks.observer) hooks.observer->on_layer_begin(layer);
            Range layer_range(ranges, Phase::Layer, li);
            std::span<float> z_out(result.router_logits.data() + li * T, static_cast<std::size_t>(T));
            std::span<std::uint8_t> d_out(result.decisions.data() + li * T, static_cast<std::size_t>(T));

            at::Tensor h;
            if (!l2a) {
                // Plain Qwen layer (or an L2A layer run as its base): full causal attention with
                // the first attention set, which is global attention for every token.
                Range r(ranges, Phase::Global, li);
                const at::Tensor xn = norm_rows(engine, x, w.input_norm);
                h = x.add_(attention(engine, w.attn, xn, every_row, xn, every_row, 0));
            } else {
                at::Tensor local;
                {
                    Range r(ranges, Phase::Local, li);
                    const at::Tensor xn = norm_rows(engine, x, w.input_norm);
                    local = attention(engine, w.attn, xn, every_row, xn, every_row, c.l2a.sliding_window);
                    // Fused, the residual add happens in the router's pass below.
                    if (!engine.fused) h = x.add_(local);
                }
                at::Tensor u;
                {
                    Range r(ranges, Phase::Router, li);
                    at::Tensor z = at::empty({T}, x.options().dtype(at::kFloat));
                    u = at::empty_like(x, x.options().dtype(m.dtype));
                    if (engine.fused) {
#if L2A_ENGINE_CUDA
                        // h = x + local, u = RMSNorm_global(h) and z = w . u in one pass.
                        const bool linear = c.l2a.router_input == RouterInput::HiddenLinearProj;
                        fused_add_rms_norm(local, x, x, w.global_norm, c.rms_norm_eps, u,
                                           linear ? w.router : at::Tensor(), linear ? z : at::Tensor());
                        if (!linear) z = router_logits(w, u.to(at::kFloat), c.l2a.router_input);
                        h = x;
#endif
                    } else {
                        // The router sees the fp32 normalized rows; attention gets them in the dtype.
                        for (std::int64_t r0 = 0; r0 < T; r0 += engine.norm_rows) {
                            const std::int64_t n = std::min(engine.norm_rows, T - r0);
                            const at::Tensor uf = rms_norm(h.narrow(0, r0, n), w.global_norm, c.rms_norm_eps);
                            z.narrow(0, r0, n).copy_(router_logits(w, uf, c.l2a.router_input));
                            u.narrow(0, r0, n).copy_(uf);
                        }
                    }
                    local = at::Tensor();
                    copy_to_host(z, z_out.data());
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
                    Range r(ranges, Phase::Global, li);
                    const at::Tensor idx = at::tensor(routed, i64).to(device);
                    const QueryRows routed_rows{routed, idx, false,
                                                engine.fused ? idx.to(at::kInt) : at::Tensor()};
                    const at::Tensor a = attention(engine, w.global, u.index_select(0, idx), routed_rows,
                                                   u, every_row, 0);
                    // Gated residual: unrouted rows add nothing.
                    if (engine.fused) {
#if L2A_ENGINE_CUDA
                        const at::Tensor count = at::full(
                            {1}, static_cast<std::int64_t>(routed.size()),
                            at::TensorOptions().dtype(at::kInt).device(device));
                        fused_scatter_add_rows(h, a, routed_rows.device_positions32, count);
#endif
                    } else {
                        h.index_add_(0, idx, a);
                    }
                }
            }
            if (hooks.observer) hooks.observer->on_routing(layer, z_out, d_out);
            progress(static_cast<double>(li) + 0.8, name + " / mlp");
            {
                Range r(ranges, Phase::Mlp, li);
                for (std::int64_t r0 = 0; r0 < T; r0 += engine.mlp_rows) {
                    check();
                    const std::int64_t n = std::min(engine.mlp_rows, T - r0);
                    at::Tensor hc = h.narrow(0, r0, n);
                    hc.add_(mlp(w, norm_rows(engine, hc, w.post_norm)));
                }
                x = h;
            }
            // One reduction over the layer's output (min and max, which NaN and Inf reach, with
            // no full-size temporary). The CPU reads it at once; on CUDA each layer's flag stays
            // on the device and all are read after the last layer, so the check adds no
            // synchronization.
            const auto [lowest, highest] = at::aminmax(x);
            at::Tensor finite = at::isfinite(lowest).logical_and(at::isfinite(highest));
            if (cuda) {
                finite_flags.push_back(std::move(finite));
            } else if (!finite.item<bool>()) {
                nonfinite_activations(model, li);
            }
            if (hooks.observer) hooks.observer->on_layer_end(layer);
            progress(static_cast<double>(li + 1), "layer " + std::to_string(li + 1) + " / " + std::to_string(L));
        }
        if (!finite_flags.empty()) {
            const at::Tensor flags = at::stack(finite_flags).to(at::kCPU);
            for (std::int64_t i = 0; i < flags.numel(); ++i) {
                if (!flags[i].item<bool>()) nonfinite_activations(model, start_layer + i);
            }
        }

        if (keep) keep_hidden(x, keep->final_hidden);
        {
            Range r(ranges, Phase::LmHead);
            // Without the per-token NLL (and without a logits sink) only the last row is needed:
            // the next token's logits, which is all that time-to-first-token covers.
            const bool all_rows = options.token_nll || static_cast<bool>(hooks.logits_sink);
            const std::int64_t first = all_rows ? 0 : T - 1;
            const at::Tensor xn = norm_rows(engine, x.narrow(0, first, T - first), m.final_norm);
            x = at::Tensor();
            for (std::int64_t r0 = first; r0 < T; r0 += engine.head_rows) {
                check();
                const std::int64_t n = std::min(engine.head_rows, T - r0);
                const at::Tensor rows = xn.narrow(0, r0 - first, n);
                // Half-precision weights, fp32 logits straight from the GEMM's fp32 accumulator.
                at::Tensor logits = m.dtype == at::kFloat ? at::matmul(rows, m.lm_head.t())
                                                          : at::mm(rows, m.lm_head.t(), at::kFloat);
                if (r0 + n == T) {
                    result.last_logits.resize(static_cast<std::size_t>(c.vocab_size));
                    copy_to_host(logits.narrow(0, n - 1, 1), result.last_logits.data());
                }
                if (hooks.logits_sink) {
                    const at::Tensor host = logits.to(at::kCPU).contiguous();
                    hooks.logits_sink(r0, n, c.vocab_size, host.data_ptr<float>());
                }
                // Row t predicts token t + 1.
                const std::int64_t predicted = options.token_nll ? std::min(n, T - 1 - r0) : 0;
                if (predicted > 0) {
                    at::Tensor logp = at::log_softmax(logits.narrow(0, 0, predicted), -1);
                    at::Tensor next = ids.narrow(0, r0 + 1, predicted).view({predicted, 1});
                    at::Tensor nll = -logp.gather(1, next).view({predicted});
                    copy_to_host(nll, result.token_nll.data() + r0 + 1);
                }
                progress(static_cast<double>(L) + static_cast<double>(r0 + n) / static_cast<double>(T), "lm_head");
            }
        }
    } catch (const c10::OutOfMemoryError&) {
        const std::string stage = ranges.current();
        ranges.unwind();
        fail("", out_of_memory_message(device, "running " + stage,
                                       std::to_string(T) + " tokens",
                                       "try --max-tokens or a smaller model"));
    } catch (const Error&) {
        ranges.unwind();
        throw;
    } catch (const c10::Error& e) {
        const std::string stage = ranges.current();
        ranges.unwind();
        const std::string what = e.what_without_backtrace();
        fail("", "LibTorch failed while running " + stage + " on " + result.device + ": " +
                     what.substr(0, what.find('\n')));
    } catch (...) {
        ranges.unwind();
        throw;
    }
    result.wall_seconds = ranges.seconds();
    result.peak_device_bytes = peak_memory(device);
    return result;
}

}  // namespace

PrefillResult run_prefill(const Model& model, std::span<const std::int32_t> tokens,
                          const RunOptions& options, const PrefillHooks& hooks) {
    return run_layers(model, tokens, options, 0, {}, hooks);
}

PrefillResult run_prefill_from(const Model& model, std::span<const std::int32_t> tokens,
                               const RunOptions& options, int start_layer,
                               std::span<const float> hidden_at_start, const PrefillHooks& hooks) {
    // A non-null data pointer marks a resumed run, even for an empty checkpoint (an error).
    static const float kNoState = 0.0f;
    if (!hidden_at_start.data()) hidden_at_start = std::span<const float>(&kNoState, 0);
    return run_layers(model, tokens, options, start_layer, hidden_at_start, hooks);
}

void run_lm_head(const Model& model, std::span<const float> final_hidden, std::int64_t rows,
                 const std::function<void(std::int64_t, std::int64_t, std::int64_t,
                                          const float*)>& sink,
                 std::int64_t block_rows) {
    const Model::Impl& m = model.impl();
    const ModelConfig& c = m.config;
    if (rows < 0 || final_hidden.size() != static_cast<std::size_t>(rows * c.hidden_size)) {
        fail("", "LM head: " + std::to_string(final_hidden.size()) + " hidden values are not " +
                     std::to_string(rows) + " rows of " + std::to_string(c.hidden_size));
    }
    if (block_rows < 1) block_rows = 256;
    at::InferenceMode inference;
    try {
        at::Tensor host = at::empty({rows, c.hidden_size}, at::TensorOptions().dtype(at::kFloat));
        std::copy(final_hidden.begin(), final_hidden.end(), host.data_ptr<float>());
        const at::Tensor x = host.to(m.device).to(m.dtype);
        for (std::int64_t r0 = 0; r0 < rows; r0 += block_rows) {
            const std::int64_t n = std::min(block_rows, rows - r0);
            const at::Tensor xn =
                rms_norm(x.narrow(0, r0, n), m.final_norm, c.rms_norm_eps).to(m.dtype);
            const at::Tensor logits = m.dtype == at::kFloat ? at::matmul(xn, m.lm_head.t())
                                                            : at::mm(xn, m.lm_head.t(), at::kFloat);
            const at::Tensor out = logits.to(at::kCPU).contiguous();
            sink(r0, n, c.vocab_size, out.data_ptr<float>());
        }
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        fail("", "LibTorch failed while running the LM head: " + what.substr(0, what.find('\n')));
    }
}

}  // namespace l2a
