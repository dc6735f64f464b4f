// backend_for(): the CPU backend always; the CUDA one when this build has it (MDS_HAVE_CUDA,
// defined by the mds_cuda library) and the runtime sees a GPU.
#include "mds/core/error.h"
#include "mds/ops/backend.h"
#ifdef MDS_HAVE_CUDA
#include "mds/ops/cuda/cuda_backend.h"
#endif

namespace mds::ops {

bool cuda_available() {
#ifdef MDS_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

Backend& backend_for(Device device) {
  if (device == Device::cpu) return cpu_backend();
#ifdef MDS_HAVE_CUDA
  MDS_CHECK(cuda::device_count() > 0,
            "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or run on the "
            "CPU");
  return cuda::backend();
#else
  MDS_FAIL(
      "this mds was built without the CUDA backend: rebuild with -DMDS_CUDA=ON (needs "
      "nvcc), or run on the CPU");
#endif
}

}  // namespace mds::ops
