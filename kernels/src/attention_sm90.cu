// Host side of the Hopper attention path: tensor maps for K and V (cuTensorMapEncodeTiled,
// reached through the runtime's driver entry point so that libcuda is not linked), and the
// launches of attention_sm90_kernel.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>

#include "attention_sm90.cuh"
#include "attention_sm90.h"
#include "launch_check.h"

namespace l2a::kernels::detail {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
        void* function = nullptr;
        cudaDriverEntryPointQueryResult result{};
        const cudaError_t status = cudaGetDriverEntryPointByVersion(
            "cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &result);
        if (status != cudaSuccess || result != cudaDriverEntryPointSuccess) {
            cudaGetLastError();
            return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
        }
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
    }();
    return encoder;
}

// A [tokens, kv_heads, head_dim] tensor as a 3-D map (dims: column, token, head) whose boxes
// are 64 columns x kBlockN tokens of one head, 128-byte swizzled. Tokens past the end read as
// zeros. False where no map describes the tensor: no encoder, or heads (several) or tokens
// that share their data (stride 0), which the mma.sync path reads as they are.
bool encode_kv_map(CUtensorMap* map, const void* data, const AttentionShape& shape,
                   int64_t token_stride, int64_t head_stride, int block_tokens) {
    const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
    if (encode == nullptr || token_stride <= 0) return false;
    // With one kv head the head coordinate is always 0 and its stride is never used.
    if (shape.kv_heads == 1) head_stride = token_stride;
    if (head_stride <= 0) return false;
    const cuuint64_t dims[3] = {cuuint64_t(shape.head_dim), cuuint64_t(shape.tokens),
                                cuuint64_t(shape.kv_heads)};
    const cuuint64_t strides[2] = {cuuint64_t(token_stride) * 2, cuuint64_t(head_stride) * 2};
    const cuuint32_t box[3] = {64, cuuint32_t(block_tokens), 1};
    const cuuint32_t element_strides[3] = {1, 1, 1};
    const CUtensorMapDataType type = shape.element_type == ElementType::bf16
                                         ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                         : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    const CUresult result =
        encode(map, type, 3, const_cast<void*>(data), dims, strides, box, element_strides,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return result == CUDA_SUCCESS;
}

template <typename Element, int HeadDim, typename QuerySet, typename KeyRange, bool LseOnly>
void launch(const std::string& where, const AttentionShape& shape, const AttentionParams& params,
            const CUtensorMap& k_map, const CUtensorMap& v_map, cudaStream_t stream, bool pairs) {
    using Traits = Sm90TraitsFor<HeadDim, KeyRange>;
    // Sized for the largest possible row count; blocks past the device-side count exit at once.
    const int64_t row_tiles = (shape.tokens + Traits::kBlockM - 1) / Traits::kBlockM;
    // Routed D = 128 launches pair their blocks (attention_sm90_kernel's Paired) unless pairs
    // are off. Windows are never paired: their pairs were 5-7% slower (kernels/NOTES.md v15).
    // A grid's y extent is at most 65,535: longer inputs (over 16.7M tokens) run unpaired.
    constexpr bool kMayPair = std::is_same_v<KeyRange, CausalKeys> && HeadDim == 128 && !LseOnly;
    const bool paired = kMayPair && pairs && (row_tiles + 1) / 2 <= 65535;
    void (*kernel)(AttentionParams, CUtensorMap, CUtensorMap, int) =
        attention_sm90_kernel<Element, HeadDim, QuerySet, KeyRange, LseOnly>;
    if constexpr (kMayPair) {
        if (paired) {
            kernel = attention_sm90_kernel<Element, HeadDim, QuerySet, KeyRange, false, true>;
        }
    }
    const std::string name = std::string("attention_sm90_kernel<") + ElementOps<Element>::kName +
                             ", D=" + std::to_string(HeadDim) + ", " + QuerySet::kName +
                             " queries, " + KeyRange::kName + " keys" +
                             (LseOnly  ? ", LSE only>"
                              : paired ? ", paired>"
                                       : ">");
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(Traits::kSmemBytes)),
               where, "cudaFuncSetAttribute for " + name);
    cudaLaunchConfig_t config{};
    // Paired: (2 x q heads, pairs) in clusters of two along x; else (row tiles, q heads).
    config.gridDim =
        paired ? dim3(2 * static_cast<unsigned>(shape.q_heads),
                      static_cast<unsigned>((row_tiles + 1) / 2))
               : dim3(static_cast<unsigned>(row_tiles), static_cast<unsigned>(shape.q_heads));
    config.blockDim = dim3(Traits::kThreads);
    config.dynamicSmemBytes = Traits::kSmemBytes;
    config.stream = stream;
    cudaLaunchAttribute cluster{};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 2;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = 1;
    config.attrs = paired ? &cluster : nullptr;
    config.numAttrs = paired ? 1 : 0;
    check_cuda(cudaLaunchKernelEx(&config, kernel, params, k_map, v_map, shape.q_heads), where,
               "cudaLaunchKernelEx for " + name);
    check_launch(where, name);
}

// Whether the sm_90a code of the kernels is in this binary: the sm_90a cubin reports binary
// version 90 on a 9.x device (an sm_80 cubin cannot run there, and PTX of compute_80 would be
// JIT-compiled to a version-90 binary without the Hopper body, hence L2A_HAVE_SM90A too).
bool sm90_code_present() {
#if defined(L2A_HAVE_SM90A)
    cudaFuncAttributes attributes{};
    const cudaError_t status = cudaFuncGetAttributes(
        &attributes, attention_sm90_kernel<__nv_bfloat16, 128, RoutedQueries, CausalKeys>);
    if (status != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return attributes.binaryVersion == 90;
#else
    return false;
#endif
}

struct Availability {
    bool available = false;
    std::string reason;
};

Availability query_availability() {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        cudaGetLastError();
        return {false, "no CUDA device"};
    }
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
        cudaGetLastError();
        return {false, "the device's compute capability could not be read"};
    }
    if (major != 9) {
        return {false, "device " + std::to_string(device) + " has compute capability " +
                           std::to_string(major) + ".x, not 9.x"};
    }
#if !defined(L2A_HAVE_SM90A)
    return {false, "this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES lacks 90a)"};
#else
    if (!sm90_code_present()) return {false, "the sm_90a kernel image is not loadable"};
    if (tensor_map_encoder() == nullptr) {
        return {false, "the driver does not provide cuTensorMapEncodeTiled"};
    }
    return {true, ""};
#endif
}

// Per device: the answer does not change while the process runs.
const Availability& availability() {
    constexpr int kMaxDevices = 64;
    static Availability cache[kMaxDevices];
    static std::once_flag once[kMaxDevices];
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) {
        cudaGetLastError();
        static const Availability none{false, "no CUDA device"};
        return none;
    }
    std::call_once(once[device], [device] { cache[device] = query_availability(); });
    return cache[device];
}

}  // namespace

bool sm90_attention_available() { return availability().available; }

std::string sm90_attention_unavailable_reason() { return availability().reason; }

namespace {

// The element type of the shape, for one head dim and LseOnly.
template <int HeadDim, typename QuerySet, typename KeyRange, bool LseOnly>
void launch_for_element(const std::string& where, const AttentionShape& shape,
                        const AttentionParams& params, const CUtensorMap& k_map,
                        const CUtensorMap& v_map, cudaStream_t stream, bool pairs) {
    if (shape.element_type == ElementType::bf16) {
        launch<__nv_bfloat16, HeadDim, QuerySet, KeyRange, LseOnly>(where, shape, params, k_map,
                                                                    v_map, stream, pairs);
    } else {
        launch<__half, HeadDim, QuerySet, KeyRange, LseOnly>(where, shape, params, k_map, v_map,
                                                             stream, pairs);
    }
}

// The element type and head dim of the shape, for one LseOnly.
template <typename QuerySet, typename KeyRange, bool LseOnly>
void launch_for_shape(const std::string& where, const AttentionShape& shape,
                      const AttentionParams& params, const CUtensorMap& k_map,
                      const CUtensorMap& v_map, cudaStream_t stream, bool pairs) {
    if (shape.head_dim == 64) {
        launch_for_element<64, QuerySet, KeyRange, LseOnly>(where, shape, params, k_map, v_map,
                                                            stream, pairs);
    } else {
        launch_for_element<128, QuerySet, KeyRange, LseOnly>(where, shape, params, k_map, v_map,
                                                             stream, pairs);
    }
}

}  // namespace

template <typename QuerySet, typename KeyRange>
bool sm90_attention_launch(const std::string& where, const AttentionShape& shape,
                           const AttentionParams& params, cudaStream_t stream, bool lse_only,
                           bool pairs) {
    constexpr int kBlockN = kSm90BlockN<KeyRange>;  // one box shape for both head dims
    CUtensorMap k_map;
    CUtensorMap v_map;
    if (!encode_kv_map(&k_map, params.k, shape, params.k_token_stride, params.k_head_stride,
                       kBlockN) ||
        !encode_kv_map(&v_map, params.v, shape, params.v_token_stride, params.v_head_stride,
                       kBlockN)) {
        return false;
    }
    // Only every-query attention has an LSE-only kernel (the routing oracle's passes).
    if constexpr (std::is_same_v<QuerySet, AllQueries>) {
        if (lse_only) {
            launch_for_shape<QuerySet, KeyRange, true>(where, shape, params, k_map, v_map, stream,
                                                       pairs);
            return true;
        }
    }
    launch_for_shape<QuerySet, KeyRange, false>(where, shape, params, k_map, v_map, stream, pairs);
    return true;
}

template bool sm90_attention_launch<RoutedQueries, CausalKeys>(const std::string&,
                                                               const AttentionShape&,
                                                               const AttentionParams&, cudaStream_t,
                                                               bool, bool);
template bool sm90_attention_launch<AllQueries, WindowKeys>(const std::string&,
                                                            const AttentionShape&,
                                                            const AttentionParams&, cudaStream_t,
                                                            bool, bool);

}  // namespace l2a::kernels::detail
