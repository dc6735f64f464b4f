// AdamW on the GPU over a flat buffer in one pass, matching ops/cpu/adamw.cpp: the scalar
// coefficients are formed on the host in double exactly as the CPU forms them, the per-element
// arithmetic is the same fp32 sequence (IEEE division and sqrt: nvcc's defaults, no fast math),
// so a step agrees with the CPU's to the last bit or two (FMA contraction may differ).
//
// Mixed precision: the same kernel also writes H(p) into the model's 16-bit weights (bf16 or fp16)
// when given them, so the fp32 master is read once and the 16-bit copy needs no pass of its own.
#include <cmath>

#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;

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

template <typename H>
void update(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
            float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
            cudaStream_t stream) {
  if (n == 0) return;
  const double b1 = beta1, b2 = beta2;
  const auto decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  const auto one_minus_b1 = static_cast<float>(1.0 - b1);
  const auto one_minus_b2 = static_cast<float>(1.0 - b2);
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step));
  const auto step_size = static_cast<float>(static_cast<double>(lr) / bias1);
  const auto bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  adamw_kernel<H><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(
      p, p_half, g, m, v, n, decay, beta1, beta2, one_minus_b1, one_minus_b2, step_size, bias2_sqrt,
      eps, grad_scale);
  MDS_CUDA_LAUNCH_CHECK();
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                cudaStream_t stream) {
  update<float>(p, nullptr, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale,
                stream);
}

void adamw_step(float* p, bf16* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale, cudaStream_t stream) {
  update(p, p_half, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale, stream);
}

void adamw_step(float* p, fp16* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale, cudaStream_t stream) {
  update(p, p_half, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale, stream);
}

}  // namespace mds::ops::cuda
