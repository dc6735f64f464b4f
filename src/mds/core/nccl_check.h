// Check macro for NCCL, in the MDS_CHECK family (core/error.h, core/cuda_check.h): a failed call
// throws mds::InternalError with the call, NCCL's result name and string (ncclGetErrorString,
// through the loaded library: dist/nccl_library.h),
// and file:line. Only dist/nccl_communicator.cpp and its tests include this file.
//
//   MDS_NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, comm, stream));
#pragma once

#include <nccl.h>

#include "mds/core/error.h"
#include "mds/dist/nccl_library.h"

namespace mds::detail {

inline const char* nccl_result_name(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    default:
      return "ncclResult(unknown)";
  }
}

[[noreturn]] inline void nccl_fail(ncclResult_t r, const char* call, const char* file, int line) {
  throw ::mds::InternalError(::mds::strfmt("{}:{}: NCCL error {} ({}) in {}", file, line,
                                           nccl_result_name(r),
                                           ::mds::dist::nccl().GetErrorString(r), call));
}

}  // namespace mds::detail

#define MDS_NCCL_CHECK(call)                                            \
  do {                                                                  \
    const ncclResult_t mds_nccl_r_ = (call);                            \
    if (mds_nccl_r_ != ncclSuccess)                                     \
      ::mds::detail::nccl_fail(mds_nccl_r_, #call, __FILE__, __LINE__); \
  } while (0)
