// Linear layer GEMMs on the CPU through OpenBLAS cblas_sgemm (row-major, w is [out, in]).
// OpenBLAS splits the output (never the reduction) across its threads, so for a fixed thread
// count the results are bit-identical run to run.
#include <cblas.h>

#include "mds/ops/ops.h"

namespace mds::ops {

// y[m, n] = x[m, k] @ w[n, k]^T
void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k, int64_t n) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty reduction: BLAS would reject lda = 0, the answer is zero
    for (int64_t i = 0; i < m * n; ++i) y[i] = 0.0f;
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(k), w,
              static_cast<blasint>(k), 0.0f, y, static_cast<blasint>(n));
}

// dx[m, k] (=|+=) dy[m, n] @ w[n, k];  dw[n, k] += dy[m, n]^T @ x[m, k]
void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t m, int64_t k, int64_t n, bool accumulate_dx) {
  if (k == 0) return;
  const auto M = static_cast<blasint>(m), K = static_cast<blasint>(k), N = static_cast<blasint>(n);
  if (dx != nullptr && m > 0) {
    if (n == 0) {
      if (!accumulate_dx)
        for (int64_t i = 0; i < m * k; ++i) dx[i] = 0.0f;
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K,
                  accumulate_dx ? 1.0f : 0.0f, dx, K);
    }
  }
  if (dw != nullptr && n > 0 && m > 0) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
  }
}

}  // namespace mds::ops
