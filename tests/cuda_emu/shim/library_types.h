// Stand-in for CUDA's <library_types.h> under the CPU emulator: the data types cuBLASLt takes
// (the values are CUDA's).
#pragma once

enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_16F = 2,
  CUDA_R_16BF = 14,
};
using cudaDataType = cudaDataType_t;
