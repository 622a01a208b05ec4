// Host side of global and sliding-window attention: argument validation, and the one
// dispatcher that picks the path (the Hopper wgmma kernels of attention_sm90.cu where the device
// and the build allow, else the mma.sync kernels of attention_kernel.cuh) and the kernel
// instantiation by element type and head dim.
//
// Environment variable L2A_ATTENTION_PATH=mma|wgmma forces a path (unset or empty: automatic);
// forcing wgmma where it cannot run is an error.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "attention_kernel.cuh"
#include "attention_sm90.h"
#include "l2a/kernels/attention.h"
#include "launch_check.h"

namespace l2a::kernels {
namespace {

using detail::AttentionParams;
using detail::fail;

constexpr int kMaxGridY = 65535;

void validate_shape(const std::string& where, const AttentionShape& shape) {
    if (shape.tokens < 0 || shape.tokens > INT32_MAX) {
        fail(where, "tokens (" + std::to_string(shape.tokens) + ") must be in [0, 2^31 - 1]");
    }
    if (shape.q_heads <= 0 || shape.kv_heads <= 0) {
        fail(where, "q_heads (" + std::to_string(shape.q_heads) + ") and kv_heads (" +
                        std::to_string(shape.kv_heads) + ") must be positive");
    }
    if (shape.q_heads % shape.kv_heads != 0) {
        fail(where, "q_heads (" + std::to_string(shape.q_heads) +
                        ") is not a multiple of kv_heads (" + std::to_string(shape.kv_heads) + ")");
    }
    if (shape.q_heads > kMaxGridY) {
        fail(where, "q_heads (" + std::to_string(shape.q_heads) + ") exceeds " +
                        std::to_string(kMaxGridY));
    }
    if (shape.head_dim != 64 && shape.head_dim != 128) {
        fail(where, "head_dim " + std::to_string(shape.head_dim) + " is not supported (64 or 128)");
    }
    if (shape.element_type != ElementType::bf16 && shape.element_type != ElementType::fp16) {
        fail(where, "unknown element type");
    }
}

void validate_tensor(const std::string& where, const std::string& name, const void* data,
                     int64_t token_stride, int64_t head_stride) {
    if (data == nullptr) fail(where, name + " is null");
    if (reinterpret_cast<uintptr_t>(data) % 16 != 0) {
        fail(where, name + " is not 16-byte aligned");
    }
    if (token_stride < 0 || head_stride < 0 || token_stride % 8 != 0 || head_stride % 8 != 0) {
        fail(where, name + " strides (token " + std::to_string(token_stride) + ", head " +
                        std::to_string(head_stride) +
                        ") must be non-negative multiples of 8 elements");
    }
}

AttentionParams make_params(const AttentionShape& shape, const ConstTokenHeadTensor& q,
                            const ConstTokenHeadTensor& k, const ConstTokenHeadTensor& v,
                            const TokenHeadTensor& out, float* lse) {
    constexpr double kLog2e = 1.4426950408889634;
    AttentionParams params{};
    params.q = q.data;
    params.k = k.data;
    params.v = v.data;
    params.out = out.data;
    params.lse = lse;
    params.q_token_stride = q.token_stride;
    params.q_head_stride = q.head_stride;
    params.k_token_stride = k.token_stride;
    params.k_head_stride = k.head_stride;
    params.v_token_stride = v.token_stride;
    params.v_head_stride = v.head_stride;
    params.out_token_stride = out.token_stride;
    params.out_head_stride = out.head_stride;
    params.tokens = static_cast<int>(shape.tokens);
    params.q_per_kv = shape.q_heads / shape.kv_heads;
    params.scale_log2 = static_cast<float>(kLog2e / std::sqrt(static_cast<double>(shape.head_dim)));
    return params;
}

void validate_common(const std::string& where, const AttentionShape& shape,
                     const ConstTokenHeadTensor& q, const ConstTokenHeadTensor& k,
                     const ConstTokenHeadTensor& v, const TokenHeadTensor& out, const float* lse) {
    validate_shape(where, shape);
    if (shape.tokens == 0) return;
    validate_tensor(where, "q", q.data, q.token_stride, q.head_stride);
    validate_tensor(where, "k", k.data, k.token_stride, k.head_stride);
    validate_tensor(where, "v", v.data, v.token_stride, v.head_stride);
    validate_tensor(where, "out", out.data, out.token_stride, out.head_stride);
    if (lse != nullptr && reinterpret_cast<uintptr_t>(lse) % alignof(float) != 0) {
        fail(where, "lse is not 4-byte aligned");
    }
}

template <typename Element, int HeadDim, typename QuerySet, typename KeyRange>
void launch(const std::string& where, const AttentionParams& params, int q_heads,
            int64_t max_query_rows, cudaStream_t stream) {
    using Traits = typename detail::DefaultAttentionTraits<HeadDim>::type;
    const auto kernel = detail::attention_forward_kernel<Element, Traits, QuerySet, KeyRange>;
    const std::string name = std::string("attention_forward_kernel<") +
                             detail::ElementOps<Element>::kName + ", D=" + std::to_string(HeadDim) +
                             ", " + QuerySet::kName + " queries, " + KeyRange::kName + " keys>";
    detail::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(Traits::kSmemBytes)),
                       where, "cudaFuncSetAttribute for " + name);
    const dim3 grid(static_cast<unsigned>((max_query_rows + Traits::kBlockM - 1) / Traits::kBlockM),
                    static_cast<unsigned>(q_heads));
    kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(params);
    detail::check_launch(where, name);
}

enum class Path { automatic, mma, wgmma };

// Read at every call (cheap next to a launch) so that tests can switch paths in one process.
Path requested_path(const std::string& where) {
    const char* value = std::getenv("L2A_ATTENTION_PATH");
    if (value == nullptr || value[0] == '\0') return Path::automatic;
    const std::string text(value);
    if (text == "mma") return Path::mma;
    if (text == "wgmma") return Path::wgmma;
    fail(where, "environment variable L2A_ATTENTION_PATH is \"" + text +
                    "\"; expected \"mma\", \"wgmma\" or unset");
}

// Whether the Hopper kernel may pair its blocks (L2A_SM90_PAIRS: "1" or unset, or "0" to time
// and test the unpaired kernel); read at every call, as the path.
bool requested_pairs(const std::string& where) {
    const char* value = std::getenv("L2A_SM90_PAIRS");
    if (value == nullptr || value[0] == '\0') return true;
    const std::string text(value);
    if (text == "1") return true;
    if (text == "0") return false;
    fail(where,
         "environment variable L2A_SM90_PAIRS is \"" + text + "\"; expected \"0\", \"1\" or unset");
}

// The one dispatcher: path, then element type x head dim, for a given query-set and key-range
// policy.
template <typename QuerySet, typename KeyRange>
void dispatch(const std::string& where, const AttentionShape& shape, const AttentionParams& params,
              cudaStream_t stream, bool lse_only = false) {
    const Path path = requested_path(where);
    const bool pairs = requested_pairs(where);
    if (path == Path::wgmma && !detail::sm90_attention_available()) {
        fail(where, "L2A_ATTENTION_PATH=wgmma, but the wgmma path cannot run here: " +
                        detail::sm90_attention_unavailable_reason());
    }
    if (path != Path::mma && detail::sm90_attention_available()) {
        if (detail::sm90_attention_launch<QuerySet, KeyRange>(where, shape, params, stream,
                                                              lse_only, pairs)) {
            return;
        }
        if (path == Path::wgmma) {
            fail(where,
                 "L2A_ATTENTION_PATH=wgmma, but K or V cannot be described by a tensor "
                 "map (token strides " +
                     std::to_string(params.k_token_stride) + " / " +
                     std::to_string(params.v_token_stride) + ", head strides " +
                     std::to_string(params.k_head_stride) + " / " +
                     std::to_string(params.v_head_stride) + ")");
        }
    }
    const int64_t rows = shape.tokens;  // the worst case; the kernel reads the real count
    const bool bf16 = shape.element_type == ElementType::bf16;
    if (shape.head_dim == 64) {
        if (bf16) {
            launch<__nv_bfloat16, 64, QuerySet, KeyRange>(where, params, shape.q_heads, rows,
                                                          stream);
        } else {
            launch<__half, 64, QuerySet, KeyRange>(where, params, shape.q_heads, rows, stream);
        }
    } else {
        if (bf16) {
            launch<__nv_bfloat16, 128, QuerySet, KeyRange>(where, params, shape.q_heads, rows,
                                                           stream);
        } else {
            launch<__half, 128, QuerySet, KeyRange>(where, params, shape.q_heads, rows, stream);
        }
    }
}

}  // namespace

namespace detail {

std::string& last_launch_name() {
    thread_local std::string name;
    return name;
}

}  // namespace detail

std::string last_kernel_launched() { return detail::last_launch_name(); }

void global_attention_forward(const GlobalAttentionArgs& args, cudaStream_t stream) {
    const std::string where = "global_attention_forward";
    detail::last_launch_name().clear();  // a call that launches nothing leaves no stale name
    validate_common(where, args.shape, args.q, args.k, args.v, args.out, args.lse);
    if (args.shape.tokens == 0) return;
    if (args.routed_positions == nullptr) fail(where, "routed_positions is null");
    if (args.routed_count == nullptr) fail(where, "routed_count is null");
    AttentionParams params = make_params(args.shape, args.q, args.k, args.v, args.out, args.lse);
    params.routed_positions = args.routed_positions;
    params.routed_count = args.routed_count;
    params.packed = args.packed;
    dispatch<detail::RoutedQueries, detail::CausalKeys>(where, args.shape, params, stream);
}

void sliding_window_attention_forward(const SlidingWindowAttentionArgs& args, cudaStream_t stream) {
    const std::string where = "sliding_window_attention_forward";
    detail::last_launch_name().clear();
    validate_common(where, args.shape, args.q, args.k, args.v, args.out, args.lse);
    if (args.window < 1) {
        fail(where, "window (" + std::to_string(args.window) + ") must be at least 1");
    }
    if (args.shape.tokens == 0) return;
    AttentionParams params = make_params(args.shape, args.q, args.k, args.v, args.out, args.lse);
    // A window past the sequence end is plain causal attention; clamping keeps it in int range.
    params.window = static_cast<int>(std::min<int64_t>(args.window, args.shape.tokens));
    if (args.lse_only && args.lse == nullptr) fail(where, "lse_only needs lse");
    dispatch<detail::AllQueries, detail::WindowKeys>(where, args.shape, params, stream,
                                                     args.lse_only);
}

}  // namespace l2a::kernels
