// The 16-bit RMSNorm of the CPU reference (half_reference.h), plain and fused with the residual
// add: the fp32 kernels on the exact fp32 values of the 16-bit operands; rstd and dw are theirs,
// y and dx (dsum) rounded once. The backward's dx += adds the prior in fp32 and rounds the sum
// once (as the CUDA kernel's dx = H(prior + term)). The fused forward rounds the sum x + r to
// 16-bit first (resid_out, the value stored and read back by the backward) and normalises that.
#pragma once

#include <cstddef>
#include <vector>

#include "mds/core/fp16.h"
#include "mds/ops/cpu/half_scratch.h"
#include "mds/ops/ops.h"

namespace mds::ops {

using half_scratch::narrow;
using half_scratch::widen;

template <typename H>
void rmsnorm_forward(H* y, float* rstd, const H* x, const H* w, int64_t n, int64_t h, float eps) {
  const std::vector<float> x32 = widen(x, n * h), w32 = widen(w, h);
  std::vector<float> y32(static_cast<size_t>(n * h));
  rmsnorm_forward(y32.data(), rstd, x32.data(), w32.data(), n, h, eps);
  narrow(y, y32.data(), n * h);
}

template <typename H>
void rmsnorm_backward(H* dx, float* dw, const H* dy, const H* x, const H* w, const float* rstd,
                      int64_t n, int64_t h) {
  const std::vector<float> dy32 = widen(dy, n * h), x32 = widen(x, n * h), w32 = widen(w, h);
  std::vector<float> dx32 = widen(dx, n * h);  // the prior: dx +=
  rmsnorm_backward(dx32.data(), dw, dy32.data(), x32.data(), w32.data(), rstd, n, h);
  narrow(dx, dx32.data(), n * h);
}

template <typename H>
void rmsnorm_residual_forward(H* y, H* resid_out, float* rstd, const H* x, const H* r, const H* w,
                              int64_t n, int64_t h, float eps) {
  const std::vector<float> r32 = widen(r, n * h), w32 = widen(w, h);
  std::vector<float> sum = widen(x, n * h);
  add_inplace(sum.data(), r32.data(), n * h);
  for (float& v : sum)
    v = static_cast<float>(H(v));  // the stored residual stream, normalised below
  std::vector<float> y32(static_cast<size_t>(n * h));
  rmsnorm_forward(y32.data(), rstd, sum.data(), w32.data(), n, h, eps);
  narrow(resid_out, sum.data(), n * h);  // exact; x and r are read already (may alias)
  narrow(y, y32.data(), n * h);
}

template <typename H>
void rmsnorm_residual_backward(H* dsum, float* dw, const H* dy, const H* dresid, const H* resid_out,
                               const H* w, const float* rstd, int64_t n, int64_t h) {
  const std::vector<float> dy32 = widen(dy, n * h), s32 = widen(resid_out, n * h),
                           w32 = widen(w, h);
  std::vector<float> d32 =
      dresid ? widen(dresid, n * h) : std::vector<float>(static_cast<size_t>(n * h));
  rmsnorm_residual_backward(d32.data(), dw, dy32.data(), d32.data(), s32.data(), w32.data(), rstd,
                            n, h);
  narrow(dsum, d32.data(), n * h);
}

}  // namespace mds::ops
