// Token embedding on the GPU, matching ops/cpu/embedding.cpp, vocab range aware.
//
// The backward is deterministic without atomics and bit-identical to the CPU's, which adds each
// token's dx into its row in token order. Here the tokens are first sorted by row with a stable
// radix sort (CUB; ids [n] -> (row, position) pairs, rows outside this rank's vocabulary range
// sorted last and skipped), so the tokens of one row form a segment in token order. One block
// per (segment, 128 columns) then starts from the row's dtable value and adds the segment's dx
// rows in order: the CPU's sums, bit for bit, with every row's update in parallel and each
// column coalesced across a warp. (Walking the tokens in order on h threads, as the CPU does,
// costs one dependent global round trip per token: milliseconds at 16k tokens.)
//
// 16-bit: the table is a 16-bit model weight, so the forward is a copy; the backward adds 16-bit
// dx into the fp32 gradient (main_grad) in fp32, the same sums as the CPU's over the same values.
#include <cub/device/device_radix_sort.cuh>

#include "mds/core/error.h"
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/embedding.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using embedding_kernels::embedding_backward_kernel;
using embedding_kernels::embedding_forward_kernel;
using embedding_kernels::kThreads;
using embedding_kernels::row_keys_kernel;

template <typename T>
void forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h, int64_t vocab_begin,
             int64_t rows, cudaStream_t stream) {
  if (n * h == 0) return;
  launch(embedding_forward_kernel<T>, blocks_for(n, 1), kThreads, 0, stream, x, ids, table, n, h,
         vocab_begin, rows);
}

template <typename T>
void backward(float* dtable, const T* dx, const int32_t* ids, int64_t n, int64_t h,
              int64_t vocab_begin, int64_t rows, cudaStream_t stream) {
  if (n * h == 0) return;
  MDS_ASSERT(n < (int64_t{1} << 31) && rows < (int64_t{1} << 31) - 1,
             "embedding backward of {} tokens over {} rows", n, rows);
  const auto count = static_cast<size_t>(n);
  DeviceBuffer<uint32_t> keys(count), sorted_keys(count);
  DeviceBuffer<int32_t> positions(count), sorted_positions(count);
  launch(row_keys_kernel, blocks_for(n, kThreads), kThreads, 0, stream, keys.data(),
         positions.data(), ids, n, vocab_begin, rows);
  int end_bit = 1;  // keys are at most rows: sort only the bits that can be set
  while (end_bit < 32 && (uint64_t{1} << end_bit) <= static_cast<uint64_t>(rows)) ++end_bit;
  size_t temp_bytes = 0;
  MDS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys.data(),
                                                 sorted_keys.data(), positions.data(),
                                                 sorted_positions.data(), n, 0, end_bit, stream));
  DeviceBuffer<unsigned char> temp(temp_bytes);
  MDS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys.data(),
                                                 sorted_keys.data(), positions.data(),
                                                 sorted_positions.data(), n, 0, end_bit, stream));
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((h + kThreads - 1) / kThreads));
  MDS_ASSERT(grid.y <= 65535, "embedding backward over {} columns", h);
  launch(embedding_backward_kernel<T>, grid, kThreads, 0, stream, dtable, dx, sorted_keys.data(),
         sorted_positions.data(), n, h, rows);
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
