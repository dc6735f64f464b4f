// The cross-entropy kernels that cross_entropy.cu launches (see there for what they compute): the
// three vocab-parallel passes (local max and target logit, local sum of exponentials, finish)
// and the 16-bit finish from the logits.
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::cross_entropy_kernels {

template <typename T>
__global__ void local_max_kernel(float* row_max, float* target_logit, const T* logits,
                                 const int32_t* targets, int64_t cols, int64_t col_begin,
                                 int64_t real) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * cols;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < real; j += blockDim.x) mx = fmaxf(mx, to_float(x[j]));
  mx = block_max(mx, scratch);
  if (threadIdx.x == 0) {
    row_max[row] = mx;
    const int64_t t = targets[row] - col_begin;
    target_logit[row] = t >= 0 && t < cols ? to_float(x[t]) : 0.0f;
  }
}

// exps (fp32 only) may be null.
template <typename T>
__global__ void local_sum_exp_kernel(double* sum_exp, float* exps, const T* logits,
                                     const float* row_max, int64_t cols, int64_t real) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * cols;
  float* e = exps ? exps + row * cols : nullptr;
  const float mx = row_max[row];
  float acc = 0.0f;
  for (int64_t j = threadIdx.x; j < real; j += blockDim.x) {
    const float ej = expf(to_float(x[j]) - mx);
    acc += ej;
    if (e) e[j] = ej;
  }
  if (e)
    for (int64_t j = real + threadIdx.x; j < cols; j += blockDim.x) e[j] = 0.0f;
  const double total = block_sum(static_cast<double>(acc), scratch);
  if (threadIdx.x == 0) sum_exp[row] = total;
}

__global__ void finish_kernel(float* losses, float* dlogits, const float* row_max,
                              const double* sum_exp, const float* target_logit,
                              const int32_t* targets, int64_t cols, int64_t col_begin,
                              float dscale) {
  const int64_t row = blockIdx.x;
  if (threadIdx.x == 0)
    losses[row] = static_cast<float>(log(sum_exp[row]) + row_max[row] - target_logit[row]);
  if (!dlogits) return;
  float* dx = dlogits + row * cols;
  const float scale = static_cast<float>(dscale / sum_exp[row]);
  const int64_t t = targets[row] - col_begin;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    dx[j] = j == t ? dx[j] * scale - dscale : dx[j] * scale;
}

// The 16-bit finish: losses as finish_kernel; dlogits from the logits themselves (see the top).
// Each thread reads x[j] before it writes dx[j], so dlogits may alias logits.
template <typename T>
__global__ void finish_from_logits_kernel(float* losses, T* dlogits, const T* logits,
                                          const float* row_max, const double* sum_exp,
                                          const float* target_logit, const int32_t* targets,
                                          int64_t cols, int64_t col_begin, int64_t real,
                                          float dscale) {
  const int64_t row = blockIdx.x;
  if (threadIdx.x == 0)
    losses[row] = static_cast<float>(log(sum_exp[row]) + row_max[row] - target_logit[row]);
  if (!dlogits) return;
  const T* x = logits + row * cols;
  T* dx = dlogits + row * cols;
  const float mx = row_max[row];
  const float scale = static_cast<float>(dscale / sum_exp[row]);
  const int64_t t = targets[row] - col_begin;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float p = j < real ? expf(to_float(x[j]) - mx) * scale : 0.0f;
    dx[j] = from_float<T>(j == t ? p - dscale : p);
  }
}

}  // namespace mds::ops::cuda::cross_entropy_kernels
