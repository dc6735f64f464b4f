#include "mds/ops/cpu/cpu_backend.h"

namespace mds::ops {

const char* device_name(Device d) {
  return d == Device::cuda ? "cuda" : "cpu";
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace mds::ops
