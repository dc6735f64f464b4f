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
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 128;

// A block per token (grid-stride), its threads over the h columns of the row it copies.
template <typename T>
__global__ void embedding_forward_kernel(T* x, const int32_t* ids, const T* table, int64_t n,
                                         int64_t h, int64_t vocab_begin, int64_t rows) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    const bool here = r >= 0 && r < rows;
    const T* src = table + (here ? r : 0) * h;
    T* dst = x + i * h;
    for (int64_t j = threadIdx.x; j < h; j += blockDim.x)
      dst[j] = here ? src[j] : from_float<T>(0.0f);
  }
}

// keys[i] = the local row of token i (rows when outside [vocab_begin, vocab_begin + rows)),
// positions[i] = i.
__global__ void row_keys_kernel(uint32_t* keys, int32_t* positions, const int32_t* ids, int64_t n,
                                int64_t vocab_begin, int64_t rows) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    keys[i] = static_cast<uint32_t>(r >= 0 && r < rows ? r : rows);
    positions[i] = static_cast<int32_t>(i);
  }
}

// Block (p, c): if sorted position p starts a segment of an in-range row, columns
// [c * kThreads, (c + 1) * kThreads) of that row get the segment's dx rows added in token order.
template <typename T>
__global__ void embedding_backward_kernel(float* __restrict__ dtable, const T* __restrict__ dx,
                                          const uint32_t* __restrict__ keys,
                                          const int32_t* __restrict__ positions, int64_t n,
                                          int64_t h, int64_t rows) {
  const int64_t p = blockIdx.x;
  const uint32_t row = keys[p];
  if (row == rows || (p > 0 && keys[p - 1] == row)) return;  // outside, or not a segment head
  int64_t end = p + 1;
  while (end < n && keys[end] == row) ++end;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (j >= h) return;
  float* d = dtable + static_cast<int64_t>(row) * h + j;
  float acc = *d;
#pragma unroll 8
  for (int64_t q = p; q < end; ++q) acc += to_float(dx[static_cast<int64_t>(positions[q]) * h + j]);
  *d = acc;
}

template <typename T>
void forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h, int64_t vocab_begin,
             int64_t rows, cudaStream_t stream) {
  if (n * h == 0) return;
  embedding_forward_kernel<T>
      <<<blocks_for(n, 1), kThreads, 0, stream>>>(x, ids, table, n, h, vocab_begin, rows);
  MDS_CUDA_LAUNCH_CHECK();
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
  row_keys_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(keys.data(), positions.data(),
                                                                    ids, n, vocab_begin, rows);
  MDS_CUDA_LAUNCH_CHECK();
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
  embedding_backward_kernel<T><<<grid, kThreads, 0, stream>>>(dtable, dx, sorted_keys.data(),
                                                              sorted_positions.data(), n, h, rows);
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
