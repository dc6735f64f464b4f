// Token embedding on the GPU, matching ops/cpu/embedding.cpp, vocab range aware.
//
// The backward is deterministic without atomics, the CPU's scheme moved to threads: each thread
// owns one column j of the hidden dimension and walks the n tokens in order, adding dx[i, j] to
// dtable[ids[i] - vocab_begin, j]. Threads of a warp touch adjacent columns, so every access is
// coalesced, and no two threads ever write the same address; the sums are in token order, bit
// identical to the CPU's. The cost is parallelism: only h threads, each doing n steps (h = 2048,
// n = 16k tokens: 16 blocks, ~0.1 ms of loads at best) — fine for correctness, a to-do for speed
// (sort ids once per step, then one block per unique id sums its tokens in order).
//
// 16-bit: the table is a 16-bit model weight, so the forward is a copy; the backward adds 16-bit
// dx into the fp32 gradient (main_grad) in fp32, the same sums as the CPU's over the same values.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void embedding_forward_kernel(T* x, const int32_t* ids, const T* table, int64_t n,
                                         int64_t h, int64_t vocab_begin, int64_t rows) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * h;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / h, j = t % h;
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    x[t] = r >= 0 && r < rows ? table[r * h + j] : from_float<T>(0.0f);
  }
}

template <typename T>
__global__ void embedding_backward_kernel(float* dtable, const T* dx, const int32_t* ids, int64_t n,
                                          int64_t h, int64_t vocab_begin, int64_t rows) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= h) return;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    if (r >= 0 && r < rows) dtable[r * h + j] += to_float(dx[i * h + j]);
  }
}

template <typename T>
void forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h, int64_t vocab_begin,
             int64_t rows, cudaStream_t stream) {
  if (n * h == 0) return;
  embedding_forward_kernel<T><<<blocks_for(n * h, kThreads), kThreads, 0, stream>>>(
      x, ids, table, n, h, vocab_begin, rows);
  MDS_CUDA_LAUNCH_CHECK();
}

template <typename T>
void backward(float* dtable, const T* dx, const int32_t* ids, int64_t n, int64_t h,
              int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  if (n * h == 0) return;
  embedding_backward_kernel<T>
      <<<blocks_for(h, kThreads), kThreads, 0, stream>>>(dtable, dx, ids, n, h, vocab_begin, rows);
  MDS_CUDA_LAUNCH_CHECK();
}

}  // namespace

void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  forward(x, ids, table, n, h, vocab_begin, rows, stream);
}

void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  backward(dtable, dx, ids, n, h, vocab_begin, rows, stream);
}

void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  forward(x, ids, table, n, h, vocab_begin, rows, stream);
}

void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  backward(dtable, dx, ids, n, h, vocab_begin, rows, stream);
}

void embedding_forward(fp16* x, const int32_t* ids, const fp16* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  forward(x, ids, table, n, h, vocab_begin, rows, stream);
}

void embedding_backward(float* dtable, const fp16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  backward(dtable, dx, ids, n, h, vocab_begin, rows, stream);
}

}  // namespace mds::ops::cuda
