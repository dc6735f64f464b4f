// MDS_CUDA_CHECK and MDS_CUBLAS_CHECK: a failed call throws mds::InternalError naming the
// library's error, its string, the call and file:line. Host only (the error strings need no
// device), so these run on machines without a GPU too.
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>

#include "mds/core/cuda_check.h"

namespace mds {
namespace {

template <typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const InternalError& e) {
    return e.what();
  }
  return "";
}

TEST(CudaCheck, FailedCudaCallNamesTheErrorTheCallAndTheLine) {
  const std::string msg = message_of([] { MDS_CUDA_CHECK(cudaErrorInvalidValue); });
  EXPECT_NE(msg.find("cuda_check_test.cpp:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cudaErrorInvalidValue"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid argument"), std::string::npos) << msg;          // cudaGetErrorString
  EXPECT_NE(msg.find("in cudaErrorInvalidValue"), std::string::npos) << msg;  // the call text
  EXPECT_NO_THROW(MDS_CUDA_CHECK(cudaSuccess));
}

TEST(CudaCheck, FailedCublasCallNamesTheStatus) {
  const std::string msg = message_of([] { MDS_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED); });
  EXPECT_NE(msg.find("cuda_check_test.cpp:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUBLAS_STATUS_NOT_SUPPORTED"), std::string::npos) << msg;
  EXPECT_NO_THROW(MDS_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
}

}  // namespace
}  // namespace mds
