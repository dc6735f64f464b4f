// Device detection and the peak FLOP/s MFU divides by (launch/devices.h).
#include <gtest/gtest.h>
#include <stdlib.h>

#include "mds/core/error.h"
#include "mds/launch/devices.h"

namespace mds::launch {
namespace {

TEST(GpuPeakFlops, TableByName) {
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 80GB HBM3"), 989e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 PCIe"), 756e12);  // before the family name
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 NVL"), 835e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H200"), 989e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA A100-SXM4-40GB"), 312e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA GeForce GTX 1080"), 0);  // unknown: no MFU
}

const char* kZen4 =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC 9654\n"
    "cpu MHz\t\t: 2400.000\nflags\t\t: fpu sse sse2 avx fma avx2 avx512f avx512bw\n\n"
    "processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu MHz\t\t: 3700.000\n";

TEST(CpuSpec, ReadsModelIsaAndClock) {
  const CpuSpec s = cpu_spec_from_cpuinfo(kZen4, 0);
  EXPECT_EQ(s.model, "AMD EPYC 9654");
  EXPECT_EQ(s.isa, "avx512");
  EXPECT_EQ(s.flops_per_cycle, 32);  // Zen 4 splits 512-bit FMAs into two halves
  EXPECT_DOUBLE_EQ(s.max_ghz, 3.7);  // the highest "cpu MHz" when cpufreq is absent
  EXPECT_DOUBLE_EQ(cpu_spec_from_cpuinfo(kZen4, 3500000).max_ghz, 3.5);  // cpufreq wins
}

TEST(CpuSpec, FlopsPerCycleByWidestFmaUnit) {
  auto fpc = [](const char* info) { return cpu_spec_from_cpuinfo(info, 0).flops_per_cycle; };
  EXPECT_EQ(fpc("vendor_id : GenuineIntel\ncpu family : 6\nflags : sse avx2 fma avx512f\n"), 64);
  EXPECT_EQ(fpc("flags : sse sse2 avx avx2 fma\n"), 32);
  EXPECT_EQ(fpc("flags : sse sse2 avx\n"), 16);
  EXPECT_EQ(fpc("flags : fpu sse sse2\n"), 8);
  EXPECT_EQ(fpc("Features : fp asimd evtstrm\nCPU part : 0xd0c\n"), 8);
  EXPECT_EQ(fpc("flags : fpu\n"), 2);
  EXPECT_EQ(fpc("flags : avx512fx\n"), 2);  // whole words only
  const CpuSpec xeon = cpu_spec_from_cpuinfo("model name : Intel(R) Xeon(R) CPU @ 2.40GHz\n", 0);
  EXPECT_DOUBLE_EQ(xeon.max_ghz, 2.4);
}

TEST(PeakFlops, CpuIsThreadsTimesClockTimesFlopsPerCycle) {
  DeviceInfo d;
  d.cores = 8;
  const CpuSpec& cpu = host_cpu();
  EXPECT_DOUBLE_EQ(peak_flops(d, 4), 4 * cpu.max_ghz * 1e9 * cpu.flops_per_cycle);
  EXPECT_DOUBLE_EQ(peak_flops(d, 64), peak_flops(d, 8));  // no more than the host's cores
  EXPECT_DOUBLE_EQ(peak_flops(d, 4, 1.5), 1.5e12);        // --peak-tflops wins
  d.kind = DeviceKind::cuda;
  d.name = "NVIDIA H200";
  EXPECT_EQ(peak_flops(d, 1), 989e12);
}

TEST(DetectDevices, CpuTodayAndMdsDeviceOverride) {
  unsetenv("MDS_DEVICE");
  DeviceInfo d = detect_devices();
  EXPECT_EQ(d.kind, DeviceKind::cpu);
  EXPECT_EQ(d.count, 1);
  EXPECT_GE(d.cores, 1);
  EXPECT_FALSE(d.name.empty());
  setenv("MDS_DEVICE", "cpu", 1);
  EXPECT_EQ(detect_devices().kind, DeviceKind::cpu);
  setenv("MDS_DEVICE", "cuda", 1);  // no CUDA backend built: the user's mistake
  EXPECT_THROW(detect_devices(), UserError);
  setenv("MDS_DEVICE", "tpu", 1);
  EXPECT_THROW(detect_devices(), UserError);
  unsetenv("MDS_DEVICE");
}

}  // namespace
}  // namespace mds::launch
