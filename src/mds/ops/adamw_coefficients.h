// The scalar coefficients of one AdamW step, formed in double (as torch.optim.AdamW's Python
// floats are) and rounded to fp32 once, so that the CPU kernel (ops/cpu/adamw.cpp), the CUDA
// kernel (ops/cuda/adamw.cu) and its CPU emulation (tests/cuda_emu) take the same values.
#pragma once

#include <cmath>
#include <cstdint>

namespace mds::ops {

struct AdamWCoefficients {
  float decay;                       // 1 - lr * weight_decay
  float one_minus_b1, one_minus_b2;  // 1 - beta1, 1 - beta2
  float step_size;                   // lr / (1 - beta1^step)
  float bias2_sqrt;                  // sqrt(1 - beta2^step)
};

inline AdamWCoefficients adamw_coefficients(float lr, float beta1, float beta2, float weight_decay,
                                            int64_t step) {
  const double b1 = beta1, b2 = beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step));
  return {static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay),
          static_cast<float>(1.0 - b1), static_cast<float>(1.0 - b2),
          static_cast<float>(static_cast<double>(lr) / bias1),
          static_cast<float>(std::sqrt(bias2))};
}

}  // namespace mds::ops
