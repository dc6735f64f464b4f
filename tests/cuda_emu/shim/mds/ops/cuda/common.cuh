// Stand-in for src/mds/ops/cuda/common.cuh under the emulator (../../../../emu.h): CUDA's 16-bit
// types are the host's mds::bf16 and mds::fp16 (core/bf16.h, core/fp16.h: the same bits as
// CUDA's round-to-nearest-even conversions), with common.cuh's to_float / from_float and its warp
// reductions (the same butterflies, over emu.h's __shfl_xor_sync). Only what the emulated kernels
// use: not the grid sizing, the launch check or the block reductions.
#pragma once

#include <cmath>
#include <cstdint>

#include "emu.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

using __nv_bfloat16 = mds::bf16;
using __half = mds::fp16;

namespace mds::ops::cuda {

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

template <typename T>
T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace mds::ops::cuda
