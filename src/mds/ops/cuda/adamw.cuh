// The AdamW kernel that adamw.cu launches (see there for what it computes): one fused pass over
// the flat buffer, writing the 16-bit copy when given one.
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::adamw_kernels {

// H: the 16-bit copy's type (float and a null p_half for the fp32 step).
template <typename H>
__global__ void adamw_kernel(float* p, H* p_half, const float* g, float* m, float* v, int64_t n,
                             float decay, float beta1, float beta2, float one_minus_b1,
                             float one_minus_b2, float step_size, float bias2_sqrt, float eps,
                             float grad_scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i] * grad_scale;
    float pi = p[i] * decay;
    const float mi = m[i] * beta1 + gi * one_minus_b1;
    const float vi = v[i] * beta2 + gi * gi * one_minus_b2;
    const float denom = sqrtf(vi) / bias2_sqrt + eps;
    pi -= step_size * (mi / denom);
    p[i] = pi, m[i] = mi, v[i] = vi;
    if (p_half) p_half[i] = from_float<H>(pi);
  }
}

}  // namespace mds::ops::cuda::adamw_kernels
