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

// A block computes kBlockM query rows of one query head; each of its kWarps warps owns
// kWarpRows of those rows (kMTiles mma M tiles of 16) and walks the block's key range in tiles of
// kBlockN keys. A warp with more rows reuses every K and V fragment it reads from shared memory
// for more mma instructions: with 16 rows per warp, ldmatrix traffic rather than the tensor
// cores bounds the kernel.
template <int HeadDim, int BlockM, int BlockN, int Warps, bool QInRegisters>
struct AttentionTileTraits {
    static constexpr int kHeadDim = HeadDim;
    static constexpr int kBlockM = BlockM;
    static constexpr int kBlockN = BlockN;
    static constexpr int kWarps = Warps;
    static constexpr int kThreads = 32 * Warps;
    static constexpr int kWarpRows = BlockM / Warps;
    static constexpr int kMTiles = kWarpRows / 16;
    // Whether a warp holds its Q fragments in registers for the whole key loop, or reads them
    // from shared memory at every key tile (where holding them would leave too few registers).
    static constexpr bool kQInRegisters = QInRegisters;
    // Shared-memory rows are padded by 16 bytes so that the 8 row addresses of one ldmatrix
    // land in 8 different 16-byte bank groups.
    static constexpr int kSmemRowElements = HeadDim + 8;
    static constexpr int kChunksPerRow = HeadDim / 8;  // 16-byte chunks per row
    // Q tile, one K tile, one V tile; 2-byte elements.
    static constexpr size_t kSmemBytes = size_t(BlockM + 2 * BlockN) * kSmemRowElements * 2;

    static_assert(BlockM % (16 * Warps) == 0, "each warp owns whole mma M tiles of 16 rows");
    static_assert(HeadDim % 16 == 0 && BlockN % 16 == 0, "mma.m16n8k16 works on 16-wide steps");
};

template <int HeadDim>
struct DefaultAttentionTraits;
template <>
struct DefaultAttentionTraits<64> {
    using type = AttentionTileTraits<64, 128, 64, 4, true>;
};
// 32 rows per warp with D = 128: the output accumulators alone take 128 registers per thread,
// so Q is re-read from shared memory instead of held.
template <>
struct DefaultAttentionTraits<128> {
    using type = AttentionTileTraits<128, 128, 64, 4, false>;
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
    bool packed;  // routed queries: Q and O rows are routed indices, not token positions
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
    // The row of Q and O that holds query `row` sitting at `position`.
    static __device__ __forceinline__ int storage_row(const AttentionParams& p, int row,
                                                      int position) {
        return p.packed ? row : position;
    }
};

// Every token: row r sits at position r.
struct AllQueries {
    static constexpr const char* kName = "all";
    static __device__ __forceinline__ int count(const AttentionParams& p) { return p.tokens; }
    static __device__ __forceinline__ int position(const AttentionParams&, int row) { return row; }
    static __device__ __forceinline__ int storage_row(const AttentionParams&, int row, int) {
        return row;
    }
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

// 2^x on the special-function unit; 2^-inf = 0. Scores are already in the exp2 domain, so
// this is the whole exponential (exp2f adds a subnormal fix-up that probabilities don't need).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// A warp's Q fragments (A operands of S = Q K^T) for its kMTiles row tiles: held in registers,
// or read from the block's Q tile in shared memory at each use.
template <typename Traits, typename Element, bool InRegisters = Traits::kQInRegisters>
struct QueryFragments;

template <typename Traits, typename Element>
__device__ __forceinline__ void load_query_fragment(uint32_t (&fragment)[4],
                                                    const Element* warp_q_tile, int m_tile,
                                                    int k_step, int lane) {
    const int row = m_tile * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
    const int column = k_step * 16 + (lane / 16) * 8;
    ldmatrix_x4(fragment, warp_q_tile + row * Traits::kSmemRowElements + column);
}

template <typename Traits, typename Element>
struct QueryFragments<Traits, Element, true> {
    uint32_t held[Traits::kHeadDim / 16][Traits::kMTiles][4];

    __device__ __forceinline__ QueryFragments(const Element* warp_q_tile, int lane) {
#pragma unroll
        for (int k_step = 0; k_step < Traits::kHeadDim / 16; ++k_step) {
#pragma unroll
            for (int m_tile = 0; m_tile < Traits::kMTiles; ++m_tile) {
                load_query_fragment<Traits>(held[k_step][m_tile], warp_q_tile, m_tile, k_step,
                                            lane);
            }
        }
    }
    __device__ __forceinline__ void get(uint32_t (&fragment)[4], int m_tile, int k_step,
                                        int) const {
#pragma unroll
        for (int i = 0; i < 4; ++i) fragment[i] = held[k_step][m_tile][i];
    }
};

template <typename Traits, typename Element>
struct QueryFragments<Traits, Element, false> {
    const Element* warp_q_tile;

    __device__ __forceinline__ QueryFragments(const Element* tile, int) : warp_q_tile(tile) {}
    __device__ __forceinline__ void get(uint32_t (&fragment)[4], int m_tile, int k_step,
                                        int lane) const {
        load_query_fragment<Traits>(fragment, warp_q_tile, m_tile, k_step, lane);
    }
};

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

    // Q rows are gathered straight from their storage rows: no separate gather pass.
    for (int chunk = threadIdx.x; chunk < kBlockM * Traits::kChunksPerRow;
         chunk += Traits::kThreads) {
        const int row = chunk / Traits::kChunksPerRow;
        const int column = (chunk % Traits::kChunksPerRow) * 8;
        const int q_row =
            QuerySet::storage_row(params, first_row + min(row, rows_here - 1), row_positions[row]);
        cp_async_16(q_tile + row * kRowElements + column,
                    q_head_base + int64_t(q_row) * params.q_token_stride + column, true);
    }
    cp_async_commit();
    load_key_tile<Traits>(k_tile, k_head_base, params.k_token_stride, first_tile * kBlockN,
                          params.tokens);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    constexpr int kMTiles = Traits::kMTiles;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int lane_row = lane / 4;           // g: fragment row (and row + 8)
    const int lane_column = 2 * (lane % 4);  // 2c: first of two fragment columns
    const int warp_first_row = warp * Traits::kWarpRows;
    const float scale_log2 = params.scale_log2;

    const QueryFragments<Traits, Element> query(q_tile + warp_first_row * kRowElements, lane);

    // This thread's rows: warp_first_row + 16 m + lane_row, and that + 8. Their first keys are
    // recomputed where masking needs them rather than held: registers are the scarce resource.
    int my_position[kMTiles][2];
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            my_position[m][half] = row_positions[warp_first_row + m * 16 + lane_row + 8 * half];
        }
    }

    float out_accumulator[kMTiles][kHeadDim / 8][4];
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int d = 0; d < kHeadDim / 8; ++d) {
#pragma unroll
            for (int e = 0; e < 4; ++e) out_accumulator[m][d][e] = 0.0f;
        }
    }
    float row_max[kMTiles][2];  // exp2 domain
    float row_sum[kMTiles][2];  // this thread's share; quad-reduced at the end
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            row_max[m][half] = -INFINITY;
            row_sum[m][half] = 0.0f;
        }
    }

    for (int tile = first_tile; tile <= last_tile; ++tile) {
        const int tile_first_key = tile * kBlockN;
        load_key_tile<Traits>(v_tile, v_head_base, params.v_token_stride, tile_first_key,
                              params.tokens);
        cp_async_commit();

        // S = Q K^T for the warp's rows and kBlockN keys; each K fragment feeds kMTiles rows.
        float scores[kMTiles][kBlockN / 8][4];
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) scores[m][n][e] = 0.0f;
            }
        }
#pragma unroll
        for (int k_step = 0; k_step < kHeadDim / 16; ++k_step) {
            uint32_t q_fragments[kMTiles][4];
#pragma unroll
            for (int m = 0; m < kMTiles; ++m) query.get(q_fragments[m], m, k_step, lane);
#pragma unroll
            for (int n_pair = 0; n_pair < kBlockN / 16; ++n_pair) {
                // Matrices: keys +0..7 / dims +0..7, keys +0..7 / dims +8..15,
                //           keys +8..15 / dims +0..7, keys +8..15 / dims +8..15.
                const int row = n_pair * 16 + (lane % 8) + (lane / 16) * 8;
                const int column = k_step * 16 + ((lane / 8) % 2) * 8;
                uint32_t k_fragments[4];
                ldmatrix_x4(k_fragments, k_tile + row * kRowElements + column);
#pragma unroll
                for (int m = 0; m < kMTiles; ++m) {
                    Ops::mma(scores[m][2 * n_pair], q_fragments[m], k_fragments[0], k_fragments[1]);
                    Ops::mma(scores[m][2 * n_pair + 1], q_fragments[m], k_fragments[2],
                             k_fragments[3]);
                }
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
            for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
                for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int half = e / 2;
                        const int key = tile_first_key + n * 8 + lane_column + (e % 2);
                        if (key > my_position[m][half] ||
                            key < KeyRange::first_key(params, my_position[m][half])) {
                            scores[m][n][e] = -INFINITY;
                        }
                    }
                }
            }
        }

        // Online softmax. The scale is positive, so the row maximum is taken on raw scores and
        // scaled once. A row that sees no key of this tile yet (max still -inf) uses 0 as its
        // reference so that exp2(-inf - ref) gives 0 instead of NaN.
        uint32_t p_fragments[kMTiles][kBlockN / 16][4];
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                float raw_max = -INFINITY;
#pragma unroll
                for (int n = 0; n < kBlockN / 8; ++n) {
                    raw_max =
                        fmaxf(raw_max, fmaxf(scores[m][n][2 * half], scores[m][n][2 * half + 1]));
                }
                raw_max = fmaxf(raw_max, __shfl_xor_sync(0xffffffffu, raw_max, 1));
                raw_max = fmaxf(raw_max, __shfl_xor_sync(0xffffffffu, raw_max, 2));
                const float tile_max = fmaxf(row_max[m][half], raw_max * scale_log2);
                const float reference = tile_max == -INFINITY ? 0.0f : tile_max;
                const float rescale = fast_exp2(row_max[m][half] - reference);
                row_max[m][half] = tile_max;
                row_sum[m][half] *= rescale;
#pragma unroll
                for (int d = 0; d < kHeadDim / 8; ++d) {
                    out_accumulator[m][d][2 * half] *= rescale;
                    out_accumulator[m][d][2 * half + 1] *= rescale;
                }
#pragma unroll
                for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                    for (int e = 2 * half; e < 2 * half + 2; ++e) {
                        scores[m][n][e] = fast_exp2(fmaf(scores[m][n][e], scale_log2, -reference));
                        row_sum[m][half] += scores[m][n][e];
                    }
                }
            }
            // The probabilities, as C fragments of key blocks 2j and 2j+1, are exactly the A
            // fragment of key step j for P V.
#pragma unroll
            for (int k_step = 0; k_step < kBlockN / 16; ++k_step) {
                p_fragments[m][k_step][0] =
                    Ops::pack(scores[m][2 * k_step][0], scores[m][2 * k_step][1]);
                p_fragments[m][k_step][1] =
                    Ops::pack(scores[m][2 * k_step][2], scores[m][2 * k_step][3]);
                p_fragments[m][k_step][2] =
                    Ops::pack(scores[m][2 * k_step + 1][0], scores[m][2 * k_step + 1][1]);
                p_fragments[m][k_step][3] =
                    Ops::pack(scores[m][2 * k_step + 1][2], scores[m][2 * k_step + 1][3]);
            }
        }

        cp_async_wait<1>();  // this tile's V has landed; the K prefetch may still be in flight
        __syncthreads();

        // O += P V; each V fragment feeds kMTiles rows.
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
#pragma unroll
                for (int m = 0; m < kMTiles; ++m) {
                    Ops::mma(out_accumulator[m][2 * d_pair], p_fragments[m][k_step], v_fragments[0],
                             v_fragments[1]);
                    Ops::mma(out_accumulator[m][2 * d_pair + 1], p_fragments[m][k_step],
                             v_fragments[2], v_fragments[3]);
                }
            }
        }

        // The next K tile is in, and every warp is done with this V tile.
        cp_async_wait<0>();
        __syncthreads();
    }

    Element* out_head_base =
        static_cast<Element*>(params.out) + int64_t(q_head) * params.out_head_stride;
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float sum = row_sum[m][half];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const int row = warp_first_row + m * 16 + lane_row + 8 * half;
            if (row >= rows_here) continue;
            const int position = my_position[m][half];
            const float inverse_sum = 1.0f / sum;
            const int out_index = QuerySet::storage_row(params, first_row + row, position);
            Element* out_row = out_head_base + int64_t(out_index) * params.out_token_stride;
#pragma unroll
            for (int d = 0; d < kHeadDim / 8; ++d) {
                *reinterpret_cast<uint32_t*>(out_row + d * 8 + lane_column) =
                    Ops::pack(out_accumulator[m][d][2 * half] * inverse_sum,
                              out_accumulator[m][d][2 * half + 1] * inverse_sum);
            }
            if (params.lse != nullptr && lane % 4 == 0) {
                constexpr float kLn2 = 0.693147180559945309f;
                params.lse[int64_t(q_head) * params.tokens + position] =
                    (row_max[m][half] + log2f(sum)) * kLn2;
            }
        }
    }
}

}  // namespace l2a::kernels::detail
