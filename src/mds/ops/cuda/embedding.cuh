// The embedding kernels that embedding.cu launches (see there for what they compute): the forward's
// row copy, and the backward's sort keys and segment sums (the sort between them is CUB's).
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::embedding_kernels {

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

}  // namespace mds::ops::cuda::embedding_kernels
