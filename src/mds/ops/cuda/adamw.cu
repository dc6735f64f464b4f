// AdamW on the GPU over a flat buffer in one pass, matching ops/cpu/adamw.cpp: the scalar
// coefficients are formed on the host in double exactly as the CPU forms them, the per-element
// arithmetic is the same fp32 sequence (IEEE division and sqrt: nvcc's defaults, no fast math),
// so a step agrees with the CPU's to the last bit or two (FMA contraction may differ).
//
// Mixed precision: the same kernel also writes H(p) into the model's 16-bit weights (bf16 or fp16)
// when given them, so the fp32 master is read once and the 16-bit copy needs no pass of its own.
#include <cmath>

#include "mds/ops/adamw_coefficients.h"
#include "mds/ops/cuda/adamw.cuh"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using adamw_kernels::adamw_kernel;

constexpr int kThreads = 256;

template <typename H>
void update(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
            float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
            cudaStream_t stream) {
  if (n == 0) return;
  const AdamWCoefficients c = adamw_coefficients(lr, beta1, beta2, weight_decay, step);
  launch(adamw_kernel<H>, blocks_for(n, kThreads), kThreads, 0, stream, p, p_half, g, m, v, n,
         c.decay, beta1, beta2, c.one_minus_b1, c.one_minus_b2, c.step_size, c.bias2_sqrt, eps,
         grad_scale);
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
