// Hopper (sm_90a) primitives: warpgroup matrix multiply (wgmma) with shared-memory matrix
// descriptors, mbarriers, bulk tensor copies (TMA) and register reallocation. Every function
// here must only be called from code compiled for sm_90a (guarded by
// __CUDA_ARCH_FEAT_SM90_ALL); the header itself compiles for every target.
//
// Shared-memory tiles use the 128-byte swizzle that the bulk tensor copy writes: a tile is a
// sequence of "column blocks" of 64 16-bit elements (128 bytes) per row, and within each
// 1024-byte group of 8 rows, 16-byte chunk c of row r sits at chunk c ^ (r % 8). Column blocks
// and tiles start at 1024-byte-aligned addresses.
//
// Descriptor fields (PTX ISA "Matrix Descriptor Format", 64 bits): start address >> 4 in bits
// 0-13, leading-dimension byte offset >> 4 in bits 16-29, stride-dimension byte offset >> 4 in
// bits 32-45, swizzle mode in bits 62-63 (1 = 128-byte swizzle).
// - K-major operand (rows of K contiguous, as Q and K tiles): the stride offset is the distance
//   between 8-row groups (1024 bytes); the leading offset is unused with this swizzle because a
//   k16 step (32 bytes) never leaves a 128-byte row. Step k of 16 within a column block is
//   +32 bytes on the start address (the hardware swizzles the final address).
// - MN-major operand (the V tile read as B = V with keys along K): the stride offset is the
//   distance between 8-key groups (1024 bytes), the leading offset the distance between 64-wide
//   column blocks.
//
// Accumulator layout of wgmma m64nN (f32): warp w of the warpgroup owns rows 16w .. 16w + 15,
// and within its rows the layout of mma.m16n8k16's C fragment repeated over N / 8 column
// blocks: d[4j + 0, 1] = (row g, columns 8j + 2c, +1), d[4j + 2, 3] = (row g + 8, same), with
// g = lane / 4, c = lane % 4. A register A operand (m64k16) is likewise the mma.m16n8k16 A
// fragment of the warp's 16 rows, so probabilities move from the S accumulators to the A
// operand of P V without leaving the thread.
#pragma once

#include <cuda.h>  // CUtensorMap (type only; libcuda is not linked)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace l2a::kernels::detail {

__device__ __forceinline__ uint32_t smem_u32(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// ---- matrix descriptors ---------------------------------------------------------------------

__device__ __forceinline__ uint64_t swizzle128_descriptor(uint32_t smem_address,
                                                          uint32_t leading_bytes,
                                                          uint32_t stride_bytes) {
    return uint64_t((smem_address & 0x3ffff) >> 4) | (uint64_t(leading_bytes >> 4) << 16) |
           (uint64_t(stride_bytes >> 4) << 32) | (uint64_t(1) << 62);
}

// ---- wgmma ----------------------------------------------------------------------------------

// Orders this thread's earlier register writes (accumulators, A fragments) before the
// following wgmma instructions read them.
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

// wgmma writes its accumulators asynchronously, behind the compiler's back: pinning each
// register around issue and wait keeps the compiler from moving reads or writes of them across.
template <int N>
__device__ __forceinline__ void pin_registers(float (&values)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(values[i])::"memory");
}

#define L2A_WGMMA_ACC64_TEXT                                                           \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "           \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define L2A_WGMMA_ACC64_OPERANDS                                                                   \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),            \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),    \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), \
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), \
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), \
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), \
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), \
        "+f"(d[63])
#define L2A_WGMMA_ACC32_TEXT                                                 \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define L2A_WGMMA_ACC32_OPERANDS                                                                   \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),            \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),    \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), \
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// D[64 x N] (+)= A[64 x 16] B[16 x N] for the S tiles' widths (N = 176 and 192, COUNT = N / 2
// accumulators per thread); A and B K-major in shared memory. `accumulate` = 0 overwrites D.
// The operands after the accumulators are a, b and accumulate: %COUNT, %COUNT+1, %COUNT+2.
#define L2A_WGMMA_ACC88_TEXT                                                                     \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, " \
    "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, " \
    "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, " \
    "%74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87"
#define L2A_WGMMA_ACC88_OPERANDS                                                                   \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),            \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),    \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), \
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), \
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), \
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), \
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), \
        "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), \
        "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), \
        "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), \
        "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])
#define L2A_WGMMA_ACC96_TEXT L2A_WGMMA_ACC88_TEXT ", %88, %89, %90, %91, %92, %93, %94, %95"
#define L2A_WGMMA_ACC96_OPERANDS                                                               \
    L2A_WGMMA_ACC88_OPERANDS, "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), \
        "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
#define L2A_WGMMA_SS_WIDE(N, COUNT, TEXT, OPERANDS, A, B, ACCUMULATE)                              \
    template <typename Element>                                                                    \
    __device__ __forceinline__ void wgmma_ss_m64n##N##k16(float(&d)[COUNT], uint64_t a,            \
                                                          uint64_t b, int accumulate) {            \
        if constexpr (std::is_same_v<Element, __nv_bfloat16>) {                                    \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ACCUMULATE                          \
                         ", 0;\n"                                                                  \
                         "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 {" TEXT         \
                         "}, %" #A ", %" #B ", p, 1, 1, 0, 0;\n}\n"                                \
                         : OPERANDS                                                                \
                         : "l"(a), "l"(b), "r"(accumulate));                                       \
        } else {                                                                                   \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ACCUMULATE                          \
                         ", 0;\n"                                                                  \
                         "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.f16.f16 {" TEXT "}, %" #A \
                         ", %" #B ", p, 1, 1, 0, 0;\n}\n"                                          \
                         : OPERANDS                                                                \
                         : "l"(a), "l"(b), "r"(accumulate));                                       \
        }                                                                                          \
    }
L2A_WGMMA_SS_WIDE(176, 88, L2A_WGMMA_ACC88_TEXT, L2A_WGMMA_ACC88_OPERANDS, 88, 89, 90)
L2A_WGMMA_SS_WIDE(192, 96, L2A_WGMMA_ACC96_TEXT, L2A_WGMMA_ACC96_OPERANDS, 96, 97, 98)
#undef L2A_WGMMA_SS_WIDE
#undef L2A_WGMMA_ACC96_TEXT
#undef L2A_WGMMA_ACC96_OPERANDS
#undef L2A_WGMMA_ACC88_TEXT
#undef L2A_WGMMA_ACC88_OPERANDS

// D[64 x 128] += A[64 x 16] B[16 x 128]; A in registers, B MN-major (transposed) in shared
// memory.
template <typename Element>
__device__ __forceinline__ void wgmma_rs_m64n128k16(float (&d)[64], const uint32_t (&a)[4],
                                                    uint64_t b) {
    if constexpr (std::is_same_v<Element, __nv_bfloat16>) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" L2A_WGMMA_ACC64_TEXT
            "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
            : L2A_WGMMA_ACC64_OPERANDS
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(1));
    } else {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" L2A_WGMMA_ACC64_TEXT
            "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
            : L2A_WGMMA_ACC64_OPERANDS
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(1));
    }
}

// D[64 x 64] += A[64 x 16] B[16 x 64]; as above.
template <typename Element>
__device__ __forceinline__ void wgmma_rs_m64n64k16(float (&d)[32], const uint32_t (&a)[4],
                                                   uint64_t b) {
    if constexpr (std::is_same_v<Element, __nv_bfloat16>) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" L2A_WGMMA_ACC32_TEXT
            "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
            : L2A_WGMMA_ACC32_OPERANDS
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(1));
    } else {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" L2A_WGMMA_ACC32_TEXT
            "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
            : L2A_WGMMA_ACC32_OPERANDS
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(1));
    }
}

template <int HeadDim, typename Element>
__device__ __forceinline__ void wgmma_rs_pv(float (&d)[HeadDim / 2], const uint32_t (&a)[4],
                                            uint64_t b) {
    if constexpr (HeadDim == 128) {
        wgmma_rs_m64n128k16<Element>(d, a, b);
    } else {
        wgmma_rs_m64n64k16<Element>(d, a, b);
    }
}

#undef L2A_WGMMA_ACC64_TEXT
#undef L2A_WGMMA_ACC64_OPERANDS
#undef L2A_WGMMA_ACC32_TEXT
#undef L2A_WGMMA_ACC32_OPERANDS

// ---- mbarriers ------------------------------------------------------------------------------

__device__ __forceinline__ void mbarrier_init(uint64_t* barrier, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(barrier)), "r"(count)
                 : "memory");
}

// Makes barrier initialization visible to the copy engine (the async proxy).
__device__ __forceinline__ void mbarrier_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* barrier) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(barrier)) : "memory");
}

// Arrives and announces `bytes` of copy-engine writes that must land before the phase completes.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint64_t* barrier, uint32_t bytes) {
    asm volatile(
        "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(barrier)),
        "r"(bytes)
        : "memory");
}

// Waits until the phase with the given parity (0 or 1) has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* barrier, uint32_t parity) {
    const uint32_t address = smem_u32(barrier);
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n.reg .pred ready;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2;\n"
            "selp.u32 %0, 1, 0, ready;\n}\n"
            : "=r"(done)
            : "r"(address), "r"(parity)
            : "memory");
    } while (done == 0);
}

// ---- clusters -------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t cluster_block_rank() {
    uint32_t rank = 0;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
    return rank;
}

// Arrives on the barrier at `barrier`'s offset in the cluster's block of rank `block`. Default
// semantics, as a release of a stage needs: the reads it releases are the wgmma reads of
// shared memory, complete once wgmma.wait_group returns (a cluster-scope release compiles to a
// GPU-wide fence before the arrive, on the consumers' critical path).
__device__ __forceinline__ void mbarrier_arrive_remote(uint64_t* barrier, uint32_t block) {
    uint32_t remote = 0;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n"
                 : "=r"(remote)
                 : "r"(smem_u32(barrier)), "r"(block));
    asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(remote) : "memory");
}

// Every thread of every block of the cluster (not required to be converged).
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

// ---- bulk tensor copy -----------------------------------------------------------------------

// Copies the box at coordinates (c0, c1, c2) of a 3-D tensor map into shared memory, completing
// `bytes` on `barrier`.
__device__ __forceinline__ void tma_load_3d(void* destination, const CUtensorMap* map,
                                            uint64_t* barrier, int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes "
        "[%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_u32(destination)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_u32(barrier))
        : "memory");
}

// As tma_load_3d, into the same shared-memory offset of every block of the cluster named in
// `cta_mask` (bit i: rank i), completing the bytes each receives on the barrier at `barrier`'s
// offset in that block.
__device__ __forceinline__ void tma_load_3d_multicast(void* destination, const CUtensorMap* map,
                                                      uint64_t* barrier, int c0, int c1, int c2,
                                                      uint16_t cta_mask) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        ".multicast::cluster [%0], [%1, {%2, %3, %4}], [%5], %6;\n" ::"r"(smem_u32(destination)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_u32(barrier)),
        "h"(cta_mask)
        : "memory");
}

__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Makes this thread's ordinary shared-memory writes (cp.async included) visible to wgmma.
__device__ __forceinline__ void fence_proxy_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Barrier among `threads` threads (a multiple of 32) on hardware barrier `id` (1..15).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Arrives on hardware barrier `id` (counted towards `threads`) without waiting.
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- register reallocation between warpgroups -----------------------------------------------

template <int Registers>
__device__ __forceinline__ void warpgroup_registers_decrease() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}
template <int Registers>
__device__ __forceinline__ void warpgroup_registers_increase() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

}  // namespace l2a::kernels::detail
