// Tensor-core primitives for sm_80+: mma.sync m16n8k16 (bf16 in, float32 accumulate), ldmatrix
// and cp.async, as inline PTX. The GEMM and the flash-attention kernels are built from these.
//
// Why raw mma.sync rather than WMMA: its register layout is specified (PTX ISA, "Matrix Fragments
// for mma.m16n8k16"), so a kernel can apply the softmax to the accumulators in registers and feed
// them straight back as the A operand of the next product, as FlashAttention-2 does. With lane =
// 32·warp + 4·g + t (g = lane/4, t = lane%4):
//   A (16×16, row-major)  a0: (g,   2t..2t+1)   a1: (g+8, 2t..2t+1)
//                         a2: (g, 2t+8..2t+9)   a3: (g+8, 2t+8..2t+9)
//   B (16×8, k × n)       b0: (k = 2t..2t+1, n = g)    b1: (k = 2t+8..2t+9, n = g)
//   C (16×8, float32)     c0, c1: (g, 2t..2t+1)        c2, c3: (g+8, 2t..2t+1)
// Each 32-bit register of A or B holds two bf16, the lower column (or k) in the low half.
//
// ldmatrix.x4 loads four 8×8 bf16 matrices from shared memory: lanes 8i..8i+7 give the row
// addresses of matrix i, and every lane receives, in register i, elements (row g, cols 2t, 2t+1)
// of matrix i — or with .trans, elements (rows 2t, 2t+1, col g), i.e. the transposed matrix.
// So a tile stored with k contiguous gives A or B fragments with plain ldmatrix, and a tile stored
// with k strided gives them with .trans: every transpose is free at fragment-load time.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace longctx::cuda {

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// d += a · b
__device__ __forceinline__ void MmaBf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem_row))
               : "memory");
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem_row))
               : "memory");
}

// Two floats → one register of two bf16 (lo in the low half), rounded to nearest even.
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Copies 16 bytes global → shared without passing through registers; when !valid, writes 16 zero
// bytes instead and reads nothing (src must still be a valid address: pass the tensor's base).
__device__ __forceinline__ void CpAsync16(void* smem, const void* global, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(smem)), "l"(global),
               "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` of this thread's most recent groups are still in flight.
template <int pending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

}  // namespace longctx::cuda
