// The worlds of the NCCL test binary (set up by nccl_main.cpp): the MPI world (a world of one
// when not started by mpirun) and, on first use, the NCCL world over the same ranks.
#pragma once

#include "mds/dist/communicator.h"

namespace mds::testing {
dist::Communicator& mpi_world();
// The NCCL world, made on the first call (collective: every rank calls it in the same test);
// nullptr when some rank has no GPU of its own (needs one GPU per rank on this host).
dist::Communicator* nccl_world();
int gpus_visible();
}  // namespace mds::testing
