// `mds info [--peak-tflops X] [--json]`: what this machine and this build give a run: the
// devices, the backend, the MPI library and launcher, NCCL, BLAS and its threads, the peak
// FLOP/s the MFU field divides by, the build type and compiler. Starts no MPI.
#include <cblas.h>  // OpenBLAS: openblas_get_config, openblas_get_num_threads
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "mds/core/error.h"
#include "mds/dist/mpi_library.h"
#ifdef MDS_HAVE_NCCL
#include "mds/dist/nccl_library.h"
#endif
#include "mds/launch/devices.h"
#include "mds/launch/hosts.h"
#include "mds/launch/launch_command.h"
#include "mds/launch/mpi_launcher.h"
#include "mds/tools/subcommands.h"

#ifndef MDS_BUILD_TYPE  // set by CMakeLists.txt for this file
#define MDS_BUILD_TYPE "unknown"
#endif

namespace mds::tools {
namespace {

using namespace mds::launch;

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " __VERSION__;
#else
  return "unknown";
#endif
}

std::string cuda_backend() {
#ifdef MDS_HAVE_CUDA
  return "built";
#else
  return "not built";
#endif
}

// NCCL's version when this build has it and the library loads (it is loaded at run time).
std::string nccl_status() {
#ifdef MDS_HAVE_NCCL
  try {
    int v = 0;
    if (dist::nccl().GetVersion(&v) != ncclSuccess) return "loaded, version unknown";
    return strfmt("{}.{}.{} (loaded at run time; several GPU processes use it)", v / 10000,
                  v / 100 % 100, v % 100);
  } catch (const UserError& e) {
    return strfmt("built, not loadable: {}", e.what());
  }
#else
  return "not built";
#endif
}

}  // namespace

int info_main(int argc, char** argv) {
  double peak_tflops = 0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::puts(
          "usage: mds info [--peak-tflops X] [--json]\n"
          "Prints the devices, backend, MPI, NCCL, BLAS, the peak FLOP/s used for MFU (from the\n"
          "device table or the CPU's cores x clock x FLOPs/cycle; --peak-tflops overrides, as\n"
          "in mds train) and the build.");
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--peak-tflops" || a.rfind("--peak-tflops=", 0) == 0) {
      std::string v;
      if (a.size() > 13)
        v = a.substr(14);
      else {
        MDS_CHECK(i + 1 < argc, "--peak-tflops needs a value");
        v = argv[++i];
      }
      char* end = nullptr;
      peak_tflops = std::strtod(v.c_str(), &end);
      MDS_CHECK(!v.empty() && *end == '\0' && peak_tflops > 0,
                "--peak-tflops '{}' is not a positive number", v);
    } else {
      MDS_FAIL("unknown flag {} (see mds info --help)", a);
    }
  }

  const Env env = process_env();
  const DeviceInfo d = detect_devices();
  const Backend backend = choose_backend(d, env);
  const int threads = omp_get_max_threads();
  const double peak = peak_flops(d, threads, peak_tflops);
  const CpuSpec& cpu = host_cpu();
  std::string peak_how;
  if (peak_tflops > 0)
    peak_how = "--peak-tflops";
  else if (d.kind == DeviceKind::cuda)
    peak_how = "bf16 dense, by GPU name";
  else
    peak_how = strfmt("{} threads x {} GHz x {} FP32 FLOPs/cycle ({})", threads, cpu.max_ghz,
                      cpu.flops_per_cycle, cpu.isa);
  std::string launcher = "none found";
  try {
    const Launcher l = find_launcher("auto", env);
    launcher = strfmt("{} ({}{}{})", mpi_flavor_name(l.flavor), l.program,
                      l.version.empty() ? "" : ": ", l.version);
  } catch (const UserError& e) {
    launcher = e.what();
  }
  std::string hosts_line;  // a broken PBS_NODEFILE is reported, not fatal, here
  try {
    const HostList h = discover_hosts("", env);
    hosts_line = strfmt("{} from {} ({})", h.hosts.size(), host_source_name(h.source), h.origin);
  } catch (const UserError& e) {
    hosts_line = e.what();
  }
  const std::string blas = openblas_get_config();
  const int blas_threads = openblas_get_num_threads();

  if (json) {
    nlohmann::json j = {
        {"device",
         {{"kind", device_kind_name(d.kind)},
          {"count", d.count},
          {"name", d.name},
          {"cores", d.cores}}},
        {"cpu",
         {{"model", cpu.model},
          {"isa", cpu.isa},
          {"max_ghz", cpu.max_ghz},
          {"flops_per_cycle", cpu.flops_per_cycle}}},
        {"backend", backend_name(backend)},
        {"mpi",
         {{"library", dist::mpi_library_version()},
          {"standard", dist::mpi_standard_version()},
          {"launcher", launcher}}},
        {"nccl", nccl_status()},
        {"blas", {{"config", blas}, {"threads", blas_threads}}},
        {"omp_threads", threads},
        {"peak_flops", peak},
        {"peak_how", peak_how},
        {"hosts", hosts_line},
        {"build", {{"type", MDS_BUILD_TYPE}, {"compiler", compiler()}, {"cuda", cuda_backend()}}},
    };
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("devices   %s x%d: %s (%d logical cores)\n", device_kind_name(d.kind), d.count,
              d.name.c_str(), d.cores);
  std::printf("cpu       %s, %s, %d FP32 FLOPs/cycle/core, %.2f GHz\n", cpu.model.c_str(),
              cpu.isa.c_str(), cpu.flops_per_cycle, cpu.max_ghz);
  std::printf("backend   %s (MDS_BACKEND=mpi|nccl overrides)\n", backend_name(backend));
  std::printf("mpi       %s (MPI %s)\n", dist::mpi_library_version().c_str(),
              dist::mpi_standard_version().c_str());
  std::printf("launcher  %s\n", launcher.c_str());
  std::printf("nccl      %s\n", nccl_status().c_str());
  std::printf("blas      %s; %d threads\n", blas.c_str(), blas_threads);
  std::printf("threads   %d OpenMP threads per rank\n", threads);
  if (peak > 0)
    std::printf("peak      %.4g TFLOP/s per device for MFU = %s\n", peak / 1e12, peak_how.c_str());
  else
    std::printf("peak      unknown for %s: MFU is not reported (pass --peak-tflops)\n",
                d.name.c_str());
  std::printf("hosts     %s\n", hosts_line.c_str());
  std::printf("build     %s, %s, CUDA backend %s\n", MDS_BUILD_TYPE, compiler().c_str(),
              cuda_backend().c_str());
  return 0;
}

}  // namespace mds::tools
