// The launcher line `mds launch` runs: from the hosts, the devices, the flags and the parallel
// layout to `mpirun ...` (OpenMPI), `mpiexec ...` (MPICH's Hydra, or HPE/Cray PALS) or
// `srun ...` (Slurm). Everything here is a pure function of its inputs, so the tests check the
// line for every flavour without any of them installed; launch_cmd.cpp probes the machine and
// runs it. The rules follow ezpz (reference/ezpz-deepspeed.md A4): ranks per host = GPUs per
// host, or on CPU one rank per host (more when the layout needs them), and threads per rank
// so that ranks x threads = cores.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mds/launch/devices.h"
#include "mds/launch/hosts.h"

namespace mds::launch {

enum class MpiFlavor { openmpi, mpich, pals, srun };
enum class BindTo { core, none };
enum class Backend { mpi, nccl };

const char* mpi_flavor_name(MpiFlavor f);  // "openmpi", "mpich", "pals", "srun"
const char* backend_name(Backend b);       // "mpi", "nccl"

// --mpi openmpi|mpich|pals|srun (auto is resolved by the caller); UserError otherwise.
MpiFlavor parse_mpi_flavor(std::string_view s);

// Which MPI printed this `mpirun --version` / `mpiexec --version` text; false when unknown.
bool mpi_flavor_from_version(std::string_view version_text, MpiFlavor& flavor);

// NCCL on GPUs, MPI on the CPU; MDS_BACKEND=mpi|nccl overrides (nccl on the CPU: UserError).
Backend choose_backend(const DeviceInfo& d, const Env& env);

// T x P x S of the command's Megatron flags (--tensor-model-parallel-size,
// --pipeline-model-parallel-size, --ds-sequence-parallel-size; `--flag N` or `--flag=N`, the
// last one wins as in argparse). The world must be a multiple of their product.
struct ParallelLayout {
  int tp = 1, pp = 1, sp = 1;
  int size() const { return tp * pp * sp; }
};
ParallelLayout layout_from_args(const std::vector<std::string>& args);

struct LaunchFlags {
  int np = 0;              // --np: total ranks; 0 = from the hosts and ranks per host
  int ranks_per_host = 0;  // --ranks-per-host; 0 = GPUs per host, or on CPU what the layout needs
  BindTo bind_to = BindTo::core;
};

// Where the ranks go.
struct Placement {
  int nodes = 1;           // hosts used (the first `nodes` of the list)
  int ranks_per_host = 1;  // -npernode / -ppn / --ntasks-per-node
  int np = 1;              // world size
  int threads_per_rank = 1;
  bool oversubscribe = false;  // more ranks on a host than it has cores
};

// The placement rules (see the top of this file); a world the layout cannot use, or more ranks
// than the hosts hold, is a UserError.
Placement place_ranks(int num_hosts, const DeviceInfo& d, const LaunchFlags& flags,
                      const ParallelLayout& layout);

struct LaunchInputs {
  HostList hosts;
  DeviceInfo devices;
  LaunchFlags flags;
  ParallelLayout layout;
  Env env;
  MpiFlavor flavor = MpiFlavor::openmpi;
  std::string launcher = "mpirun";   // the program: mpirun, mpiexec or srun
  std::string hostfile_path;         // where the written host file will be (when one is)
  bool as_root = false;              // euid 0: OpenMPI refuses without --allow-run-as-root
  std::vector<std::string> command;  // what every rank runs: program and arguments
};

struct LaunchPlan {
  Backend backend = Backend::mpi;
  Placement placement;
  // The host file to write at hostfile_path in the flavour's syntax (`host slots=K`, `host:K`,
  // `host`), or "" when the line passes none: one local host (the launcher's default), srun
  // (the allocation, or --nodelist).
  std::string hostfile_text;
  std::vector<std::pair<std::string, std::string>> rank_env;  // exported to every rank
  std::vector<std::string> argv;                              // the whole line
};

LaunchPlan plan_launch(const LaunchInputs& in);

// argv as one line a POSIX shell reads back to the same words.
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace mds::launch
