#include "mds/dist/launch_env.h"

#include <cstdlib>
#include <initializer_list>

namespace mds::dist {
namespace {

// Only the launchers' own names: a generic RANK or WORLD_SIZE left in a shell would silence a
// process's errors. Slurm's step variables (not SLURM_NTASKS) are set by srun, not in the batch
// script itself. The first of vars that is set (and non-empty), as an integer; otherwise fallback.
int first_int(std::initializer_list<const char*> vars, int fallback) {
  for (const char* var : vars)
    if (const char* v = std::getenv(var); v && *v) return std::atoi(v);
  return fallback;
}

}  // namespace

int launcher_rank() {
  return first_int({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "PALS_RANKID", "SLURM_PROCID"},
                   0);
}

int launcher_world_size() {
  return first_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PALS_NRANKS", "SLURM_STEP_NUM_TASKS"}, 1);
}

int launcher_local_rank() {
  return first_int({"OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK", "PALS_LOCAL_RANKID",
                    "PMI_LOCAL_RANK", "MPI_LOCALRANKID", "MPICH_LOCALRANKID", "SLURM_LOCALID"},
                   0);
}

int launcher_local_size() {
  return first_int(
      {"OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE", "PALS_LOCAL_SIZE", "PMI_LOCAL_SIZE",
       "MPI_LOCALNRANKS", "MPICH_LOCALNRANKS", "SLURM_STEP_TASKS_PER_NODE"},
      1);
}

}  // namespace mds::dist
