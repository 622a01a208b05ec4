// The Hopper (sm_90a) attention kernel: the same online-softmax forward as
// attention_kernel.cuh, with the same query-set and key-range policies, laid out for wgmma.
//
// A block computes 128 query rows of one query head with three warpgroups:
//   - warpgroup 0 is the producer: one thread streams the block's K and V tiles (kBlockN keys
//     each) of its kv head into a ring of kStages shared-memory stages with the bulk tensor
//     copy engine, each K or V tile completing on its own mbarrier ("full"); it refills a K or
//     V slot once both consumers have released it (an "empty" mbarrier per slot);
//   - warpgroups 1 and 2 are consumers of 64 query rows each: S = Q K^T with wgmma from shared
//     memory (m64n192k16 for causal key ranges, m64n176k16 for windows), masking and online softmax
//     on the fp32 accumulators, P converted in registers and used as the A operand of O += P V
//     (m64nDk16, V read transposed). A row's reference maximum moves only when the row's maximum
//     grows by more than 2^8, so that most tiles leave O's scale alone (probabilities stay <= 256;
//     the final division by the row sum, taken against the same reference, is unchanged). Each
//     consumer pipelines its tiles (S of tile j and P V of tile j - 1 in flight together, the
//     softmax of tile j under the P V), and the two consumers take turns issuing their matrix
//     products (ping-pong on named barriers), as in FlashAttention-3.
// The producer gives most of its registers to the consumers (setmaxnreg 24 / 240 of the 168 a
// thread starts with): a consumer thread holds kBlockN / 2 S and D / 2 O accumulators and
// kBlockN / 4 P registers (96, 64 and 48 with 192-key tiles at D = 128).
//
// Routed D = 128 launches pair their blocks (Paired, below): two blocks of a cluster share each K
// and V tile, each copying half of it into both (kernels/NOTES.md v15).
//
// Q rows are gathered (routed rows are not contiguous) by the consumers themselves with
// cp.async into the swizzled layout; K and V are contiguous token ranges of one kv head, read
// through tensor maps made on the host (attention_sm90.cu).
#pragma once

#include <cuda.h>

#include <climits>
#include <cmath>
#include <cstdint>

#include "attention_kernel.cuh"
#include "hopper.cuh"

namespace l2a::kernels::detail {

// Key tiles of BlockN keys (176 or 192; kSm90BlockN below picks one per key range): fewer tiles
// per row than 128, so fewer barrier waits, row maxima and turn hand-overs per key
// (kernels/NOTES.md v12-v13: 176 against 128, global -4.5%, 100% routed -5.5%, local -3% at
// 128K). Tiles start at the block's first key, so a window of W keys and 128 rows takes
// ceil((W + 127) / BlockN) tiles wherever it begins (fewer where it is cut at key 0).
template <int HeadDim, int BlockN = 176>
struct Sm90AttentionTraits {
    static constexpr int kHeadDim = HeadDim;
    static constexpr int kBlockM = 128;
    static constexpr int kBlockN = BlockN;
    static constexpr int kConsumerRows = 64;  // rows per consumer warpgroup
    static constexpr int kThreads = 384;
    static constexpr int kConsumerThreads = 256;
    // 176 keys x D: 44 KB per K or V tile at D = 128, 22 KB at D = 64 (192 keys: 48 and 24 KB).
    // K and V stages are released separately, so two D = 128 stages keep the copies ahead (with
    // 128-key tiles three measured no faster, kernels/NOTES.md v6a); with 176- or 192-key tiles
    // two (D = 128) and four (D = 64) are also the most that fit in 227 KB.
    static constexpr int kStages = HeadDim == 128 ? 2 : 4;
    static constexpr int kColumnBlocks = HeadDim / 64;  // 128-byte column blocks per row
    static constexpr uint32_t kQBytes = kBlockM * HeadDim * 2;
    static constexpr uint32_t kTileBytes = kBlockN * HeadDim * 2;  // one K or V tile
    static constexpr uint32_t kColumnBlockBytes = kBlockN * 128;   // one column block of a tile
    // Q, then kStages K tiles, then kStages V tiles; 1 KB of slack to align the start.
    static constexpr size_t kSmemBytes = size_t(kQBytes) + 2 * size_t(kStages) * kTileBytes + 1024;

    static_assert(HeadDim == 64 || HeadDim == 128, "head dims 64 and 128");
    static_assert(kBlockN == 176 || kBlockN == 192, "S is issued as wgmma m64n176k16 or n192k16");
    // 227 KB of shared memory per block on sm_90, less about 1 KB of static arrays (row
    // positions and barriers).
    static_assert(kSmemBytes <= 232448 - 1024, "shared memory of one block");
};

// The key tile width of a key range: 192 for causal ranges (the routed part: 0.3-1.3% faster
// than 176 at 128K and 20% routed, up to 1.7% at 100%, kernels/NOTES.md v13e), 176 for windows,
// whose masked first and last tiles grow with the tile (192 made them 2% slower, v13b).
template <typename KeyRange>
inline constexpr int kSm90BlockN = std::is_same_v<KeyRange, CausalKeys> ? 192 : 176;

template <int HeadDim, typename KeyRange>
using Sm90TraitsFor = Sm90AttentionTraits<HeadDim, kSm90BlockN<KeyRange>>;

// Byte offset of element (row, column) in a 128-byte-swizzled tile of `rows` rows.
__device__ __forceinline__ uint32_t swizzled_offset(int row, int column, int rows) {
    const int block = column / 64;
    const int chunk = (column % 64) / 8;
    return uint32_t(block * rows * 128 + row * 128 + ((chunk ^ (row % 8)) * 16) + (column % 8) * 2);
}

// Grid: (row tiles, q heads), as the mma.sync kernel; the linear block index is remapped so
// that blocks start in order of decreasing row tile across all heads (longest key ranges
// first, and the q heads that share a kv head run side by side and share its tiles in L2).
// LseOnly: only each row's log-sum-exp (params.lse) is computed: the producer streams no V
// tiles, the consumers issue no P V products, and O is not written (the routing oracle needs
// the LSEs alone, and P V is half of the matrix products).
// Paired (routed queries, causal keys, D = 128): a cluster of two blocks computes row tiles 2p and
// 2p + 1 of one q head. Their key ranges both start at key 0 and differ only in their last few
// tiles, so the pair streams the longer range once: each block's producer copies one column
// block (64 of the 128 columns) of every K and V tile into both blocks' shared memory
// (multicast), and a stage is refilled once the consumers of both blocks have released it. The
// shorter block passes over the last tiles. Half the bytes per row come from L2.
template <typename Element, int HeadDim, typename QuerySet, typename KeyRange, bool LseOnly = false,
          bool Paired = false>
__global__ void __launch_bounds__(384, 1)
    attention_sm90_kernel(const __grid_constant__ AttentionParams params,
                          const __grid_constant__ CUtensorMap k_map,
                          const __grid_constant__ CUtensorMap v_map, int q_heads) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using Traits = Sm90TraitsFor<HeadDim, KeyRange>;
    using Ops = ElementOps<Element>;
    constexpr int kBlockM = Traits::kBlockM;
    constexpr int kBlockN = Traits::kBlockN;
    constexpr int kStages = Traits::kStages;

    static_assert(!Paired || (std::is_same_v<KeyRange, CausalKeys> && HeadDim == 128 && !LseOnly),
                  "pairs share causal key ranges, one 64-column block each");
    const int64_t linear = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
    int q_head = 0;
    int row_tile = 0;
    uint32_t rank = 0;  // in the pair's cluster
    if constexpr (Paired) {
        // Grid (2 x q heads, pairs): x = 2 x head + rank, the pairs in decreasing order.
        rank = cluster_block_rank();
        const int64_t pair = linear / 2;
        q_head = int(pair % q_heads);
        row_tile = 2 * int(gridDim.y - 1 - pair / q_heads) + int(rank);
    } else {
        q_head = int(linear % q_heads);
        row_tile = int(gridDim.x - 1 - linear / q_heads);
    }
    const int row_count = QuerySet::count(params);
    int first_row = row_tile * kBlockM;
    // A pair whose first block has rows computes; its second block past the rows repeats the
    // first's rows (streaming its half of each tile, storing nothing).
    const int pair_first_row = Paired ? (row_tile & ~1) * kBlockM : first_row;
    if (pair_first_row >= row_count) return;
    const bool repeats = Paired && first_row >= row_count;
    if (repeats) first_row -= kBlockM;
    const int rows_real = min(kBlockM, row_count - first_row);
    const int rows_here = repeats ? 0 : rows_real;  // rows stored
    const int kv_head = q_head / params.q_per_kv;

    extern __shared__ unsigned char shared_raw[];
    unsigned char* shared_bytes = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<uintptr_t>(shared_raw) + 1023) & ~uintptr_t(1023));
    unsigned char* q_tile = shared_bytes;
    unsigned char* k_tiles = q_tile + Traits::kQBytes;
    unsigned char* v_tiles = k_tiles + kStages * Traits::kTileBytes;
    __shared__ int row_positions[kBlockM];
    __shared__ uint64_t k_full[kStages];
    __shared__ uint64_t v_full[kStages];
    __shared__ uint64_t k_empty[kStages];
    __shared__ uint64_t v_empty[kStages];

    if (threadIdx.x < kBlockM) {
        // Rows past the count repeat the last real row: harmless work, never stored.
        row_positions[threadIdx.x] =
            QuerySet::position(params, first_row + min(int(threadIdx.x), rows_real - 1));
    }
    // A stage is released by every consumer thread, or paired by one lane of each consumer
    // warp of both blocks.
    constexpr uint32_t kReleases =
        Paired ? 2 * (Traits::kConsumerThreads / 32) : Traits::kConsumerThreads;
    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            mbarrier_init(&k_full[s], 1);
            mbarrier_init(&v_full[s], 1);
            mbarrier_init(&k_empty[s], kReleases);
            mbarrier_init(&v_empty[s], kReleases);
        }
        mbarrier_init_fence();
    }
    if constexpr (Paired) {
        cluster_sync();  // the partner's barriers exist before anything lands on them
    } else {
        __syncthreads();
    }

    // Key range of the whole block (the tiles the producer streams) and of each consumer's 64
    // rows (tiles outside it are skipped; tiles inside its fully visible range skip masking).
    // Positions increase with the row (rows past the count repeat the last one) and first_key
    // never decreases with the position, so the ends of each range are its first and last rows'.
    const int warpgroup = threadIdx.x / 128;
    const int my_half = warpgroup == 2 ? 1 : 0;
    const int block_first_key = KeyRange::first_key(params, row_positions[0]);
    int block_last_key = row_positions[kBlockM - 1];
    if constexpr (Paired) {
        // The pair's range: to the later of its two blocks' last rows, computed alike in both
        // (their producers must stream the same tiles, or one would wait for ever).
        const int first_block_last_row = min(pair_first_row + kBlockM, row_count) - 1;
        const int pair_last_row = min(pair_first_row + 2 * kBlockM, row_count) - 1;
        block_last_key = max(QuerySet::position(params, first_block_last_row),
                             QuerySet::position(params, pair_last_row));
    }
    const int wg_earliest_position = row_positions[my_half * Traits::kConsumerRows];
    const int wg_last_key =
        row_positions[my_half * Traits::kConsumerRows + Traits::kConsumerRows - 1];
    const int wg_first_key = KeyRange::first_key(params, wg_earliest_position);
    const int wg_latest_first_key = KeyRange::first_key(params, wg_last_key);
    // Tiles start at the block's first key (a tensor copy's coordinates need no alignment): tile
    // t holds keys key_origin + t * kBlockN .. and goes through ring stage t % kStages.
    const int key_origin = block_first_key;
    const int last_tile = (block_last_key - key_origin) / kBlockN;

    if (warpgroup == 0) {
        warpgroup_registers_decrease<24>();
        if (threadIdx.x == 0) {
            prefetch_tensor_map(&k_map);
            prefetch_tensor_map(&v_map);
            for (int tile = 0; tile <= last_tile; ++tile) {
                const int stage = tile % kStages;
                // The first pass over the ring finds every stage free (parity 1 of a fresh
                // barrier counts as complete).
                const uint32_t free_parity = ((tile / kStages) & 1) ^ 1;
                unsigned char* k_stage = k_tiles + stage * Traits::kTileBytes;
                unsigned char* v_stage = v_tiles + stage * Traits::kTileBytes;
                const int first_key = key_origin + tile * kBlockN;
                if constexpr (Paired) {
                    // This block's column block of the tile, into both blocks; the whole tile
                    // (both halves) completes each block's barrier.
                    mbarrier_wait(&k_empty[stage], free_parity);
                    mbarrier_arrive_expect_bytes(&k_full[stage], Traits::kTileBytes);
                    tma_load_3d_multicast(k_stage + rank * Traits::kColumnBlockBytes, &k_map,
                                          &k_full[stage], int(rank) * 64, first_key, kv_head, 0x3);
                    mbarrier_wait(&v_empty[stage], free_parity);
                    mbarrier_arrive_expect_bytes(&v_full[stage], Traits::kTileBytes);
                    tma_load_3d_multicast(v_stage + rank * Traits::kColumnBlockBytes, &v_map,
                                          &v_full[stage], int(rank) * 64, first_key, kv_head, 0x3);
                    continue;
                }
                mbarrier_wait(&k_empty[stage], free_parity);
                mbarrier_arrive_expect_bytes(&k_full[stage], Traits::kTileBytes);
#pragma unroll
                for (int block = 0; block < Traits::kColumnBlocks; ++block) {
                    tma_load_3d(k_stage + block * Traits::kColumnBlockBytes, &k_map, &k_full[stage],
                                block * 64, first_key, kv_head);
                }
                if constexpr (!LseOnly) {
                    mbarrier_wait(&v_empty[stage], free_parity);
                    mbarrier_arrive_expect_bytes(&v_full[stage], Traits::kTileBytes);
#pragma unroll
                    for (int block = 0; block < Traits::kColumnBlocks; ++block) {
                        tma_load_3d(v_stage + block * Traits::kColumnBlockBytes, &v_map,
                                    &v_full[stage], block * 64, first_key, kv_head);
                    }
                }
            }
        }
        // Neither block of a pair leaves while the other may still write into its shared
        // memory or arrive on its barriers.
        if constexpr (Paired) cluster_sync();
        return;
    }

    warpgroup_registers_increase<240>();
    const int consumer = warpgroup - 1;  // 0 or 1: rows 64 * consumer ..
    const int wg_thread = threadIdx.x - 128 * warpgroup;
    constexpr int kRows = Traits::kConsumerRows;
    constexpr int kChunksPerRow = HeadDim / 8;

    // Gather this consumer's 64 Q rows into its own swizzled 64-row tile.
    unsigned char* my_q = q_tile + consumer * (kRows * HeadDim * 2);
    {
        const Element* q_head_base =
            static_cast<const Element*>(params.q) + int64_t(q_head) * params.q_head_stride;
        for (int chunk = wg_thread; chunk < kRows * kChunksPerRow; chunk += 128) {
            const int local_row = chunk / kChunksPerRow;
            const int column = (chunk % kChunksPerRow) * 8;
            const int row = consumer * kRows + local_row;
            const int q_row = QuerySet::storage_row(params, first_row + min(row, rows_real - 1),
                                                    row_positions[row]);
            cp_async_16(my_q + swizzled_offset(local_row, column, kRows),
                        q_head_base + int64_t(q_row) * params.q_token_stride + column, true);
        }
        cp_async_commit();
        cp_async_wait<0>();
        fence_proxy_async_shared();
        named_barrier_sync(1 + consumer, 128);
    }

    const int warp = wg_thread / 32;  // within the warpgroup: rows 16 * warp ..
    const int lane = threadIdx.x % 32;
    const int lane_row = lane / 4;
    const int lane_column = 2 * (lane % 4);
    const float scale_log2 = params.scale_log2;
    int my_position[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        my_position[half] = row_positions[consumer * kRows + warp * 16 + lane_row + 8 * half];
    }

    const uint32_t q_address = smem_u32(my_q);
    const uint32_t k_address = smem_u32(k_tiles);
    const uint32_t v_address = smem_u32(v_tiles);

    float out_accumulator[HeadDim / 2];
#pragma unroll
    for (int i = 0; i < HeadDim / 2; ++i) out_accumulator[i] = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY};  // exp2 domain
    float row_sum[2] = {0.0f, 0.0f};            // this thread's share; quad-reduced at the end

    // The consumer's own tiles [my_first_tile, my_last_tile] (a contiguous part of the block's
    // range); it releases the other tiles of the ring as soon as they land.
    const int my_first_tile = max(0, (wg_first_key - key_origin) / kBlockN);
    const int my_last_tile = (wg_last_key - key_origin) / kBlockN;
    // Releases a stage: each thread, or paired one lane per warp on both blocks' barriers.
    const auto release = [&](uint64_t* barrier) {
        if constexpr (Paired) {
            __syncwarp();
            if (lane == 0) {
                mbarrier_arrive(barrier);
                mbarrier_arrive_remote(barrier, rank ^ 1u);
            }
        } else {
            mbarrier_arrive(barrier);
        }
    };
    const auto pass_over = [&](int tile) {
        const int stage = tile % kStages;
        const uint32_t parity = (tile / kStages) & 1;
        // Even a stage this consumer does not read is released only after it has landed, so
        // that the producer never refills a stage that is still being written.
        mbarrier_wait(&k_full[stage], parity);
        release(&k_empty[stage]);
        if constexpr (!LseOnly) {
            mbarrier_wait(&v_full[stage], parity);
            release(&v_empty[stage]);
        }
    };
    // S = Q K^T for one tile, issued asynchronously (one commit group).
    const auto issue_scores = [&](float(&scores)[kBlockN / 2], int stage) {
        const uint32_t k_stage = k_address + stage * Traits::kTileBytes;
        wgmma_fence();
#pragma unroll
        for (int k_step = 0; k_step < HeadDim / 16; ++k_step) {
            const uint32_t offset = (k_step % 4) * 32;  // 16 columns of 2 bytes
            const uint64_t a =
                swizzle128_descriptor(q_address + (k_step / 4) * (kRows * 128) + offset, 16, 1024);
            const uint64_t b = swizzle128_descriptor(
                k_stage + (k_step / 4) * Traits::kColumnBlockBytes + offset, 16, 1024);
            if constexpr (kBlockN == 192) {
                wgmma_ss_m64n192k16<Element>(scores, a, b, k_step > 0 ? 1 : 0);
            } else {
                wgmma_ss_m64n176k16<Element>(scores, a, b, k_step > 0 ? 1 : 0);
            }
        }
        wgmma_commit();
    };
    // O += P V for one tile, issued asynchronously (one commit group).
    const auto issue_values = [&](const uint32_t(&p)[kBlockN / 16][4], int stage) {
        const uint32_t v_stage = v_address + stage * Traits::kTileBytes;
        wgmma_fence();
#pragma unroll
        for (int k_step = 0; k_step < kBlockN / 16; ++k_step) {
            const uint64_t b =
                swizzle128_descriptor(v_stage + k_step * 16 * 128, Traits::kColumnBlockBytes, 1024);
            wgmma_rs_pv<HeadDim, Element>(out_accumulator, p[k_step], b);
        }
        wgmma_commit();
    };
    // Masks the tile's scores where needed, updates the running maxima and sums, turns the
    // scores into probabilities and returns the factors the output rows must be rescaled by.
    const auto softmax = [&](float(&scores)[kBlockN / 2], int tile, float(&rescale)[2]) {
        const int tile_first_key = key_origin + tile * kBlockN;
        const bool needs_mask = !(tile_first_key >= wg_latest_first_key &&
                                  tile_first_key + kBlockN - 1 <= wg_earliest_position);
        if (needs_mask) {
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int half = e / 2;
                    const int key = tile_first_key + n * 8 + lane_column + (e % 2);
                    if (key > my_position[half] ||
                        key < KeyRange::first_key(params, my_position[half])) {
                        scores[4 * n + e] = -INFINITY;
                    }
                }
            }
        }
        // As in attention_kernel.cuh: row maximum on raw scores, a reference of 0 for rows
        // that have seen no key yet.
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float raw_max = -INFINITY;
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
                raw_max =
                    fmaxf(raw_max, fmaxf(scores[4 * n + 2 * half], scores[4 * n + 2 * half + 1]));
            }
            raw_max = fmaxf(raw_max, __shfl_xor_sync(0xffffffffu, raw_max, 1));
            raw_max = fmaxf(raw_max, __shfl_xor_sync(0xffffffffu, raw_max, 2));
            // The reference moves only when the row's maximum grows by more than 8 (a factor of
            // 256): probabilities stay <= 256, and most tiles leave O's scale as it is.
            const float candidate = raw_max * scale_log2;
            const float tile_max = candidate > row_max[half] + 8.0f ? candidate : row_max[half];
            const float reference = tile_max == -INFINITY ? 0.0f : tile_max;
            rescale[half] = fast_exp2(row_max[half] - reference);
            row_max[half] = tile_max;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
                for (int e = 2 * half; e < 2 * half + 2; ++e) {
                    scores[4 * n + e] = fast_exp2(fmaf(scores[4 * n + e], scale_log2, -reference));
                    sum += scores[4 * n + e];
                }
            }
            row_sum[half] = row_sum[half] * rescale[half] + sum;
        }
    };
    const auto to_probabilities = [&](const float(&scores)[kBlockN / 2],
                                      uint32_t(&p)[kBlockN / 16][4]) {
#pragma unroll
        for (int k_step = 0; k_step < kBlockN / 16; ++k_step) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                p[k_step][r] =
                    Ops::pack(scores[8 * k_step + 2 * r], scores[8 * k_step + 2 * r + 1]);
            }
        }
    };
    const auto rescale_output = [&](const float(&rescale)[2]) {
        if (!__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) return;
#pragma unroll
        for (int d = 0; d < HeadDim / 8; ++d) {
#pragma unroll
            for (int e = 0; e < 4; ++e) out_accumulator[4 * d + e] *= rescale[e / 2];
        }
    };

    // Ping-pong between the two consumers: each takes turns issuing its wgmma
    // groups on hardware barriers 3 and 4 (256 threads: both consumers), so that one consumer's
    // softmax runs while the other's matrix products occupy the tensor cores. Every consumer
    // takes one turn per block tile plus one, skipped tiles included, so the counts match;
    // consumer 1 gives consumer 0 its first turn and skips its own last hand-over.
    const auto take_turn = [&] { named_barrier_sync(3 + consumer, 256); };
    const auto end_turn = [&](bool last) {
        if (!(last && consumer == 1)) named_barrier_arrive(3 + (1 - consumer), 256);
    };
    if (consumer == 1) named_barrier_arrive(3, 256);
    // A skipped tile's turn comes before its data: the turn order must not wait on the copies.
    const auto pass_over_in_turn = [&](int tile, bool last) {
        take_turn();
        end_turn(last);
        pass_over(tile);
    };
    // Tiles before the consumer's own: none for all-rows query sets (the second consumer's first
    // key is at most 64 keys past the block's), kept for query sets with gaps.
    for (int tile = 0; tile < my_first_tile; ++tile) pass_over_in_turn(tile, false);
    // S = Q K^T of one of the consumer's own tiles alone, in its turn; the K stage released once
    // S is in registers, then the softmax. Returns the tile's stage.
    const auto scores_alone = [&](float(&scores)[kBlockN / 2], int tile, float(&rescale)[2]) {
        const int stage = tile % kStages;
        mbarrier_wait(&k_full[stage], (tile / kStages) & 1);
        take_turn();
        issue_scores(scores, stage);
        end_turn(false);
        wgmma_wait<0>();
        pin_registers(scores);
        release(&k_empty[stage]);
        softmax(scores, tile, rescale);
        return stage;
    };

    if constexpr (LseOnly) {
        // S = Q K^T and the running maxima and sums per tile, one turn each, and the final
        // turn that the pipeline below spends on the last P V (the turn counts must match).
        for (int tile = my_first_tile; tile <= my_last_tile; ++tile) {
            float scores[kBlockN / 2];
            float rescale[2];
            scores_alone(scores, tile, rescale);
        }
        take_turn();
        end_turn(my_last_tile == last_tile);
    } else {
        // Software pipeline: while the softmax of tile j runs on the CUDA cores, the tensor
        // cores compute P V of tile j - 1. Per iteration: issue S_j, rescale O by the factors of
        // tile j - 1's softmax (while S_j runs), issue P_{j-1} V_{j-1}, wait for S_j (the older
        // group), softmax, wait for P V.
        uint32_t p_fragments[kBlockN / 16][4];
        int previous_stage;
        // The factors O is rescaled by before the next P V (applied while S runs).
        float rescale[2];
        {
            float scores[kBlockN / 2];
            previous_stage = scores_alone(scores, my_first_tile, rescale);
            to_probabilities(scores, p_fragments);
        }
        for (int tile = my_first_tile + 1; tile <= my_last_tile; ++tile) {
            const int stage = tile % kStages;
            const uint32_t parity = (tile / kStages) & 1;
            const uint32_t previous_parity = ((tile - 1) / kStages) & 1;
            float scores[kBlockN / 2];
            mbarrier_wait(&k_full[stage], parity);
            mbarrier_wait(&v_full[previous_stage], previous_parity);
            take_turn();
            issue_scores(scores, stage);
            rescale_output(rescale);
            pin_registers(out_accumulator);
            issue_values(p_fragments, previous_stage);
            end_turn(false);
            wgmma_wait<1>();
            pin_registers(scores);
            release(&k_empty[stage]);
            softmax(scores, tile, rescale);
            wgmma_wait<0>();
            pin_registers(out_accumulator);
            release(&v_empty[previous_stage]);
            to_probabilities(scores, p_fragments);
            previous_stage = stage;
        }
        {
            mbarrier_wait(&v_full[previous_stage], (my_last_tile / kStages) & 1);
            take_turn();
            rescale_output(rescale);
            pin_registers(out_accumulator);
            issue_values(p_fragments, previous_stage);
            end_turn(my_last_tile == last_tile);
            wgmma_wait<0>();
            pin_registers(out_accumulator);
            release(&v_empty[previous_stage]);
        }
    }
    for (int tile = my_last_tile + 1; tile <= last_tile; ++tile) {
        pass_over_in_turn(tile, tile == last_tile);
    }

#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float sum = row_sum[half];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = consumer * kRows + warp * 16 + lane_row + 8 * half;
        if (row >= rows_here) continue;
        const int position = my_position[half];
        if constexpr (!LseOnly) {
            Element* out_head_base =
                static_cast<Element*>(params.out) + int64_t(q_head) * params.out_head_stride;
            const float inverse_sum = 1.0f / sum;
            const int out_index = QuerySet::storage_row(params, first_row + row, position);
            Element* out_row = out_head_base + int64_t(out_index) * params.out_token_stride;
#pragma unroll
            for (int d = 0; d < HeadDim / 8; ++d) {
                *reinterpret_cast<uint32_t*>(out_row + d * 8 + lane_column) =
                    Ops::pack(out_accumulator[4 * d + 2 * half] * inverse_sum,
                              out_accumulator[4 * d + 2 * half + 1] * inverse_sum);
            }
        }
        if (params.lse != nullptr && lane % 4 == 0) {
            constexpr float kLn2 = 0.693147180559945309f;
            params.lse[int64_t(q_head) * params.tokens + position] =
                (row_max[half] + log2f(sum)) * kLn2;
        }
    }
    if constexpr (Paired) cluster_sync();
#else
    // Built without the sm_90a target: the host never launches this kernel (see
    // sm90_attention_available), and a launch by mistake fails loudly.
    (void)params;
    (void)k_map;
    (void)v_map;
    (void)q_heads;
    __trap();
#endif
}

}  // namespace l2a::kernels::detail
