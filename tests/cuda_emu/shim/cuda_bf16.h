// Stand-in for <cuda_bf16.h> under the CPU emulator: __nv_bfloat16 is the host's mds::bf16
// (core/bf16.h), which converts with the bits of CUDA's round-to-nearest-even conversions.
#pragma once

#include "mds/core/bf16.h"

using __nv_bfloat16 = mds::bf16;

inline float __bfloat162float(__nv_bfloat16 x) {
  return static_cast<float>(x);
}
inline __nv_bfloat16 __float2bfloat16_rn(float x) {
  return __nv_bfloat16(x);
}
inline __nv_bfloat16 __float2bfloat16(float x) {
  return __nv_bfloat16(x);
}
