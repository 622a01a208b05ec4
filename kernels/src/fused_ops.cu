// The small per-token operators of an L2A layer: residual add + RMSNorm (+ router logit), RoPE
// with QK-norm, the gated scatter-add of routed rows, and the MLP's SiLU-gated product. Each is
// bound by memory traffic, so each element is read and written once, in 16-byte vectors of 8
// elements, with fp32 arithmetic in registers. Roundings to the element type happen where
// HuggingFace's Qwen modules round, so the results match the reference model rather than an
// idealized fp32 pipeline.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "l2a/kernels/fused_ops.h"
#include "launch_check.h"

namespace l2a::kernels {
namespace {

using detail::fail;

constexpr int kVectorElements = 8;  // 16-bit elements per 16-byte vector
constexpr int kMaxNormCols = 16384;

// ---- 16-bit element vectors -----------------------------------------------------------------

template <typename Element>
struct ElementPairs;

template <>
struct ElementPairs<__nv_bfloat16> {
    using Pair = __nv_bfloat162;
    static constexpr const char* kName = "bf16";
    __device__ static float2 to_float2(Pair pair) { return __bfloat1622float2(pair); }
    __device__ static Pair from_floats(float low, float high) {
        return __floats2bfloat162_rn(low, high);
    }
};

template <>
struct ElementPairs<__half> {
    using Pair = __half2;
    static constexpr const char* kName = "fp16";
    __device__ static float2 to_float2(Pair pair) { return __half22float2(pair); }
    __device__ static Pair from_floats(float low, float high) {
        return __floats2half2_rn(low, high);
    }
};

template <typename Element>
__device__ __forceinline__ void unpack(const uint4& packed, float (&values)[kVectorElements]) {
    using Pairs = ElementPairs<Element>;
    const auto* pairs = reinterpret_cast<const typename Pairs::Pair*>(&packed);
#pragma unroll
    for (int i = 0; i < kVectorElements / 2; ++i) {
        const float2 pair = Pairs::to_float2(pairs[i]);
        values[2 * i] = pair.x;
        values[2 * i + 1] = pair.y;
    }
}

// Rounds to the element type (nearest even).
template <typename Element>
__device__ __forceinline__ uint4 pack(const float (&values)[kVectorElements]) {
    using Pairs = ElementPairs<Element>;
    uint4 packed;
    auto* pairs = reinterpret_cast<typename Pairs::Pair*>(&packed);
#pragma unroll
    for (int i = 0; i < kVectorElements / 2; ++i) {
        pairs[i] = Pairs::from_floats(values[2 * i], values[2 * i + 1]);
    }
    return packed;
}

// values = the element-type rounding of values, kept in fp32: what the next step of the
// reference model sees after a tensor was stored in 16 bits.
template <typename Element>
__device__ __forceinline__ uint4 round_in_place(float (&values)[kVectorElements]) {
    const uint4 packed = pack<Element>(values);
    unpack<Element>(packed, values);
    return packed;
}

// Read-only data (weights, tables) goes through the non-coherent cache; activations do not,
// since sum_out may alias x or residual, and RoPE works in place.
__device__ __forceinline__ uint4 load_read_only(const uint4* address) { return __ldg(address); }

// ---- residual add + RMSNorm + router logit --------------------------------------------------

struct AddRmsNormParams {
    const uint4* x;
    int64_t x_stride;  // in vectors
    const uint4* residual;
    int64_t residual_stride;
    uint4* sum_out;
    int64_t sum_stride;
    const uint4* weight;
    uint4* y;
    int64_t y_stride;
    const uint4* router_weight;
    float* router_logits;
    int vectors;  // per row
    float cols;
    float eps;
};

// Sum over the block; every thread gets the total. scratch holds one float per warp and is not
// reused by the caller for anything else.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    const int warps = blockDim.x / 32;
    if (warps == 1) return value;
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = value;
    __syncthreads();
    float total = 0.0f;
    for (int warp = 0; warp < warps; ++warp) total += scratch[warp];
    return total;
}

// One row per block; each thread holds VectorsPerThread vectors of the row in registers between
// the sum of squares and the scaling, so x and residual are read from memory once.
template <typename Element, int VectorsPerThread>
__global__ void __launch_bounds__(256) add_rms_norm_kernel(AddRmsNormParams params) {
    __shared__ float square_scratch[32];
    __shared__ float logit_scratch[32];
    const int64_t row = blockIdx.x;
    const uint4* x = params.x + row * params.x_stride;
    const uint4* residual =
        params.residual != nullptr ? params.residual + row * params.residual_stride : nullptr;
    uint4* sum_out = params.sum_out != nullptr ? params.sum_out + row * params.sum_stride : nullptr;

    float values[VectorsPerThread][kVectorElements];
    float sum_squares = 0.0f;
#pragma unroll
    for (int i = 0; i < VectorsPerThread; ++i) {
        const int vector = threadIdx.x + i * blockDim.x;
        if (vector < params.vectors) {
            unpack<Element>(x[vector], values[i]);
            if (residual != nullptr) {
                float added[kVectorElements];
                unpack<Element>(residual[vector], added);
#pragma unroll
                for (int e = 0; e < kVectorElements; ++e) values[i][e] += added[e];
                // The reference model stores the sum in 16 bits and normalizes that.
                const uint4 sum = round_in_place<Element>(values[i]);
                if (sum_out != nullptr) sum_out[vector] = sum;
            }
#pragma unroll
            for (int e = 0; e < kVectorElements; ++e) sum_squares += values[i][e] * values[i][e];
        }
    }
    const float total_squares = block_sum(sum_squares, square_scratch);
    const float inverse_rms = rsqrtf(total_squares / params.cols + params.eps);

    uint4* y = params.y + row * params.y_stride;
    float logit = 0.0f;
#pragma unroll
    for (int i = 0; i < VectorsPerThread; ++i) {
        const int vector = threadIdx.x + i * blockDim.x;
        if (vector < params.vectors) {
            float normalized[kVectorElements];
#pragma unroll
            for (int e = 0; e < kVectorElements; ++e) normalized[e] = values[i][e] * inverse_rms;
            round_in_place<Element>(normalized);  // HF: x * rsqrt(...) cast to the input dtype
            float weight[kVectorElements];
            unpack<Element>(load_read_only(params.weight + vector), weight);
#pragma unroll
            for (int e = 0; e < kVectorElements; ++e) normalized[e] *= weight[e];
            y[vector] = round_in_place<Element>(normalized);
            if (params.router_weight != nullptr) {
                float router[kVectorElements];
                unpack<Element>(load_read_only(params.router_weight + vector), router);
#pragma unroll
                for (int e = 0; e < kVectorElements; ++e) logit += normalized[e] * router[e];
            }
        }
    }
    if (params.router_weight != nullptr) {
        const float total_logit = block_sum(logit, logit_scratch);
        if (threadIdx.x == 0) params.router_logits[row] = total_logit;
    }
}

// ---- QK-norm + RoPE -------------------------------------------------------------------------

struct RopeParams {
    void* data;
    int64_t token_stride;  // elements
    int64_t head_stride;
    int64_t items;  // rows x heads
    int heads;
    const uint4* norm_weight;
    float eps;
    const float* cos;
    const float* sin;
    int64_t table_rows;
    const int32_t* positions;
};

constexpr int kRopeThreads = 256;

// One row-head per group of HeadDim / 8 lanes, 8 elements per lane. Lane l of a group holds
// elements 8l..8l+7; their rotate-half partners sit HeadDim / 2 elements away, in lane
// l ^ (group / 2), so both the norm's sum and the rotation stay in registers and shuffles.
template <typename Element, int HeadDim>
__global__ void __launch_bounds__(kRopeThreads) rope_kernel(RopeParams params) {
    constexpr int kGroupLanes = HeadDim / kVectorElements;
    static_assert(32 % kGroupLanes == 0, "a row-head's lanes stay inside one warp");
    const int64_t thread = int64_t(blockIdx.x) * kRopeThreads + threadIdx.x;
    const int lane = threadIdx.x % kGroupLanes;
    // Threads past the last row-head redo the last one without storing it, so that every lane
    // of the warp takes part in the shuffles.
    const bool stores = thread / kGroupLanes < params.items;
    const int64_t item = stores ? thread / kGroupLanes : params.items - 1;
    const int64_t row = item / params.heads;
    const int64_t head = item % params.heads;

    auto* vector_address =
        reinterpret_cast<uint4*>(static_cast<Element*>(params.data) + row * params.token_stride +
                                 head * params.head_stride + lane * kVectorElements);
    float values[kVectorElements];
    unpack<Element>(*vector_address, values);

    if (params.norm_weight != nullptr) {
        float sum_squares = 0.0f;
#pragma unroll
        for (int e = 0; e < kVectorElements; ++e) sum_squares += values[e] * values[e];
#pragma unroll
        for (int offset = kGroupLanes / 2; offset > 0; offset /= 2) {
            sum_squares += __shfl_xor_sync(0xffffffffu, sum_squares, offset);
        }
        const float inverse_rms = rsqrtf(sum_squares / float(HeadDim) + params.eps);
#pragma unroll
        for (int e = 0; e < kVectorElements; ++e) values[e] *= inverse_rms;
        round_in_place<Element>(values);
        float weight[kVectorElements];
        unpack<Element>(load_read_only(params.norm_weight + lane), weight);
#pragma unroll
        for (int e = 0; e < kVectorElements; ++e) values[e] *= weight[e];
        round_in_place<Element>(values);  // q_norm / k_norm output is a 16-bit tensor
    }

    float partner[kVectorElements];
#pragma unroll
    for (int e = 0; e < kVectorElements; ++e) {
        partner[e] = __shfl_xor_sync(0xffffffffu, values[e], kGroupLanes / 2);
    }

    const int64_t position = params.positions != nullptr ? params.positions[row] : row;
    // A position outside the table cannot be reported from here without a host sync; its
    // row-head becomes NaN, which surfaces downstream, instead of a read past the table.
    const bool in_table = position >= 0 && position < params.table_rows;
    const int64_t table_offset = (in_table ? position : 0) * HeadDim + lane * kVectorElements;
    const auto* cos4 = reinterpret_cast<const float4*>(params.cos + table_offset);
    const auto* sin4 = reinterpret_cast<const float4*>(params.sin + table_offset);
    const float4 cos_low = __ldg(cos4);
    const float4 cos_high = __ldg(cos4 + 1);
    const float4 sin_low = __ldg(sin4);
    const float4 sin_high = __ldg(sin4 + 1);
    const float cosines[kVectorElements] = {cos_low.x,  cos_low.y,  cos_low.z,  cos_low.w,
                                            cos_high.x, cos_high.y, cos_high.z, cos_high.w};
    const float sines[kVectorElements] = {sin_low.x,  sin_low.y,  sin_low.z,  sin_low.w,
                                          sin_high.x, sin_high.y, sin_high.z, sin_high.w};

    // rotate_half(x) = cat(-x[D/2:], x[:D/2]): the first half takes minus its partner.
    const float sign = lane < kGroupLanes / 2 ? -1.0f : 1.0f;
    float rotated[kVectorElements];
#pragma unroll
    for (int e = 0; e < kVectorElements; ++e) {
        rotated[e] = in_table ? values[e] * cosines[e] + sign * partner[e] * sines[e]
                              : __int_as_float(0x7fffffff);
    }
    if (stores) *vector_address = pack<Element>(rotated);
}

// ---- gated scatter-add ------------------------------------------------------------------------

struct ScatterAddParams {
    uint4* dst;
    int64_t dst_stride;  // vectors
    const uint4* src;
    int64_t src_stride;
    const int32_t* positions;
    const int32_t* count;
    int tokens;
    int vectors;  // per row
};

constexpr int kScatterThreads = 256;
constexpr int kScatterWarps = kScatterThreads / 32;
constexpr int kScatterUnroll = 4;  // vectors in flight per lane

// One routed row per warp, warps striding over the routed rows; the grid is sized for the
// machine, not for the count, which only the device knows.
template <typename Element>
__global__ void __launch_bounds__(kScatterThreads) scatter_add_kernel(ScatterAddParams params) {
    // Clamped so that a bad count cannot walk past the positions that exist.
    const int count = min(max(*params.count, 0), params.tokens);
    const int lane = threadIdx.x % 32;
    for (int routed = blockIdx.x * kScatterWarps + threadIdx.x / 32; routed < count;
         routed += gridDim.x * kScatterWarps) {
        const int position = params.positions[routed];
        if (position < 0 || position >= params.tokens) continue;  // no such row to add to
        uint4* __restrict__ dst = params.dst + int64_t(position) * params.dst_stride;
        const uint4* __restrict__ src = params.src + int64_t(routed) * params.src_stride;
        for (int first = lane; first < params.vectors; first += 32 * kScatterUnroll) {
            uint4 dst_vectors[kScatterUnroll];
            uint4 src_vectors[kScatterUnroll];
#pragma unroll
            for (int u = 0; u < kScatterUnroll; ++u) {
                const int vector = first + u * 32;
                if (vector < params.vectors) {
                    dst_vectors[u] = dst[vector];
                    src_vectors[u] = src[vector];
                }
            }
#pragma unroll
            for (int u = 0; u < kScatterUnroll; ++u) {
                const int vector = first + u * 32;
                if (vector < params.vectors) {
                    float sum[kVectorElements];
                    float added[kVectorElements];
                    unpack<Element>(dst_vectors[u], sum);
                    unpack<Element>(src_vectors[u], added);
#pragma unroll
                    for (int e = 0; e < kVectorElements; ++e) sum[e] += added[e];
                    dst[vector] = pack<Element>(sum);
                }
            }
        }
    }
}

// ---- the MLP's gated activation --------------------------------------------------------------

struct SiluMulParams {
    const uint4* gate;
    int64_t gate_stride;  // in vectors
    const uint4* up;
    int64_t up_stride;
    uint4* out;
    int64_t out_stride;
    int64_t rows;
    int64_t vectors;  // per row
};

constexpr int kSiluMulThreads = 256;

// One 16-byte vector per thread and step, the threads striding over rows x vectors.
template <typename Element>
__global__ void __launch_bounds__(kSiluMulThreads) silu_mul_kernel(SiluMulParams params) {
    using Pairs = ElementPairs<Element>;
    const int64_t total = params.rows * params.vectors;
    for (int64_t i = int64_t(blockIdx.x) * kSiluMulThreads + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * kSiluMulThreads) {
        const int64_t row = i / params.vectors;
        const int64_t vector = i - row * params.vectors;
        float gate[kVectorElements];
        float up[kVectorElements];
        unpack<Element>(params.gate[row * params.gate_stride + vector], gate);
        unpack<Element>(params.up[row * params.up_stride + vector], up);
#pragma unroll
        for (int e = 0; e < kVectorElements; e += 2) {
            // silu(g) = g / (1 + exp(-g)) in fp32, rounded to the element type as the unfused
            // activation's output is, then the product in fp32 (rounded once, by pack).
            const float2 act = Pairs::to_float2(Pairs::from_floats(
                gate[e] / (1.0f + expf(-gate[e])), gate[e + 1] / (1.0f + expf(-gate[e + 1]))));
            gate[e] = act.x * up[e];
            gate[e + 1] = act.y * up[e + 1];
        }
        params.out[row * params.out_stride + vector] = pack<Element>(gate);
    }
}

// ---- host-side validation -------------------------------------------------------------------

void check_element_type(const std::string& where, ElementType type) {
    if (type != ElementType::bf16 && type != ElementType::fp16) {
        fail(where, "unknown element type");
    }
}

void check_aligned(const std::string& where, const std::string& name, const void* pointer,
                   size_t alignment) {
    if (pointer == nullptr) fail(where, name + " is null");
    if (reinterpret_cast<uintptr_t>(pointer) % alignment != 0) {
        fail(where, name + " is not " + std::to_string(alignment) + "-byte aligned");
    }
}

// A [rows, cols] operand: 16-byte aligned base, row stride a non-negative multiple of 8. Rows of
// an output must not overlap, or two blocks would write the same elements.
void check_rows(const std::string& where, const std::string& name, const void* data,
                int64_t row_stride, int64_t rows, int cols, bool written) {
    check_aligned(where, name, data, 16);
    if (row_stride < 0 || row_stride % kVectorElements != 0) {
        fail(where, name + " row stride (" + std::to_string(row_stride) +
                        ") must be a non-negative multiple of 8 elements");
    }
    if (written && rows > 1 && row_stride < cols) {
        fail(where, name + " row stride (" + std::to_string(row_stride) + ") is less than cols (" +
                        std::to_string(cols) + "): rows would overlap");
    }
}

void check_finite_eps(const std::string& where, float eps) {
    if (!std::isfinite(eps) || eps < 0.0f) {
        fail(where, "eps (" + std::to_string(eps) + ") must be finite and non-negative");
    }
}

template <typename Element, int VectorsPerThread>
void launch_add_rms_norm(const std::string& where, const AddRmsNormParams& params, int64_t rows,
                         cudaStream_t stream) {
    const int per_thread = (params.vectors + VectorsPerThread - 1) / VectorsPerThread;
    const int threads = (per_thread + 31) / 32 * 32;
    add_rms_norm_kernel<Element, VectorsPerThread>
        <<<static_cast<unsigned>(rows), threads, 0, stream>>>(params);
    detail::check_launch(where, std::string("add_rms_norm_kernel<") + ElementPairs<Element>::kName +
                                    ", " + std::to_string(VectorsPerThread) +
                                    " vectors per thread>");
}

// The fewest vectors per thread that keep a row within 256 threads: short rows get one vector
// per thread (and a single warp at 256 columns), 16384 columns get 8.
template <typename Element>
void dispatch_add_rms_norm(const std::string& where, const AddRmsNormParams& params, int64_t rows,
                           cudaStream_t stream) {
    if (params.vectors <= 256) {
        launch_add_rms_norm<Element, 1>(where, params, rows, stream);
    } else if (params.vectors <= 512) {
        launch_add_rms_norm<Element, 2>(where, params, rows, stream);
    } else if (params.vectors <= 1024) {
        launch_add_rms_norm<Element, 4>(where, params, rows, stream);
    } else {
        launch_add_rms_norm<Element, 8>(where, params, rows, stream);
    }
}

template <typename Element, int HeadDim>
void launch_rope(const std::string& where, const RopeParams& params, cudaStream_t stream) {
    constexpr int kGroupLanes = HeadDim / kVectorElements;
    const int64_t threads = params.items * kGroupLanes;
    const int64_t blocks = (threads + kRopeThreads - 1) / kRopeThreads;
    if (blocks > INT32_MAX) {
        fail(where, "rows x heads (" + std::to_string(params.items) + ") is too large");
    }
    rope_kernel<Element, HeadDim>
        <<<static_cast<unsigned>(blocks), kRopeThreads, 0, stream>>>(params);
    detail::check_launch(where, std::string("rope_kernel<") + ElementPairs<Element>::kName +
                                    ", D=" + std::to_string(HeadDim) + ">");
}

// The current device's multiprocessors (at least 1), for grids sized to the machine.
int multiprocessor_count(const std::string& where) {
    int device = 0;
    detail::check_cuda(cudaGetDevice(&device), where, "cudaGetDevice");
    int multiprocessors = 0;
    detail::check_cuda(
        cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device), where,
        "cudaDeviceGetAttribute(multiprocessor count)");
    return std::max(multiprocessors, 1);
}

template <typename Element>
void launch_scatter_add(const std::string& where, const ScatterAddParams& params,
                        cudaStream_t stream) {
    const int multiprocessors = multiprocessor_count(where);
    // Enough warps to fill the machine, never more blocks than the worst-case count needs.
    const int64_t needed = (int64_t(params.tokens) + kScatterWarps - 1) / kScatterWarps;
    const int64_t resident = int64_t(multiprocessors) * (2048 / kScatterThreads);
    const auto blocks = static_cast<unsigned>(std::min(needed, resident));
    scatter_add_kernel<Element><<<blocks, kScatterThreads, 0, stream>>>(params);
    detail::check_launch(where,
                         std::string("scatter_add_kernel<") + ElementPairs<Element>::kName + ">");
}

template <typename Element>
void launch_silu_mul(const std::string& where, const SiluMulParams& params, cudaStream_t stream) {
    const int multiprocessors = multiprocessor_count(where);
    // A few waves of resident blocks; never more blocks than vectors.
    const int64_t needed = (params.rows * params.vectors + kSiluMulThreads - 1) / kSiluMulThreads;
    const int64_t resident = int64_t(multiprocessors) * (2048 / kSiluMulThreads) * 4;
    const auto blocks = static_cast<unsigned>(std::min(needed, resident));
    silu_mul_kernel<Element><<<blocks, kSiluMulThreads, 0, stream>>>(params);
    detail::check_launch(where,
                         std::string("silu_mul_kernel<") + ElementPairs<Element>::kName + ">");
}

}  // namespace

void add_rms_norm_forward(const AddRmsNormArgs& args, cudaStream_t stream) {
    const std::string where = "add_rms_norm_forward";
    check_element_type(where, args.element_type);
    if (args.rows < 0 || args.rows > INT32_MAX) {
        fail(where, "rows (" + std::to_string(args.rows) + ") must be in [0, 2^31 - 1]");
    }
    if (args.cols <= 0 || args.cols % kVectorElements != 0 || args.cols > kMaxNormCols) {
        fail(where, "cols (" + std::to_string(args.cols) +
                        ") must be a positive multiple of 8, at most 16384");
    }
    check_finite_eps(where, args.eps);
    if (args.sum_out != nullptr && args.residual == nullptr) {
        fail(where, "sum_out is set without residual");
    }
    if ((args.router_weight == nullptr) != (args.router_logits == nullptr)) {
        fail(where, "router_weight and router_logits must be set together");
    }
    if (args.rows == 0) return;

    check_rows(where, "x", args.x, args.x_row_stride, args.rows, args.cols, false);
    if (args.residual != nullptr) {
        check_rows(where, "residual", args.residual, args.residual_row_stride, args.rows, args.cols,
                   false);
    }
    if (args.sum_out != nullptr) {
        check_rows(where, "sum_out", args.sum_out, args.sum_row_stride, args.rows, args.cols, true);
    }
    check_aligned(where, "weight", args.weight, 16);
    check_rows(where, "y", args.y, args.y_row_stride, args.rows, args.cols, true);
    if (args.router_weight != nullptr) {
        check_aligned(where, "router_weight", args.router_weight, 16);
        check_aligned(where, "router_logits", args.router_logits, alignof(float));
    }

    AddRmsNormParams params{};
    params.x = static_cast<const uint4*>(args.x);
    params.x_stride = args.x_row_stride / kVectorElements;
    params.residual = static_cast<const uint4*>(args.residual);
    params.residual_stride = args.residual_row_stride / kVectorElements;
    params.sum_out = static_cast<uint4*>(args.sum_out);
    params.sum_stride = args.sum_row_stride / kVectorElements;
    params.weight = static_cast<const uint4*>(args.weight);
    params.y = static_cast<uint4*>(args.y);
    params.y_stride = args.y_row_stride / kVectorElements;
    params.router_weight = static_cast<const uint4*>(args.router_weight);
    params.router_logits = args.router_logits;
    params.vectors = args.cols / kVectorElements;
    params.cols = static_cast<float>(args.cols);
    params.eps = args.eps;
    if (args.element_type == ElementType::bf16) {
        dispatch_add_rms_norm<__nv_bfloat16>(where, params, args.rows, stream);
    } else {
        dispatch_add_rms_norm<__half>(where, params, args.rows, stream);
    }
}

void rope_forward(const RopeArgs& args, cudaStream_t stream) {
    const std::string where = "rope_forward";
    check_element_type(where, args.element_type);
    if (args.rows < 0 || args.rows > INT32_MAX) {
        fail(where, "rows (" + std::to_string(args.rows) + ") must be in [0, 2^31 - 1]");
    }
    if (args.heads <= 0) fail(where, "heads (" + std::to_string(args.heads) + ") must be positive");
    if (args.head_dim != 64 && args.head_dim != 128) {
        fail(where, "head_dim " + std::to_string(args.head_dim) + " is not supported (64 or 128)");
    }
    if (args.norm_weight != nullptr) check_finite_eps(where, args.eps);
    if (args.rows == 0) return;

    check_aligned(where, "data", args.data, 16);
    if (args.token_stride < 0 || args.head_stride < 0 || args.token_stride % 8 != 0 ||
        args.head_stride % 8 != 0) {
        fail(where, "data strides (token " + std::to_string(args.token_stride) + ", head " +
                        std::to_string(args.head_stride) +
                        ") must be non-negative multiples of 8 elements");
    }
    if (args.norm_weight != nullptr) check_aligned(where, "norm_weight", args.norm_weight, 16);
    check_aligned(where, "cos", args.cos, 16);
    check_aligned(where, "sin", args.sin, 16);
    if (args.table_rows <= 0) {
        fail(where, "table_rows (" + std::to_string(args.table_rows) + ") must be positive");
    }
    if (args.positions == nullptr) {
        if (args.rows > args.table_rows) {
            fail(where, "rows (" + std::to_string(args.rows) + ") exceed table_rows (" +
                            std::to_string(args.table_rows) + ") and positions is null");
        }
    } else {
        check_aligned(where, "positions", args.positions, alignof(int32_t));
    }

    RopeParams params{};
    params.data = args.data;
    params.token_stride = args.token_stride;
    params.head_stride = args.head_stride;
    params.items = args.rows * args.heads;
    params.heads = args.heads;
    params.norm_weight = static_cast<const uint4*>(args.norm_weight);
    params.eps = args.eps;
    params.cos = args.cos;
    params.sin = args.sin;
    params.table_rows = args.table_rows;
    params.positions = args.positions;
    const bool bf16 = args.element_type == ElementType::bf16;
    if (args.head_dim == 64) {
        if (bf16) {
            launch_rope<__nv_bfloat16, 64>(where, params, stream);
        } else {
            launch_rope<__half, 64>(where, params, stream);
        }
    } else {
        if (bf16) {
            launch_rope<__nv_bfloat16, 128>(where, params, stream);
        } else {
            launch_rope<__half, 128>(where, params, stream);
        }
    }
}

void scatter_add_rows(const ScatterAddArgs& args, cudaStream_t stream) {
    const std::string where = "scatter_add_rows";
    check_element_type(where, args.element_type);
    if (args.tokens < 0 || args.tokens > INT32_MAX) {
        fail(where, "tokens (" + std::to_string(args.tokens) + ") must be in [0, 2^31 - 1]");
    }
    if (args.cols <= 0 || args.cols % kVectorElements != 0) {
        fail(where, "cols (" + std::to_string(args.cols) + ") must be a positive multiple of 8");
    }
    if (args.tokens == 0) return;

    check_rows(where, "dst", args.dst, args.dst_row_stride, args.tokens, args.cols, true);
    check_rows(where, "src", args.src, args.src_row_stride, args.tokens, args.cols, false);
    check_aligned(where, "positions", args.positions, alignof(int32_t));
    check_aligned(where, "count", args.count, alignof(int32_t));

    ScatterAddParams params{};
    params.dst = static_cast<uint4*>(args.dst);
    params.dst_stride = args.dst_row_stride / kVectorElements;
    params.src = static_cast<const uint4*>(args.src);
    params.src_stride = args.src_row_stride / kVectorElements;
    params.positions = args.positions;
    params.count = args.count;
    params.tokens = static_cast<int>(args.tokens);
    params.vectors = args.cols / kVectorElements;
    if (args.element_type == ElementType::bf16) {
        launch_scatter_add<__nv_bfloat16>(where, params, stream);
    } else {
        launch_scatter_add<__half>(where, params, stream);
    }
}

void silu_mul_forward(const SiluMulArgs& args, cudaStream_t stream) {
    const std::string where = "silu_mul_forward";
    check_element_type(where, args.element_type);
    if (args.rows < 0) fail(where, "rows (" + std::to_string(args.rows) + ") must be >= 0");
    if (args.cols <= 0 || args.cols % kVectorElements != 0 || args.cols > INT32_MAX) {
        fail(where, "cols (" + std::to_string(args.cols) +
                        ") must be a positive multiple of 8, at most 2^31 - 1");
    }
    if (args.rows == 0) return;
    const int cols = static_cast<int>(args.cols);
    check_rows(where, "gate", args.gate, args.gate_row_stride, args.rows, cols, false);
    check_rows(where, "up", args.up, args.up_row_stride, args.rows, cols, false);
    check_rows(where, "out", args.out, args.out_row_stride, args.rows, cols, true);

    SiluMulParams params{};
    params.gate = static_cast<const uint4*>(args.gate);
    params.gate_stride = args.gate_row_stride / kVectorElements;
    params.up = static_cast<const uint4*>(args.up);
    params.up_stride = args.up_row_stride / kVectorElements;
    params.out = static_cast<uint4*>(args.out);
    params.out_stride = args.out_row_stride / kVectorElements;
    params.rows = args.rows;
    params.vectors = args.cols / kVectorElements;
    if (args.element_type == ElementType::bf16) {
        launch_silu_mul<__nv_bfloat16>(where, params, stream);
    } else {
        launch_silu_mul<__half>(where, params, stream);
    }
}

}  // namespace l2a::kernels
