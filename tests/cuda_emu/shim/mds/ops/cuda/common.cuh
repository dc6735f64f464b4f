// Stand-in for src/mds/ops/cuda/common.cuh under the emulator (../../../../emu.h): CUDA's 16-bit
// types are the host's mds::bf16 and mds::fp16 (core/bf16.h, core/fp16.h: the same bits as
// CUDA's round-to-nearest-even conversions), with common.cuh's to_float / from_float and
// dynamic_smem; the warp and block reductions are the repo's own reductions.cuh, compiled over
// emu.h's shuffles and barriers (the same tree, so the same sums in the same order). Not the grid
// sizing or the launch check: host code. The device math the kernels call (expf, sqrt, fmaxf,
// isfinite, INFINITY) is the host's libm.
#pragma once

#include <math.h>  // the global ::isfinite, as CUDA's device code has it

#include <cmath>
#include <cstdint>
#include <utility>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime_api.h"
#include "emu.h"
#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/grid.h"

namespace mds::ops::cuda {

// Runs every block of the grid before it returns (each stream's work runs at once, in order).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, unsigned threads, size_t smem_bytes,
            cudaStream_t /*stream*/, Args&&... args) {
  allow_smem(kernel, smem_bytes);
  const auto body = [&] { kernel(args...); };
  using Body = decltype(body);
  MDS_CUDA_CHECK(emu_runtime::run_kernel(
      reinterpret_cast<const void*>(kernel), grid, threads, smem_bytes,
      [](void* closure) { (*static_cast<const Body*>(closure))(); },
      const_cast<void*>(static_cast<const void*>(&body))));
}

inline float to_float(float x) {
  return x;
}
inline float to_float(__nv_bfloat16 x) {
  return static_cast<float>(x);
}
inline float to_float(__half x) {
  return static_cast<float>(x);
}
template <typename T>
T from_float(float x) {
  return T(x);
}

// The block's dynamic shared memory: emu.h's poisoned, race-checked buffer.
inline unsigned char* dynamic_smem() {
  return emu::block().smem;
}

}  // namespace mds::ops::cuda

#include "mds/ops/cuda/reductions.cuh"  // the real ones, over emu.h's shuffles and barriers
