// Routed-query compaction: per-token decisions -> routed token positions in order, plus their
// count, all on the device. Three short kernels: count the routed tokens of each tile, scan
// the tile counts in one block (which also writes the total), then let every tile write its
// positions from its own offset.
#include <climits>
#include <cstdint>
#include <string>

#include "l2a/kernels/attention.h"
#include "launch_check.h"

namespace l2a::kernels {
namespace {

using detail::fail;

constexpr int kTileThreads = 256;
constexpr int kItemsPerThread = 16;  // consecutive tokens per thread keep the output in order
constexpr int kTileItems = kTileThreads * kItemsPerThread;
constexpr int kScanThreads = 1024;

// Exclusive prefix sum of `value` over the block; *total gets the sum over the whole block.
// Ends with a barrier so that callers may scan again right away.
template <int Threads>
__device__ __forceinline__ int block_exclusive_scan(int value, int* total) {
    static_assert(Threads % 32 == 0 && Threads <= 1024, "whole warps, at most 32 of them");
    constexpr int kWarps = Threads / 32;
    __shared__ int warp_offsets[kWarps + 1];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;

    int inclusive = value;
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
        const int below = __shfl_up_sync(0xffffffffu, inclusive, offset);
        if (lane >= offset) inclusive += below;
    }
    if (lane == 31) warp_offsets[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        const int warp_total = lane < kWarps ? warp_offsets[lane] : 0;
        int warp_inclusive = warp_total;
#pragma unroll
        for (int offset = 1; offset < 32; offset *= 2) {
            const int below = __shfl_up_sync(0xffffffffu, warp_inclusive, offset);
            if (lane >= offset) warp_inclusive += below;
        }
        if (lane < kWarps) warp_offsets[lane] = warp_inclusive - warp_total;
        if (lane == 31) warp_offsets[kWarps] = warp_inclusive;
    }
    __syncthreads();
    const int exclusive = warp_offsets[warp] + inclusive - value;
    *total = warp_offsets[kWarps];
    __syncthreads();
    return exclusive;
}

__global__ void __launch_bounds__(kTileThreads)
    count_routed_per_tile(const uint8_t* decisions, int tokens, int32_t* tile_counts) {
    const int64_t tile_start = int64_t(blockIdx.x) * kTileItems;
    int routed = 0;
    for (int i = threadIdx.x; i < kTileItems; i += kTileThreads) {
        const int64_t token = tile_start + i;
        if (token < tokens && decisions[token] != 0) ++routed;
    }
    int total = 0;
    block_exclusive_scan<kTileThreads>(routed, &total);
    if (threadIdx.x == 0) tile_counts[blockIdx.x] = total;
}

// One block: turns the tile counts into exclusive tile offsets in place and writes the total.
__global__ void __launch_bounds__(kScanThreads)
    scan_tile_counts(int32_t* tile_counts, int tiles, int32_t* count) {
    int carry = 0;
    for (int start = 0; start < tiles; start += kScanThreads) {
        const int tile = start + threadIdx.x;
        const int value = tile < tiles ? tile_counts[tile] : 0;
        int total = 0;
        const int offset = block_exclusive_scan<kScanThreads>(value, &total);
        if (tile < tiles) tile_counts[tile] = carry + offset;
        carry += total;
    }
    if (threadIdx.x == 0) *count = carry;
}

__global__ void __launch_bounds__(kTileThreads)
    scatter_routed_positions(const uint8_t* decisions, int tokens, const int32_t* tile_offsets,
                             int32_t* positions) {
    const int64_t first_token =
        int64_t(blockIdx.x) * kTileItems + int64_t(threadIdx.x) * kItemsPerThread;
    bool routed[kItemsPerThread];
    int routed_here = 0;
#pragma unroll
    for (int i = 0; i < kItemsPerThread; ++i) {
        const int64_t token = first_token + i;
        routed[i] = token < tokens && decisions[token] != 0;
        routed_here += routed[i] ? 1 : 0;
    }
    int total = 0;
    int slot = block_exclusive_scan<kTileThreads>(routed_here, &total) + tile_offsets[blockIdx.x];
#pragma unroll
    for (int i = 0; i < kItemsPerThread; ++i) {
        if (routed[i]) positions[slot++] = static_cast<int32_t>(first_token + i);
    }
}

int64_t tile_count(int64_t tokens) { return (tokens + kTileItems - 1) / kTileItems; }

}  // namespace

size_t routed_compaction_workspace_bytes(int64_t tokens) {
    if (tokens <= 0) return 0;
    return static_cast<size_t>(tile_count(tokens)) * sizeof(int32_t);
}

void compact_routed_queries(const uint8_t* decisions, int64_t tokens, int32_t* positions,
                            int32_t* count, void* workspace, size_t workspace_bytes,
                            cudaStream_t stream) {
    const std::string where = "compact_routed_queries";
    if (tokens < 0 || tokens > INT32_MAX) {
        fail(where, "tokens (" + std::to_string(tokens) + ") must be in [0, 2^31 - 1]");
    }
    if (count == nullptr) fail(where, "count is null");
    const size_t needed = routed_compaction_workspace_bytes(tokens);
    if (tokens > 0) {
        if (decisions == nullptr) fail(where, "decisions is null");
        if (positions == nullptr) fail(where, "positions is null");
        if (workspace == nullptr) fail(where, "workspace is null");
        if (workspace_bytes < needed) {
            fail(where, "workspace has " + std::to_string(workspace_bytes) + " bytes, needs " +
                            std::to_string(needed));
        }
        if (reinterpret_cast<uintptr_t>(workspace) % alignof(int32_t) != 0) {
            fail(where, "workspace is not 4-byte aligned");
        }
    }

    const int tiles = static_cast<int>(tile_count(tokens));
    const int token_count = static_cast<int>(tokens);
    auto* tile_counts = static_cast<int32_t*>(workspace);
    if (tiles > 0) {
        count_routed_per_tile<<<tiles, kTileThreads, 0, stream>>>(decisions, token_count,
                                                                  tile_counts);
        detail::check_launch(where, "count_routed_per_tile");
    }
    // Runs for zero tokens too: it writes the count of 0.
    scan_tile_counts<<<1, kScanThreads, 0, stream>>>(tile_counts, tiles, count);
    detail::check_launch(where, "scan_tile_counts");
    if (tiles > 0) {
        scatter_routed_positions<<<tiles, kTileThreads, 0, stream>>>(decisions, token_count,
                                                                     tile_counts, positions);
        detail::check_launch(where, "scatter_routed_positions");
    }
}

}  // namespace l2a::kernels
