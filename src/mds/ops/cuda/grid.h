// The host side of a launch that is plain C++ (common.cuh's launch is nvcc's <<<>>>): grid sizing
// and the opt-in to more dynamic shared memory. Shared with the CPU emulator's stand-in for
// common.cuh (tests/cuda_emu/shim).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "mds/core/cuda_check.h"

namespace mds::ops::cuda {

inline unsigned blocks_for(int64_t work, int threads) {
  int64_t b = (work + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > (int64_t{1} << 30)) b = int64_t{1} << 30;  // kernels loop with a grid stride
  return static_cast<unsigned>(b);
}

// Above 48 KiB a kernel must opt in to its dynamic shared memory (the attention kernels' tiles).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    MDS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)));
}

}  // namespace mds::ops::cuda
