// Stand-in for <cuda_fp16.h> under the CPU emulator: __half is the host's mds::fp16
// (core/fp16.h), which converts with the bits of __float2half_rn.
#pragma once

#include "mds/core/fp16.h"

using __half = mds::fp16;

inline float __half2float(__half x) {
  return static_cast<float>(x);
}
inline __half __float2half_rn(float x) {
  return __half(x);
}
inline __half __float2half(float x) {
  return __half(x);
}
