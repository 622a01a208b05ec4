// Warp-level tensor-core primitives for sm_80 and newer: 16-byte asynchronous copies into
// shared memory, ldmatrix, and mma.sync m16n8k16 with fp32 accumulation, for bf16 and fp16.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with g = lane / 4 and
// c = lane % 4:
//   A 16x16 (row-major), 4 registers of 2 elements: a0 = (g, 2c..2c+1), a1 = (g+8, 2c..),
//     a2 = (g, 2c+8..), a3 = (g+8, 2c+8..).
//   B 16x8 (k x n), 2 registers: b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g).
//   C 16x8 fp32, 4 values: c0, c1 = (g, 2c..2c+1), c2, c3 = (g+8, 2c..2c+1).
// The lower 16 bits of a packed register hold the element with the lower index.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace l2a::kernels::detail {

// Per-element-type operations: packing two floats into one mma operand register, and the
// matching mma instruction.
template <typename Element>
struct ElementOps;

template <>
struct ElementOps<__nv_bfloat16> {
    static constexpr const char* kName = "bf16";

    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
        uint32_t bits;
        memcpy(&bits, &pair, sizeof(bits));
        return bits;
    }

    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <>
struct ElementOps<__half> {
    static constexpr const char* kName = "fp16";

    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __half2 pair = __floats2half2_rn(lo, hi);
        uint32_t bits;
        memcpy(&bits, &pair, sizeof(bits));
        return bits;
    }

    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Copies 16 bytes from global to shared memory without blocking; when `valid` is false nothing
// is read and the 16 bytes are zero-filled (the source pointer must still be a mapped address).
__device__ __forceinline__ void cp_async_16(void* shared, const void* global, bool valid) {
    const int source_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)),
                 "l"(global), "r"(source_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `Pending` of this thread's committed copy groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and register i
// receives matrix i in the A/B fragment layout (lane holds row lane/4, columns 2(lane%4)..+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row_address))
                 : "memory");
}

// As ldmatrix_x4, transposed: lane receives rows 2(lane%4)..+1 of column lane/4.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row_address))
                 : "memory");
}

}  // namespace l2a::kernels::detail
