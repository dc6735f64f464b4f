// Finding the launcher program on this machine: which MPI `mpirun`/`mpiexec` belong to (from
// their --version text), or srun under Slurm. The impure half of launch_command.h.
#pragma once

#include <string>

#include "mds/launch/hosts.h"
#include "mds/launch/launch_command.h"

namespace mds::launch {

struct Launcher {
  MpiFlavor flavor = MpiFlavor::openmpi;
  std::string program;  // mpirun, mpiexec or srun (as found on PATH, or the bare name)
  std::string version;  // the first line of its --version, or "" (srun, not probed)
};

// The absolute path of an executable named name on PATH (or name itself when it holds a
// '/'), or "" when there is none.
std::string find_on_path(const std::string& name, const Env& env);

// mpi: --mpi (auto|openmpi|mpich|pals|srun). auto: srun inside a Slurm job (SLURM_JOB_ID),
// else whichever of mpirun, mpiexec answers --version as OpenMPI, MPICH (Hydra) or PALS.
// No launcher found: a UserError saying what to install or pass.
Launcher find_launcher(const std::string& mpi, const Env& env);

}  // namespace mds::launch
