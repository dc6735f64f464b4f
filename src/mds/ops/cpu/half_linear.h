// The 16-bit GEMMs of the CPU reference (half_reference.h): OpenBLAS's fp32 products of the exact
// fp32 values of the 16-bit operands, y and dx rounded once, dw accumulated in fp32 (main_grad).
// dx with accumulate_dx: the prior 16-bit dx enters the fp32 GEMM as its C (beta = 1) and the sum
// is rounded once, as cuBLASLt's epilogue does.
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
void linear_forward(H* y, const H* x, const H* w, int64_t m, int64_t k, int64_t n) {
  const std::vector<float> x32 = widen(x, m * k), w32 = widen(w, n * k);
  std::vector<float> y32(static_cast<size_t>(m * n));
  linear_forward(y32.data(), x32.data(), w32.data(), m, k, n);
  narrow(y, y32.data(), m * n);
}

template <typename H>
void linear_backward(H* dx, float* dw, const H* dy, const H* x, const H* w, int64_t m, int64_t k,
                     int64_t n, bool accumulate_dx) {
  const std::vector<float> dy32 = widen(dy, m * n);
  if (dx) {
    const std::vector<float> w32 = widen(w, n * k);
    std::vector<float> dx32 =
        accumulate_dx ? widen(dx, m * k) : std::vector<float>(static_cast<size_t>(m * k));
    linear_backward(dx32.data(), nullptr, dy32.data(), nullptr, w32.data(), m, k, n, accumulate_dx);
    narrow(dx, dx32.data(), m * k);
  }
  if (dw) {
    const std::vector<float> x32 = widen(x, m * k);
    linear_backward(nullptr, dw, dy32.data(), x32.data(), nullptr, m, k, n, false);
  }
}

}  // namespace mds::ops
