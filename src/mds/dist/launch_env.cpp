#include "mds/dist/launch_env.h"

#include <cstdlib>
#include <initializer_list>

namespace mds::dist {

int launcher_rank() {
  for (const char* var :
       {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "PALS_RANKID", "SLURM_PROCID"})
    if (const char* v = std::getenv(var); v && *v) return std::atoi(v);
  return 0;
}

}  // namespace mds::dist
