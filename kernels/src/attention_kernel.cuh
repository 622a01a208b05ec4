// One tiled tensor-core attention kernel (FlashAttention-2 style forward: online softmax, fp32
// accumulation) shared by global and sliding-window attention. What differs between the two is
// kept in two small policies:
//   - a query-set policy says which query rows the launch computes and at which token positions
//     they sit (the routed positions, or every token);
//   - a key-range policy says which keys a query at position p sees (0..p, or p-W+1..p).
// Tile shapes live in AttentionTileTraits; attention.cu instantiates the kernel per element
// type, head dim and policy pair from one dispatcher.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>

#include "mma.cuh"

namespace l2a::kernels::detail {

// A block computes kBlockM query rows of one query head; each of its kWarps warps owns 16 of
// those rows and walks the block's key range in tiles of kBlockN keys.
template <int HeadDim, int BlockM, int BlockN, int Warps>
struct AttentionTileTraits {
    static constexpr int kHeadDim = HeadDim;
    static constexpr int kBlockM = BlockM;
    static constexpr int kBlockN = BlockN;
    static constexpr int kWarps = Warps;
    static constexpr int kThreads = 32 * Warps;
    // Shared-memory rows are padded by 16 bytes so that the 8 row addresses of one ldmatrix
    // land in 8 different 16-byte bank groups.
    static constexpr int kSmemRowElements = HeadDim + 8;
    static constexpr int kChunksPerRow = HeadDim / 8;  // 16-byte chunks per row
    // Q tile, one K tile, one V tile; 2-byte elements.
    static constexpr size_t kSmemBytes = size_t(BlockM + 2 * BlockN) * kSmemRowElements * 2;

    static_assert(BlockM == 16 * Warps, "each warp owns 16 query rows (one mma M tile)");
    static_assert(HeadDim % 16 == 0 && BlockN % 16 == 0, "mma.m16n8k16 works on 16-wide steps");
};

template <int HeadDim>
struct DefaultAttentionTraits;
template <>
struct DefaultAttentionTraits<64> {
    using type = AttentionTileTraits<64, 64, 64, 4>;
};
template <>
struct DefaultAttentionTraits<128> {
    using type = AttentionTileTraits<128, 64, 64, 4>;
};

// Everything a launch needs, passed by value in kernel parameter space. Strides in elements.
struct AttentionParams {
    const void* q;
    const void* k;
    const void* v;
    void* out;
    float* lse;  // [q_heads, tokens] or null
    int64_t q_token_stride, q_head_stride;
    int64_t k_token_stride, k_head_stride;
    int64_t v_token_stride, v_head_stride;
    int64_t out_token_stride, out_head_stride;
    int tokens;
    int q_per_kv;      // query heads per kv head
    float scale_log2;  // softmax scale times log2(e): scores live in the exp2 domain
    const int32_t* routed_positions;
    const int32_t* routed_count;
    int window;
};

// ---- query-set policies -------------------------------------------------------------------

// The routed queries: row r sits at routed_positions[r]; the row count is read on the device.
struct RoutedQueries {
    static constexpr const char* kName = "routed";
    static __device__ __forceinline__ int count(const AttentionParams& p) {
        return min(max(*p.routed_count, 0), p.tokens);
    }
    static __device__ __forceinline__ int position(const AttentionParams& p, int row) {
        return p.routed_positions[row];
    }
};

// Every token: row r sits at position r.
struct AllQueries {
    static constexpr const char* kName = "all";
    static __device__ __forceinline__ int count(const AttentionParams& p) { return p.tokens; }
    static __device__ __forceinline__ int position(const AttentionParams&, int row) { return row; }
};

// ---- key-range policies: a query at `position` sees keys first_key(position) .. position ----

struct CausalKeys {
    static constexpr const char* kName = "causal";
    static __device__ __forceinline__ int first_key(const AttentionParams&, int) { return 0; }
};

struct WindowKeys {
    static constexpr const char* kName = "window";
    static __device__ __forceinline__ int first_key(const AttentionParams& p, int position) {
        return max(0, position - p.window + 1);
    }
};

// Loads keys or values [first_key, first_key + kBlockN) of one kv head into shared memory;
// rows past the sequence end are zero-filled so that masked probabilities (0) times their
// values stay 0.
template <typename Traits, typename Element>
__device__ __forceinline__ void load_key_tile(Element* tile, const Element* head_base,
                                              int64_t token_stride, int first_key, int tokens) {
    for (int chunk = threadIdx.x; chunk < Traits::kBlockN * Traits::kChunksPerRow;
         chunk += Traits::kThreads) {
        const int row = chunk / Traits::kChunksPerRow;
        const int column = (chunk % Traits::kChunksPerRow) * 8;
        const int key = first_key + row;
        const bool inside = key < tokens;
        const Element* source = head_base + int64_t(inside ? key : 0) * token_stride + column;
        cp_async_16(tile + row * Traits::kSmemRowElements + column, source, inside);
    }
}

// Grid: x = query-row tiles (sized for the largest possible row count, tiles past the actual
// count exit at once), y = query heads. Block x runs tile gridDim.x - 1 - x so that the tiles
// with the longest key ranges start first.
template <typename Element, typename Traits, typename QuerySet, typename KeyRange>
__global__ void __launch_bounds__(Traits::kThreads)
    attention_forward_kernel(const AttentionParams params) {
    using Ops = ElementOps<Element>;
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kHeadDim = Traits::kHeadDim;
    constexpr int kRowElements = Traits::kSmemRowElements;

    const int row_count = QuerySet::count(params);
    const int first_row = (gridDim.x - 1 - blockIdx.x) * kBlockM;
    if (first_row >= row_count) return;
    const int rows_here = min(kBlockM, row_count - first_row);
    const int q_head = blockIdx.y;
    const int kv_head = q_head / params.q_per_kv;

    extern __shared__ __align__(16) unsigned char shared_bytes[];
    Element* q_tile = reinterpret_cast<Element*>(shared_bytes);
    Element* k_tile = q_tile + kBlockM * kRowElements;
    Element* v_tile = k_tile + kBlockN * kRowElements;
    __shared__ int row_positions[kBlockM];

    // Rows past the count repeat the last real row: they compute something harmless and are
    // never stored, so no row of the tile is ever fully masked.
    for (int row = threadIdx.x; row < kBlockM; row += Traits::kThreads) {
        row_positions[row] = QuerySet::position(params, first_row + min(row, rows_here - 1));
    }
    __syncthreads();

    // The block's key range, and the range every one of its rows sees in full (tiles inside it
    // skip masking). Positions need not be sorted for this to hold.
    int block_first_key = INT_MAX;
    int block_last_key = -1;
    int latest_first_key = 0;
    int earliest_position = INT_MAX;
    for (int row = 0; row < kBlockM; ++row) {
        const int position = row_positions[row];
        const int first_key = KeyRange::first_key(params, position);
        block_first_key = min(block_first_key, first_key);
        block_last_key = max(block_last_key, position);
        latest_first_key = max(latest_first_key, first_key);
        earliest_position = min(earliest_position, position);
    }
    const int first_tile = block_first_key / kBlockN;
    const int last_tile = block_last_key / kBlockN;

    const Element* q_head_base =
        static_cast<const Element*>(params.q) + int64_t(q_head) * params.q_head_stride;
    const Element* k_head_base =
        static_cast<const Element*>(params.k) + int64_t(kv_head) * params.k_head_stride;
    const Element* v_head_base =
        static_cast<const Element*>(params.v) + int64_t(kv_head) * params.v_head_stride;

    // Q rows are gathered straight from their token positions: no separate gather pass.
    for (int chunk = threadIdx.x; chunk < kBlockM * Traits::kChunksPerRow;
         chunk += Traits::kThreads) {
        const int row = chunk / Traits::kChunksPerRow;
        const int column = (chunk % Traits::kChunksPerRow) * 8;
        cp_async_16(q_tile + row * kRowElements + column,
                    q_head_base + int64_t(row_positions[row]) * params.q_token_stride + column,
                    true);
    }
    cp_async_commit();
    load_key_tile<Traits>(k_tile, k_head_base, params.k_token_stride, first_tile * kBlockN,
                          params.tokens);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int lane_row = lane / 4;           // g: fragment row (and row + 8)
    const int lane_column = 2 * (lane % 4);  // 2c: first of two fragment columns

    // The warp's 16 Q rows stay in registers for the whole key loop.
    uint32_t q_fragments[kHeadDim / 16][4];
#pragma unroll
    for (int k_step = 0; k_step < kHeadDim / 16; ++k_step) {
        const int row = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        const int column = k_step * 16 + (lane / 16) * 8;
        ldmatrix_x4(q_fragments[k_step], q_tile + row * kRowElements + column);
    }

    // This thread's two rows: warp * 16 + lane_row and that + 8.
    int my_position[2];
    int my_first_key[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        my_position[half] = row_positions[warp * 16 + lane_row + 8 * half];
        my_first_key[half] = KeyRange::first_key(params, my_position[half]);
    }

    float out_accumulator[kHeadDim / 8][4];
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; ++d) {
#pragma unroll
        for (int e = 0; e < 4; ++e) out_accumulator[d][e] = 0.0f;
    }
    float row_max[2] = {-INFINITY, -INFINITY};  // exp2 domain
    float row_sum[2] = {0.0f, 0.0f};            // this thread's share; quad-reduced at the end

    for (int tile = first_tile; tile <= last_tile; ++tile) {
        const int tile_first_key = tile * kBlockN;
        load_key_tile<Traits>(v_tile, v_head_base, params.v_token_stride, tile_first_key,
                              params.tokens);
        cp_async_commit();

        // S = Q K^T for the warp's 16 rows and kBlockN keys.
        float scores[kBlockN / 8][4];
#pragma unroll
        for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) scores[n][e] = 0.0f;
        }
#pragma unroll
        for (int k_step = 0; k_step < kHeadDim / 16; ++k_step) {
#pragma unroll
            for (int n_pair = 0; n_pair < kBlockN / 16; ++n_pair) {
                // Matrices: keys +0..7 / dims +0..7, keys +0..7 / dims +8..15,
                //           keys +8..15 / dims +0..7, keys +8..15 / dims +8..15.
                const int row = n_pair * 16 + (lane % 8) + (lane / 16) * 8;
                const int column = k_step * 16 + ((lane / 8) % 2) * 8;
                uint32_t k_fragments[4];
                ldmatrix_x4(k_fragments, k_tile + row * kRowElements + column);
                Ops::mma(scores[2 * n_pair], q_fragments[k_step], k_fragments[0], k_fragments[1]);
                Ops::mma(scores[2 * n_pair + 1], q_fragments[k_step], k_fragments[2],
                         k_fragments[3]);
            }
        }

        // Every warp is done with this K tile: prefetch the next one under the softmax. The
        // group is committed even when empty so that the wait counts below stay the same.
        __syncthreads();
        if (tile < last_tile) {
            load_key_tile<Traits>(k_tile, k_head_base, params.k_token_stride,
                                  tile_first_key + kBlockN, params.tokens);
        }
        cp_async_commit();

        const bool tile_needs_mask = !(tile_first_key >= latest_first_key &&
                                       tile_first_key + kBlockN - 1 <= earliest_position);
        if (tile_needs_mask) {
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int half = e / 2;
                    const int key = tile_first_key + n * 8 + lane_column + (e % 2);
                    if (key > my_position[half] || key < my_first_key[half]) {
                        scores[n][e] = -INFINITY;
                    }
                }
            }
        }

        // Online softmax. A row that sees no key of this tile yet (max still -inf) uses 0 as
        // its reference so that exp2(-inf - ref) gives 0 instead of NaN.
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float tile_max = row_max[half];
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
                tile_max = fmaxf(tile_max, fmaxf(scores[n][2 * half], scores[n][2 * half + 1]) *
                                               params.scale_log2);
            }
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
            const float reference = tile_max == -INFINITY ? 0.0f : tile_max;
            const float rescale = exp2f(row_max[half] - reference);
            row_max[half] = tile_max;
            row_sum[half] *= rescale;
#pragma unroll
            for (int d = 0; d < kHeadDim / 8; ++d) {
                out_accumulator[d][2 * half] *= rescale;
                out_accumulator[d][2 * half + 1] *= rescale;
            }
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                for (int e = 2 * half; e < 2 * half + 2; ++e) {
                    scores[n][e] = exp2f(scores[n][e] * params.scale_log2 - reference);
                    row_sum[half] += scores[n][e];
                }
            }
        }

        // The probabilities, as C fragments of key blocks 2j and 2j+1, are exactly the A
        // fragment of key step j for P V.
        uint32_t p_fragments[kBlockN / 16][4];
#pragma unroll
        for (int k_step = 0; k_step < kBlockN / 16; ++k_step) {
            p_fragments[k_step][0] = Ops::pack(scores[2 * k_step][0], scores[2 * k_step][1]);
            p_fragments[k_step][1] = Ops::pack(scores[2 * k_step][2], scores[2 * k_step][3]);
            p_fragments[k_step][2] =
                Ops::pack(scores[2 * k_step + 1][0], scores[2 * k_step + 1][1]);
            p_fragments[k_step][3] =
                Ops::pack(scores[2 * k_step + 1][2], scores[2 * k_step + 1][3]);
        }

        cp_async_wait<1>();  // this tile's V has landed; the K prefetch may still be in flight
        __syncthreads();

        // O += P V.
#pragma unroll
        for (int k_step = 0; k_step < kBlockN / 16; ++k_step) {
#pragma unroll
            for (int d_pair = 0; d_pair < kHeadDim / 16; ++d_pair) {
                // Transposed matrices: keys +0..7 / dims +0..7, keys +8..15 / dims +0..7,
                //                      keys +0..7 / dims +8..15, keys +8..15 / dims +8..15.
                const int row = k_step * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
                const int column = d_pair * 16 + (lane / 16) * 8;
                uint32_t v_fragments[4];
                ldmatrix_x4_trans(v_fragments, v_tile + row * kRowElements + column);
                Ops::mma(out_accumulator[2 * d_pair], p_fragments[k_step], v_fragments[0],
                         v_fragments[1]);
                Ops::mma(out_accumulator[2 * d_pair + 1], p_fragments[k_step], v_fragments[2],
                         v_fragments[3]);
            }
        }

        // The next K tile is in, and every warp is done with this V tile.
        cp_async_wait<0>();
        __syncthreads();
    }

    Element* out_head_base =
        static_cast<Element*>(params.out) + int64_t(q_head) * params.out_head_stride;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float sum = row_sum[half];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = warp * 16 + lane_row + 8 * half;
        if (row >= rows_here) continue;
        const int position = my_position[half];
        const float inverse_sum = 1.0f / sum;
        Element* out_row = out_head_base + int64_t(position) * params.out_token_stride;
#pragma unroll
        for (int d = 0; d < kHeadDim / 8; ++d) {
            *reinterpret_cast<uint32_t*>(out_row + d * 8 + lane_column) =
                Ops::pack(out_accumulator[d][2 * half] * inverse_sum,
                          out_accumulator[d][2 * half + 1] * inverse_sum);
        }
        if (params.lse != nullptr && lane % 4 == 0) {
            constexpr float kLn2 = 0.693147180559945309f;
            params.lse[int64_t(q_head) * params.tokens + position] =
                (row_max[half] + log2f(sum)) * kLn2;
        }
    }
}

}  // namespace l2a::kernels::detail
