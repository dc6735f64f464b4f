// Warp-level tensor-core and async-copy primitives (inline PTX, sm_80 and later) for the FA2
// attention kernels (attention_mma*.cuh): mma.sync m16n8k16 on bf16 / fp16 with fp32
// accumulators, ldmatrix x4 (plain and .trans), cp.async global -> shared with zero fill.
//
// Fragment layouts (PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type"; CuTe's
// SM80_16x8x16 traits say the same). lane = 4 g + t (g = lane / 4 in [0, 8), t = lane % 4); a
// 32-bit register holds two 16-bit elements, the lower index in the low half:
//   A (16 x 16, row): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8,
//   2t+8..) B (16 x 8, col):  b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8..2t+9, n g) C (16 x 8,
//   fp32): c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
// So the C fragments of two adjacent 8-column blocks, converted pairwise to 16 bits, are exactly
// the A fragment of a product over those 16 columns (FlashAttention-2's register trick).
//
// ldmatrix x4: lanes 8i .. 8i+7 give the row addresses (16 bytes each) of 8 x 8 matrix i, and
// register i of lane 4g + t receives matrix i's (g, 2t..2t+1); with .trans, (2t, g) and (2t+1, g).
//
// Each wrapper's PTX is compiled for the device only (__CUDA_ARCH__); the host pass sees an empty
// body it never calls. A host emulation of the kernels substitutes this header as a whole.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace mds::ops::cuda {

// A plain shared-memory load, named so that the emulation can check what it reads.
template <typename V>
__device__ __forceinline__ V lds(const V* p) {
  return *p;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// (lo, hi) rounded to nearest even into one register of two T, lo in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// c[16 x 8] += a[16 x 16] b[16 x 8] (fragments above), fp32 accumulation.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1);
template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
                                                            uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&c)[4], const uint32_t (&a)[4],
                                                     uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Four 8 x 8 matrices of 16-bit elements from shared memory; p: this lane's row (16 bytes,
// 16-byte aligned).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#endif
}

// 16 bytes global -> shared, asynchronously (L2 only, .cg); zeros when !valid (src is then not
// read, but must still be a mapped address). Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
#endif
}
// 4 bytes global -> shared (.ca), zeros when !valid. Both addresses 4-byte aligned.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 4 : 0)
               : "memory");
#endif
}
// Closes this thread's group of cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's committed groups are still in flight. Other threads see
// the data only after a barrier that follows the wait.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace mds::ops::cuda
