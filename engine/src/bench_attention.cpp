// `l2a bench attention`: the project's L2A attention kernels against full causal attention
// through LibTorch's SDPA backends (cuDNN, FlashAttention), on random inputs, in one process.
// Every measured configuration is first checked against an fp32 reference on sampled rows.
#include <ATen/cuda/Sleep.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "device_runtime.h"
#include "l2a/engine/bench.h"
#include "l2a/engine/error.h"
#include "l2a/engine/run_choices.h"
#include "l2a/kernels/attention.h"
#include "l2a/kernels/fused_ops.h"

namespace l2a {
namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string shape_label(std::int64_t tokens, const AttentionHeads& h) {
    return "T=" + std::to_string(tokens) + " " + std::to_string(h.q_heads) + "/" +
           std::to_string(h.kv_heads) + "/" + std::to_string(h.head_dim);
}

void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        fail("", std::string("bench attention: ") + what + ": " + cudaGetErrorString(status));
    }
}

// Nanoseconds on the steady clock (BenchTime's spans).
std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// The median of a non-empty list (of an even count, the mean of the middle two).
double median_of(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Median time of `repeat` runs of `work` on `stream`, after `warmup` untimed runs; one pair of
// CUDA events around each run, so host gaps between runs are not counted.
template <typename Work>
BenchTime median_time(Work&& work, int warmup, int repeat, cudaStream_t stream) {
    for (int i = 0; i < warmup; ++i) work();
    // The warm-up done before the timed runs' bracket opens.
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    const std::int64_t begin_ns = steady_now_ns();
    std::vector<cudaEvent_t> events(static_cast<std::size_t>(2 * repeat));
    for (cudaEvent_t& e : events) check_cuda(cudaEventCreate(&e), "cudaEventCreate");
    for (int i = 0; i < repeat; ++i) {
        check_cuda(cudaEventRecord(events[2 * i], stream), "cudaEventRecord");
        work();
        check_cuda(cudaEventRecord(events[2 * i + 1], stream), "cudaEventRecord");
    }
    check_cuda(cudaEventSynchronize(events.back()), "cudaEventSynchronize");
    const std::int64_t end_ns = steady_now_ns();
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
        float elapsed = 0;
        check_cuda(cudaEventElapsedTime(&elapsed, events[2 * i], events[2 * i + 1]),
                   "cudaEventElapsedTime");
        ms.push_back(elapsed);
    }
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    BenchTime t;
    t.available = true;
    t.spans = {{begin_ns, end_ns}};
    t.ms = median_of(std::move(ms));
    return t;
}

// The GPU spins this many cycles (about a millisecond) at the start of each interleaved round,
// so that the round's launches queue behind it and no part's time holds a launch's latency.
constexpr std::int64_t kRoundHeadStartCycles = 2'000'000;

// Median times of `parts` run in rounds: after `warmup` untimed rounds, `repeat` timed rounds
// each running every part once, in the order interleaved_order gives. CUDA events time each
// run; its span on the steady clock is the round's start on the host plus the events' offsets
// from the round's first event (recorded while the GPU was idle).
std::vector<BenchTime> interleaved_times(const std::vector<std::function<void()>>& parts,
                                         int warmup, int repeat, cudaStream_t stream) {
    const std::size_t n = parts.size();
    for (int round = 0; round < warmup; ++round) {
        for (std::size_t part : interleaved_order(round, n)) parts[part]();
    }
    std::vector<cudaEvent_t> events(2 * n + 1);
    for (cudaEvent_t& e : events) check_cuda(cudaEventCreate(&e), "cudaEventCreate");
    std::vector<std::vector<double>> ms(n);
    std::vector<BenchTime> out(n);
    const auto elapsed_ms = [&](cudaEvent_t from, cudaEvent_t to) {
        float value = 0;
        check_cuda(cudaEventElapsedTime(&value, from, to), "cudaEventElapsedTime");
        return static_cast<double>(value);
    };
    for (int round = 0; round < repeat; ++round) {
        check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        const std::int64_t round_ns = steady_now_ns();
        check_cuda(cudaEventRecord(events[0], stream), "cudaEventRecord");
        at::cuda::sleep(kRoundHeadStartCycles);
        const std::vector<std::size_t> order = interleaved_order(round, n);
        for (std::size_t j = 0; j < n; ++j) {
            check_cuda(cudaEventRecord(events[1 + 2 * j], stream), "cudaEventRecord");
            parts[order[j]]();
            check_cuda(cudaEventRecord(events[2 + 2 * j], stream), "cudaEventRecord");
        }
        check_cuda(cudaEventSynchronize(events[2 * n]), "cudaEventSynchronize");
        for (std::size_t j = 0; j < n; ++j) {
            const double begin_ms = elapsed_ms(events[0], events[1 + 2 * j]);
            const double end_ms = elapsed_ms(events[0], events[2 + 2 * j]);
            ms[order[j]].push_back(end_ms - begin_ms);
            out[order[j]].spans.push_back({round_ns + static_cast<std::int64_t>(begin_ms * 1e6),
                                           round_ns + static_cast<std::int64_t>(end_ms * 1e6)});
        }
    }
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    for (std::size_t i = 0; i < n; ++i) {
        out[i].available = true;
        out[i].ms = median_of(std::move(ms[i]));
    }
    return out;
}

kernels::ConstTokenHeadTensor read_view(const at::Tensor& t) {
    return {t.data_ptr(), t.stride(0), t.stride(1)};
}
kernels::TokenHeadTensor write_view(const at::Tensor& t) {
    return {t.data_ptr(), t.stride(0), t.stride(1)};
}

// Largest relative error (norm over heads and head dim) of sampled output rows against fp32
// attention computed by LibTorch. Row i of `q_rows` / `out_rows` is the query at
// positions[i]; it attends keys lo .. p with lo = max(0, p - W + 1) (W = 0: lo = 0).
double max_row_error(const at::Tensor& q_rows, const at::Tensor& out_rows,
                     const std::vector<std::int64_t>& positions, const at::Tensor& k,
                     const at::Tensor& v, std::int64_t window) {
    const std::int64_t hq = q_rows.size(1);
    const std::int64_t hkv = k.size(1);
    const std::int64_t dim = q_rows.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    double worst = 0.0;
    for (std::size_t i = 0; i < positions.size(); ++i) {
        const std::int64_t p = positions[i];
        const std::int64_t lo = window > 0 ? std::max<std::int64_t>(0, p - window + 1) : 0;
        // [Hkv, n, D]
        const at::Tensor kk = k.slice(0, lo, p + 1).to(at::kFloat).permute({1, 0, 2});
        const at::Tensor vv = v.slice(0, lo, p + 1).to(at::kFloat).permute({1, 0, 2});
        // [Hkv, group, D]
        const at::Tensor q =
            q_rows[static_cast<std::int64_t>(i)].to(at::kFloat).view({hkv, hq / hkv, dim});
        const at::Tensor probs = at::softmax(at::matmul(q, kk.transpose(1, 2)) * scale, -1);
        const at::Tensor ref = at::matmul(probs, vv).reshape({hq, dim});
        const at::Tensor ours = out_rows[static_cast<std::int64_t>(i)].to(at::kFloat);
        const double error =
            (ours - ref).norm().item<double>() / std::max(ref.norm().item<double>(), 1e-30);
        // A row never written stays NaN (outputs are poisoned first): that must fail.
        if (std::isnan(error)) return std::numeric_limits<double>::infinity();
        worst = std::max(worst, error);
    }
    return worst;
}

// `count` distinct entries of `from`, in increasing order (all of them when there are fewer).
std::vector<std::int64_t> sample(const std::vector<std::int64_t>& from, int count,
                                 std::mt19937_64& rng) {
    std::vector<std::int64_t> picked;
    std::sample(from.begin(), from.end(), std::back_inserter(picked),
                static_cast<std::size_t>(std::max(count, 0)), rng);
    return picked;
}

// [T, H, D] -> [1, H * group, T, D], contiguous: the fused SDPA kernels take equal head counts.
at::Tensor heads_first(const at::Tensor& x, std::int64_t group) {
    at::Tensor t = x.permute({1, 0, 2});
    if (group > 1) t = t.repeat_interleave(group, 0);
    return t.contiguous().unsqueeze(0);
}

// Full causal attention through one SDPA backend, forced (no fallback); unavailable with the
// backend's reason when it refuses the shape or the GPU. `timed` false: only whether it runs
// (available, no time), for a caller that times it with other parts.
template <typename Call>
BenchTime time_sdpa(Call&& call, const AttentionBenchOptions& o, cudaStream_t stream,
                    bool timed = true) {
    try {
        call();
        if (timed) return median_time(call, o.warmup, o.repeat, stream);
        BenchTime t;
        t.available = true;
        return t;
    } catch (const c10::OutOfMemoryError&) {
        throw;
    } catch (const c10::Error& e) {
        BenchTime t;
        t.reason = first_line(e.what_without_backtrace());
        return t;
    }
}

void validate(const AttentionBenchOptions& o) {
    if (o.tokens.empty() || o.fractions.empty() || o.shapes.empty()) {
        fail("", "bench attention: the grid is empty (give --tokens, --fractions and --shapes)");
    }
    for (std::int64_t t : o.tokens) {
        if (t < 1 || t > std::numeric_limits<std::int32_t>::max()) {
            fail("", "--tokens: " + std::to_string(t) + " is not a length in 1 .. 2^31-1");
        }
    }
    for (double f : o.fractions) {
        if (!(f >= 0.0 && f <= 1.0)) {
            fail("", "--fractions: " + std::to_string(f) + " is not a fraction in [0, 1]");
        }
    }
    for (const AttentionHeads& h : o.shapes) {
        if (h.q_heads < 1 || h.kv_heads < 1 || h.q_heads % h.kv_heads != 0 ||
            (h.head_dim != 64 && h.head_dim != 128)) {
            fail("", "--shapes: " + std::to_string(h.q_heads) + "/" + std::to_string(h.kv_heads) +
                         "/" + std::to_string(h.head_dim) +
                         " needs Hq a multiple of Hkv and head dim 64 or 128");
        }
    }
    if (o.window < 1) fail("", "--window: must be at least 1");
    if (o.repeat < 1 || o.warmup < 0) fail("", "--repeat: must be at least 1");
}

// The rows of one (tokens, shape) pair: one per routed fraction, baselines shared.
void bench_one(const AttentionBenchOptions& o, std::int64_t tokens, const AttentionHeads& heads,
               const at::Device& device, cudaStream_t stream, std::vector<AttentionBenchRow>& out) {
    const std::int64_t hq = heads.q_heads;
    const std::int64_t hkv = heads.kv_heads;
    const std::int64_t dim = heads.head_dim;
    const std::string label = shape_label(tokens, heads);
    const auto element_options =
        at::TensorOptions().dtype(o.fp16 ? at::kHalf : at::kBFloat16).device(device);
    const kernels::ElementType element =
        o.fp16 ? kernels::ElementType::fp16 : kernels::ElementType::bf16;
    at::manual_seed(o.seed);
    const at::Tensor q = at::randn({tokens, hq, dim}, element_options);
    const at::Tensor k = at::randn({tokens, hkv, dim}, element_options);
    const at::Tensor v = at::randn({tokens, hkv, dim}, element_options);
    const double pair_flop = 4.0 * static_cast<double>(dim * hq);

    // Baselines, once per (tokens, shape); interleaved, cuDNN is only tried here and timed with
    // each row's parts.
    if (o.progress) o.progress(label + " SDPA baselines");
    const std::int64_t group = hq / hkv;
    // Held through the rows only when cuDNN runs with them (interleaved): with the KV heads
    // repeated for each query head they take as much memory as the rest of the bench.
    at::Tensor qh = heads_first(q, 1);
    at::Tensor kh = heads_first(k, group);
    at::Tensor vh = heads_first(v, group);
    const std::function<void()> run_cudnn = [&] {
        at::_scaled_dot_product_cudnn_attention(qh, kh, vh, std::nullopt,
                                                /*compute_log_sumexp=*/false, 0.0,
                                                /*is_causal=*/true);
    };
    const BenchTime cudnn = time_sdpa(run_cudnn, o, stream, !o.interleaved);
    const BenchTime flash = time_sdpa(
        [&] { at::_scaled_dot_product_flash_attention(qh, kh, vh, 0.0, /*is_causal=*/true); }, o,
        stream);
    if (!o.interleaved || !cudnn.available) {
        qh = at::Tensor();
        kh = at::Tensor();
        vh = at::Tensor();
    }

    kernels::AttentionShape shape;
    shape.tokens = tokens;
    shape.q_heads = heads.q_heads;
    shape.kv_heads = heads.kv_heads;
    shape.head_dim = heads.head_dim;
    shape.element_type = element;

    // The local part does not depend on the routing: run and check it once.
    const at::Tensor local_out = at::empty({tokens, hq, dim}, element_options);
    kernels::SlidingWindowAttentionArgs local_args;
    local_args.shape = shape;
    local_args.q = read_view(q);
    local_args.k = read_view(k);
    local_args.v = read_view(v);
    local_args.out = write_view(local_out);
    local_args.window = o.window;
    const auto run_local = [&] { kernels::sliding_window_attention_forward(local_args, stream); };

    std::mt19937_64 rng(o.seed ^ static_cast<std::uint64_t>(tokens * 1000003 + hq * 131 + hkv));
    if (o.progress) o.progress(label + " checking the local part");
    local_out.fill_(std::numeric_limits<float>::quiet_NaN());
    run_local();
    std::vector<std::int64_t> all_rows(static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) all_rows[static_cast<std::size_t>(t)] = t;
    std::vector<std::int64_t> local_rows = sample(all_rows, o.check_rows - 1, rng);
    if (std::find(local_rows.begin(), local_rows.end(), tokens - 1) == local_rows.end()) {
        local_rows.push_back(tokens - 1);  // the longest window, and the edge of the grid
    }
    const at::Tensor local_index =
        at::tensor(local_rows, at::TensorOptions().dtype(at::kLong)).to(device);
    const double local_error =
        max_row_error(q.index_select(0, local_index), local_out.index_select(0, local_index),
                      local_rows, k, v, o.window);
    if (!(local_error <= o.tolerance)) {
        fail("",
             "bench attention: the sliding-window kernel disagrees with the fp32 reference at " +
                 label + " W=" + std::to_string(o.window) + ": relative error " +
                 std::to_string(local_error) + " > " + std::to_string(o.tolerance));
    }
    double local_flop = 0;
    for (std::int64_t t = 0; t < tokens; ++t) {
        local_flop += static_cast<double>(std::min(t + 1, o.window));
    }
    local_flop *= pair_flop;
    const double full_flop =
        pair_flop * 0.5 * static_cast<double>(tokens) * static_cast<double>(tokens + 1);

    const std::size_t workspace_bytes = kernels::routed_compaction_workspace_bytes(tokens);
    const at::Tensor workspace =
        at::empty({static_cast<std::int64_t>(std::max<std::size_t>(workspace_bytes, 1))},
                  at::TensorOptions().dtype(at::kByte).device(device));
    const auto int32 = at::TensorOptions().dtype(at::kInt).device(device);
    const at::Tensor positions = at::empty({tokens}, int32);
    const at::Tensor count = at::empty({1}, int32);
    // The residual stream that the gated add writes into: [T, Hq * D], like h in the engine.
    const at::Tensor residual = at::randn({tokens, hq * dim}, element_options);

    for (double fraction : o.fractions) {
        char fraction_text[32];
        std::snprintf(fraction_text, sizeof fraction_text, "%g%%", fraction * 100);
        const std::string case_label = label + " routed " + fraction_text;
        if (o.progress) o.progress(case_label);
        at::manual_seed(o.seed + 1);
        const at::Tensor decisions =
            (at::rand({tokens}, at::TensorOptions().dtype(at::kFloat).device(device)) < fraction)
                .to(at::kByte);
        const at::Tensor decisions_host = decisions.cpu();
        const std::uint8_t* d = decisions_host.data_ptr<std::uint8_t>();
        std::vector<std::int64_t> routed_rows;
        double global_flop = 0;
        for (std::int64_t t = 0; t < tokens; ++t) {
            if (d[t]) {
                routed_rows.push_back(t);
                global_flop += static_cast<double>(t + 1);
            }
        }
        global_flop *= pair_flop;
        const std::int64_t routed = static_cast<std::int64_t>(routed_rows.size());

        // Packed queries, as the engine projects them: row i is the routed query i. Gathered
        // once, outside the timed region (in the engine it is the projection's output).
        const std::int64_t packed_rows = std::max<std::int64_t>(routed, 1);
        at::Tensor q_packed = at::empty({packed_rows, hq, dim}, element_options);
        const at::Tensor routed_index =
            at::tensor(routed_rows, at::TensorOptions().dtype(at::kLong)).to(device);
        if (routed > 0) q_packed.narrow(0, 0, routed).copy_(q.index_select(0, routed_index));
        const at::Tensor global_out = at::empty({packed_rows, hq, dim}, element_options);

        kernels::GlobalAttentionArgs global_args;
        global_args.shape = shape;
        global_args.q = read_view(q_packed);
        global_args.k = read_view(k);
        global_args.v = read_view(v);
        global_args.out = write_view(global_out);
        global_args.routed_positions = positions.data_ptr<std::int32_t>();
        global_args.routed_count = count.data_ptr<std::int32_t>();
        global_args.packed = true;

        kernels::ScatterAddArgs add_args;
        add_args.element_type = element;
        add_args.tokens = tokens;
        add_args.cols = static_cast<int>(hq * dim);
        add_args.dst = residual.data_ptr();
        add_args.dst_row_stride = residual.stride(0);
        add_args.src = global_out.data_ptr();
        add_args.src_row_stride = hq * dim;
        add_args.positions = positions.data_ptr<std::int32_t>();
        add_args.count = count.data_ptr<std::int32_t>();

        const auto run_global = [&] {
            kernels::compact_routed_queries(
                decisions.data_ptr<std::uint8_t>(), tokens, positions.data_ptr<std::int32_t>(),
                count.data_ptr<std::int32_t>(), workspace.data_ptr(), workspace_bytes, stream);
            kernels::global_attention_forward(global_args, stream);
            kernels::scatter_add_rows(add_args, stream);
        };

        // Check: the compaction exactly, then sampled rows of the attention against fp32.
        if (o.progress) o.progress(case_label + " checking the global part");
        positions.fill_(-1);
        count.fill_(-1);
        global_out.fill_(std::numeric_limits<float>::quiet_NaN());
        kernels::compact_routed_queries(
            decisions.data_ptr<std::uint8_t>(), tokens, positions.data_ptr<std::int32_t>(),
            count.data_ptr<std::int32_t>(), workspace.data_ptr(), workspace_bytes, stream);
        kernels::global_attention_forward(global_args, stream);
        const std::int64_t got_count = count.item<std::int32_t>();
        bool same_positions = got_count == routed;
        if (same_positions && routed > 0) {
            same_positions = at::equal(positions.narrow(0, 0, routed).to(at::kLong), routed_index);
        }
        if (!same_positions) {
            fail("", "bench attention: routed-query compaction is wrong at " + case_label + ": " +
                         std::to_string(got_count) + " positions for " + std::to_string(routed) +
                         " routed tokens, or not the routed ones in order");
        }
        double global_error = 0.0;
        if (routed > 0) {
            std::vector<std::int64_t> all_packed(static_cast<std::size_t>(routed));
            for (std::int64_t i = 0; i < routed; ++i) all_packed[static_cast<std::size_t>(i)] = i;
            std::vector<std::int64_t> picked = sample(all_packed, o.check_rows - 1, rng);
            if (picked.empty() || picked.back() != routed - 1) picked.push_back(routed - 1);
            std::vector<std::int64_t> picked_positions;
            for (std::int64_t i : picked) {
                picked_positions.push_back(routed_rows[static_cast<std::size_t>(i)]);
            }
            const at::Tensor picked_index =
                at::tensor(picked, at::TensorOptions().dtype(at::kLong)).to(device);
            global_error =
                max_row_error(q_packed.index_select(0, picked_index),
                              global_out.index_select(0, picked_index), picked_positions, k, v, 0);
        }
        if (!(global_error <= o.tolerance)) {
            fail("",
                 "bench attention: the global attention kernel disagrees with the fp32 "
                 "reference at " +
                     case_label + ": relative error " + std::to_string(global_error) + " > " +
                     std::to_string(o.tolerance));
        }

        if (o.progress) o.progress(case_label + " timing");
        AttentionBenchRow row;
        row.tokens = tokens;
        row.heads = heads;
        row.fraction = fraction;
        row.routed = routed;
        row.global_flop = global_flop;
        row.local_flop = local_flop;
        row.full_flop = full_flop;
        const auto run_whole = [&] {
            run_local();
            run_global();
        };
        row.cudnn = cudnn;
        row.flash = flash;
        if (o.interleaved) {
            std::vector<std::function<void()>> parts = {run_global, run_local, run_whole};
            if (cudnn.available) parts.push_back(run_cudnn);
            const std::vector<BenchTime> times =
                interleaved_times(parts, o.warmup, o.repeat, stream);
            row.global = times[0];
            row.local = times[1];
            row.whole = times[2];
            if (cudnn.available) row.cudnn = times[3];
        } else {
            row.global = median_time(run_global, o.warmup, o.repeat, stream);
            row.local = median_time(run_local, o.warmup, o.repeat, stream);
            row.whole = median_time(run_whole, o.warmup, o.repeat, stream);
        }
        row.global_error = global_error;
        row.local_error = local_error;
        out.push_back(row);
    }
}

}  // namespace

AttentionBenchResult bench_attention(const AttentionBenchOptions& options) {
    validate(options);
    if (const auto device = parse_device(options.device); !device || !device->is_cuda()) {
        fail("", "--device: bench attention runs on a CUDA device (cuda or cuda:N), not '" +
                     options.device + "'");
    }
    const at::Device device = resolve_device(options.device);
    const c10::cuda::CUDAGuard guard(device.index());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
    at::NoGradGuard no_grad;
    AttentionBenchResult result;
    result.device = device_label(device);
    for (const AttentionHeads& heads : options.shapes) {
        for (std::int64_t tokens : options.tokens) {
            try {
                bench_one(options, tokens, heads, device, stream, result.rows);
            } catch (const kernels::KernelError& e) {
                fail("", "bench attention at " + shape_label(tokens, heads) + ": " + e.what());
            } catch (const c10::OutOfMemoryError&) {
                fail("", out_of_memory_message(device, "bench attention",
                                               shape_label(tokens, heads), "try fewer --tokens"));
            }
            // Free this size's tensors before the next one is allocated.
            c10::cuda::CUDACachingAllocator::emptyCache();
        }
    }
    return result;
}

}  // namespace l2a
