// Cross entropy over a padded, possibly vocab-parallel vocabulary on the GPU, matching
// ops/cpu/cross_entropy.cpp: one block per row for each of Megatron's three passes (local max,
// local sum of exponentials, finish), and the single-device forms built from the same passes
// with the whole row as the local slice. The sum of exponentials is accumulated per thread in
// float over a strided slice and combined in double (the CPU sums float blocks of 1024 in double:
// same accuracy class, not the same bits).
//
// Targets come from user data, and the caller checks them on the host (ops/targets.h: the
// model's head, once per micro-batch), so the kernels never stop the stream to check them. A
// target outside this slice's columns is no target here (target logit 0, no -dscale); an invalid
// one gives its row a meaningless loss but reads and writes nothing out of bounds.
//
// 16-bit (bf16, fp16) logits: the max and sum passes read them as fp32. The fp32 path keeps the
// exponentials of pass 2 in dlogits and scales them in pass 3; in 16 bits that would round each
// probability twice and lose the low bits of the small ones, so the 16-bit finish recomputes
// exp(x - max) from the logits (one more read of a row, no fp32 scratch of [n, vocab]) and
// rounds once.

#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/cross_entropy.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using cross_entropy_kernels::finish_from_logits_kernel;
using cross_entropy_kernels::finish_kernel;
using cross_entropy_kernels::local_max_kernel;
using cross_entropy_kernels::local_sum_exp_kernel;

constexpr int kThreads = 256;

__host__ __device__ inline int64_t real_columns(int64_t cols, int64_t col_begin, int64_t vocab) {
  const int64_t r = vocab - col_begin;
  return r < 0 ? 0 : (r > cols ? cols : r);
}

template <typename T>
void local_max(float* row_max, float* target_logit, const T* logits, const int32_t* targets,
               int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, cudaStream_t stream) {
  if (n == 0) return;
  launch(local_max_kernel<T>, static_cast<unsigned>(n), kThreads, 0, stream, row_max, target_logit,
         logits, targets, cols, col_begin, real_columns(cols, col_begin, vocab));
}

template <typename T>
void local_sum_exp(double* sum_exp, float* exps, const T* logits, const float* row_max, int64_t n,
                   int64_t cols, int64_t col_begin, int64_t vocab, cudaStream_t stream) {
  if (n == 0) return;
  launch(local_sum_exp_kernel<T>, static_cast<unsigned>(n), kThreads, 0, stream, sum_exp, exps,
         logits, row_max, cols, real_columns(cols, col_begin, vocab));
}

template <typename H>
void finish_from_logits(float* losses, H* dlogits, const H* logits, const float* row_max,
                        const double* sum_exp, const float* target_logit, const int32_t* targets,
                        int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale,
                        cudaStream_t stream) {
  if (n == 0) return;
  launch(finish_from_logits_kernel<H>, static_cast<unsigned>(n), kThreads, 0, stream, losses,
         dlogits, logits, row_max, sum_exp, target_logit, targets, cols, col_begin,
         real_columns(cols, col_begin, vocab), dscale);
}

// The single-device form on 16-bit logits: the three passes over the whole row (dlogits null:
// the losses only).
template <typename H>
void forward_backward_half(float* losses, H* dlogits, const H* logits, const int32_t* targets,
                           int64_t n, int64_t vpad, int64_t vocab, float dscale,
                           cudaStream_t stream) {
  DeviceBuffer<float> row_max(static_cast<size_t>(n)), target_logit(static_cast<size_t>(n));
  DeviceBuffer<double> sum_exp(static_cast<size_t>(n));
  local_max(row_max.data(), target_logit.data(), logits, targets, n, vpad, 0, vocab, stream);
  local_sum_exp<H>(sum_exp.data(), nullptr, logits, row_max.data(), n, vpad, 0, vocab, stream);
  finish_from_logits(losses, dlogits, logits, row_max.data(), sum_exp.data(), target_logit.data(),
                     targets, n, vpad, 0, vocab, dscale, stream);
}

}  // namespace

void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream) {
  local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab, stream);
}

void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                 const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                 int64_t vocab, cudaStream_t stream) {
  local_sum_exp(sum_exp, exps, logits, row_max, n, cols, col_begin, vocab, stream);
}

void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, float dscale,
                          cudaStream_t stream) {
  if (n == 0) return;
  launch(finish_kernel, static_cast<unsigned>(n), kThreads, 0, stream, losses, dlogits, row_max,
         sum_exp, target_logit, targets, cols, col_begin, dscale);
}

// The single-device forms: one rank holding every column (col_begin 0, cols = vpad).
void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream) {
  DeviceBuffer<float> row_max(static_cast<size_t>(n)), target_logit(static_cast<size_t>(n));
  DeviceBuffer<double> sum_exp(static_cast<size_t>(n));
  cross_entropy_local_max(row_max.data(), target_logit.data(), logits, targets, n, vpad, 0, vocab,
                          stream);
  // Pass 2 writes the exponentials into dlogits (which may alias logits: the target's logit was
  // saved by pass 1, and each element is read before it is overwritten by the same thread);
  // with dlogits null it keeps none and pass 3 computes the losses only.
  cross_entropy_local_sum_exp(sum_exp.data(), dlogits, logits, row_max.data(), n, vpad, 0, vocab,
                              stream);
  cross_entropy_finish(losses, dlogits, row_max.data(), sum_exp.data(), target_logit.data(),
                       targets, n, vpad, 0, dscale, stream);
}

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream) {
  // The same passes without a gradient: pass 2 keeps no exponentials, pass 3 writes no dlogits.
  cross_entropy_forward_backward(losses, nullptr, logits, targets, n, vpad, vocab, 0.0f, stream);
}

// ---- 16-bit logits ----

void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream) {
  local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab, stream);
}

void cross_entropy_local_max(float* row_max, float* target_logit, const fp16* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream) {
  local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab, stream);
}

void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits, const float* row_max,
                                 int64_t n, int64_t cols, int64_t col_begin, int64_t vocab,
                                 cudaStream_t stream) {
  local_sum_exp<bf16>(sum_exp, nullptr, logits, row_max, n, cols, col_begin, vocab, stream);
}

void cross_entropy_local_sum_exp(double* sum_exp, const fp16* logits, const float* row_max,
                                 int64_t n, int64_t cols, int64_t col_begin, int64_t vocab,
                                 cudaStream_t stream) {
  local_sum_exp<fp16>(sum_exp, nullptr, logits, row_max, n, cols, col_begin, vocab, stream);
}

void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale,
                          cudaStream_t stream) {
  finish_from_logits(losses, dlogits, logits, row_max, sum_exp, target_logit, targets, n, cols,
                     col_begin, vocab, dscale, stream);
}

void cross_entropy_finish(float* losses, fp16* dlogits, const fp16* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale,
                          cudaStream_t stream) {
  finish_from_logits(losses, dlogits, logits, row_max, sum_exp, target_logit, targets, n, cols,
                     col_begin, vocab, dscale, stream);
}

void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream) {
  forward_backward_half(losses, dlogits, logits, targets, n, vpad, vocab, dscale, stream);
}

void cross_entropy_forward_backward(float* losses, fp16* dlogits, const fp16* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream) {
  forward_backward_half(losses, dlogits, logits, targets, n, vpad, vocab, dscale, stream);
}

void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream) {
  forward_backward_half<bf16>(losses, nullptr, logits, targets, n, vpad, vocab, 0.0f, stream);
}

void cross_entropy_forward(float* losses, const fp16* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream) {
  forward_backward_half<fp16>(losses, nullptr, logits, targets, n, vpad, vocab, 0.0f, stream);
}

}  // namespace mds::ops::cuda
