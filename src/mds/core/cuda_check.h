// Check macros for the CUDA runtime and cuBLAS(Lt), in the MDS_CHECK family (core/error.h):
// a failed call throws mds::InternalError with the call, the library's own error name and
// string, and file:line. Only the CUDA backend (src/mds/ops/cuda) includes this file.
//
//   MDS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
//   MDS_CUDA_CHECK(cudaGetLastError());   // after a kernel launch
//   MDS_CUBLAS_CHECK(cublasLtMatmul(...));
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "mds/core/error.h"

namespace mds::detail {

[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
  throw ::mds::InternalError(::mds::strfmt("{}:{}: CUDA error {} ({}) in {}", file, line,
                                           cudaGetErrorName(err), cudaGetErrorString(err), call));
}

[[noreturn]] inline void cublas_fail(cublasStatus_t st, const char* call, const char* file,
                                     int line) {
  // cublasLt's own name and string functions: only libcublasLt is linked, not libcublas.
  throw ::mds::InternalError(::mds::strfmt("{}:{}: cuBLAS error {} ({}) in {}", file, line,
                                           cublasLtGetStatusName(st), cublasLtGetStatusString(st),
                                           call));
}

}  // namespace mds::detail

#define MDS_CUDA_CHECK(call)                                                                    \
  do {                                                                                          \
    const cudaError_t mds_err_ = (call);                                                        \
    if (mds_err_ != cudaSuccess) ::mds::detail::cuda_fail(mds_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define MDS_CUBLAS_CHECK(call)                                        \
  do {                                                                \
    const cublasStatus_t mds_st_ = (call);                            \
    if (mds_st_ != CUBLAS_STATUS_SUCCESS)                             \
      ::mds::detail::cublas_fail(mds_st_, #call, __FILE__, __LINE__); \
  } while (0)
