// The CUDA backend of ops/backend.h, for backend_for(Device::cuda). Its kernels run on the
// legacy default stream, where the NCCL communicator orders its collectives after them
// (dist/nccl_communicator.h) and where tests/cuda's synchronous copies see them.
#pragma once

#include <string>

#include "mds/ops/backend.h"

namespace mds::ops::cuda {

// GPUs the CUDA runtime sees (0 without a driver or a device); the first one's name in *name.
int device_count(std::string* name = nullptr);

// The process-wide CUDA backend on the current device. Requires device_count() > 0.
Backend& backend();

}  // namespace mds::ops::cuda
