// What a host computes on, and how fast it could go: the devices `mds launch` places ranks on
// and the peak FLOP/s the MFU field of the log line divides by.
//   MFU = achieved model FLOP/s per rank / peak_flops(device, threads per rank)
// Detection reads the CUDA runtime (when built with MDS_CUDA) and /proc/cpuinfo, /sys; nothing
// here needs MPI, so it runs in `mds launch` before any process is started.
#pragma once

#include <string>
#include <string_view>

namespace mds::launch {

enum class DeviceKind { cpu, cuda };

struct DeviceInfo {
  DeviceKind kind = DeviceKind::cpu;
  int count = 1;     // GPUs visible on this host, or 1 for the CPU
  std::string name;  // GPU name, or the CPU model name (/proc/cpuinfo)
  int cores = 1;     // logical CPU cores on this host
};

// CUDA GPUs when the CUDA backend is compiled in (MDS_CUDA; not yet: always CPU today) and a GPU
// is visible, else the CPU. MDS_DEVICE=cpu|cuda overrides (cuda without a GPU is a UserError).
DeviceInfo detect_devices();

// Peak dense FLOP/s of ONE device for MFU: GPUs by name from a table (bf16 dense tensor-core
// peak), the CPU from cores x max clock x FP32 FLOPs per cycle of its widest vector FMA unit.
// threads: how many of the host's cores this rank uses (CPU only). override_tflops > 0 wins (the
// --peak-tflops flag). 0 for a GPU not in the table (MFU is then not reported).
double peak_flops(const DeviceInfo& d, int threads, double override_tflops = 0);

const char* device_kind_name(DeviceKind k);  // "cpu", "cuda"

// ---- The pieces, exposed for `mds info` and the tests ----

// bf16 dense peak of one GPU from its name (as cudaGetDeviceProperties or nvidia-smi print it),
// or 0 when the name is not in the table.
double gpu_peak_flops(std::string_view gpu_name);

// The CPU as /proc/cpuinfo (and cpufreq) describe it.
struct CpuSpec {
  std::string model;        // "model name" (x86) or "Processor"/"CPU part" (Arm)
  double max_ghz = 0;       // cpuinfo_max_freq, else "cpu MHz", else 0 (unknown)
  std::string isa;          // "avx512", "avx2+fma", "avx", "sse", "neon", "scalar"
  int flops_per_cycle = 2;  // FP32 FLOPs per cycle per core (see cpu_spec_from_cpuinfo)
};

// Parses /proc/cpuinfo text; max_khz is cpuinfo_max_freq (0 if absent: "cpu MHz" is used).
CpuSpec cpu_spec_from_cpuinfo(std::string_view cpuinfo, long max_khz);

// This host's CPU (read once).
const CpuSpec& host_cpu();

}  // namespace mds::launch
