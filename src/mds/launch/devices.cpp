#include "mds/launch/devices.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "mds/core/error.h"
#ifdef MDS_HAVE_CUDA
#include "mds/ops/cuda/cuda_backend.h"
#endif

namespace mds::launch {
namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// GPUs visible to the CUDA runtime; none in a build without the CUDA backend.
int cuda_device_count(std::string* name) {
#ifdef MDS_HAVE_CUDA
  return ops::cuda::device_count(name);
#else
  (void)name;
  return 0;
#endif
}

int host_cores() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? int(n) : 1;
}

}  // namespace

const char* device_kind_name(DeviceKind k) {
  return k == DeviceKind::cuda ? "cuda" : "cpu";
}

DeviceInfo detect_devices() {
  DeviceInfo d;
  d.cores = host_cores();
  std::string gpu_name;
  const int gpus = cuda_device_count(&gpu_name);
  const char* env = std::getenv("MDS_DEVICE");
  const std::string want = env ? lower(trim(env)) : "";
  MDS_CHECK(want.empty() || want == "cpu" || want == "cuda",
            "MDS_DEVICE={} is not a device: use cpu or cuda", env ? env : "");
  if (want == "cuda")
    MDS_CHECK(gpus > 0,
              "MDS_DEVICE=cuda but no CUDA GPU is usable (this mds is built without the CUDA "
              "backend, or no GPU is visible): unset it or use MDS_DEVICE=cpu");
  if (gpus > 0 && want != "cpu") {
    d.kind = DeviceKind::cuda;
    d.count = gpus;
    d.name = gpu_name;
    return d;
  }
  d.kind = DeviceKind::cpu;
  d.count = 1;
  d.name = host_cpu().model;
  return d;
}

// bf16 dense (no 2:4 sparsity) tensor-core peaks from NVIDIA's datasheets (H100/H200: "H100
// Tensor Core GPU" datasheet; A100: "A100 Tensor Core GPU" datasheet; B200: DGX B200 per GPU;
// L40S/L4/A10/A40/A30 product briefs), the same numbers ezpz's flops.py uses where it has them.
// V100 and T4 have no bf16: their fp16 tensor peak. First match wins, so the specific names
// (H100 PCIe, H100 NVL) come before the family name.
double gpu_peak_flops(std::string_view gpu_name) {
  struct Row {
    const char* key;
    double flops;
  };
  static const Row table[] = {
      {"b200", 2250e12},     {"b100", 1750e12},    {"gh200", 989e12}, {"h200", 989e12},
      {"h100 pcie", 756e12}, {"h100 nvl", 835e12}, {"h100", 989e12},  {"h800", 989e12},
      {"a100", 312e12},      {"a800", 312e12},     {"l40s", 362e12},  {"l40", 181e12},
      {"a40", 150e12},       {"a30", 165e12},      {"a10", 125e12},   {"l4", 121e12},
      {"v100", 125e12},      {"t4", 65e12},
  };
  const std::string name = lower(gpu_name);
  for (const Row& r : table)
    if (name.find(r.key) != std::string::npos) return r.flops;
  return 0;
}

// FP32 FLOPs per cycle per core of the widest vector FMA unit, two FMA pipes where the core
// has them (Intel's optimization manual, Agner Fog's instruction tables):
//   AVX-512 (Skylake-SP and later, Zen 5): 2 FMA x 16 lanes x 2 = 64
//   AVX-512 on Zen 4 (AMD family 25): 512-bit ops run as two 256-bit halves, so = AVX2's 32
//   AVX2 + FMA (Haswell and later, Zen 1-3): 2 FMA x 8 lanes x 2 = 32
//   AVX without FMA (Sandy/Ivy Bridge): one 256-bit add and one mul: 8 lanes x 2 = 16
//   SSE / NEON: one 128-bit add and one 128-bit mul (or FMA) per cycle: 4 lanes x 2 = 8
//   anything else: one scalar FMA = 2
CpuSpec cpu_spec_from_cpuinfo(std::string_view cpuinfo, long max_khz) {
  CpuSpec s;
  std::string flags, vendor, family, arm_part;
  double cur_mhz = 0;
  std::istringstream in{std::string(cpuinfo)};
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(std::string_view(line).substr(0, colon));
    const std::string value = trim(std::string_view(line).substr(colon + 1));
    if (key == "model name" && s.model.empty())
      s.model = value;
    else if ((key == "flags" || key == "Features") && flags.empty())
      flags = " " + value + " ";
    else if (key == "vendor_id" && vendor.empty())
      vendor = value;
    else if (key == "cpu family" && family.empty())
      family = value;
    else if (key == "CPU part" && arm_part.empty())
      arm_part = value;
    else if (key == "cpu MHz")
      cur_mhz = std::max(cur_mhz, std::atof(value.c_str()));
  }
  if (s.model.empty()) s.model = arm_part.empty() ? "unknown CPU" : "Arm CPU part " + arm_part;

  // Whole-word match in the space-padded flag list (GCC 12 warns falsely on " " + f + " ").
  auto has = [&](std::string_view f) {
    for (size_t at = flags.find(f); at != std::string::npos; at = flags.find(f, at + 1))
      if (flags[at - 1] == ' ' && flags[at + f.size()] == ' ') return true;
    return false;
  };
  if (has("avx512f")) {
    s.isa = "avx512";
    s.flops_per_cycle = (vendor == "AuthenticAMD" && family == "25") ? 32 : 64;
  } else if (has("avx2") && has("fma")) {
    s.isa = "avx2+fma";
    s.flops_per_cycle = 32;
  } else if (has("avx")) {
    s.isa = "avx";
    s.flops_per_cycle = 16;
  } else if (has("sse") || has("sse2")) {
    s.isa = "sse";
    s.flops_per_cycle = 8;
  } else if (has("asimd") || has("neon")) {
    s.isa = "neon";
    s.flops_per_cycle = 8;
  } else {
    s.isa = "scalar";
    s.flops_per_cycle = 2;
  }

  if (max_khz > 0) {
    s.max_ghz = double(max_khz) / 1e6;
  } else if (cur_mhz > 0) {
    s.max_ghz = cur_mhz / 1e3;
  } else if (size_t at = s.model.rfind('@'); at != std::string::npos) {
    // "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz": the nominal clock.
    s.max_ghz = std::atof(s.model.c_str() + at + 1);
  }
  return s;
}

const CpuSpec& host_cpu() {
  static const CpuSpec spec = [] {
    const std::string khz = read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    return cpu_spec_from_cpuinfo(read_text("/proc/cpuinfo"), std::atol(khz.c_str()));
  }();
  return spec;
}

double peak_flops(const DeviceInfo& d, int threads, double override_tflops) {
  if (override_tflops > 0) return override_tflops * 1e12;
  if (d.kind == DeviceKind::cuda) return gpu_peak_flops(d.name);
  const CpuSpec& cpu = host_cpu();
  const int used = std::clamp(threads, 1, std::max(d.cores, 1));
  return double(used) * cpu.max_ghz * 1e9 * double(cpu.flops_per_cycle);
}

}  // namespace mds::launch
