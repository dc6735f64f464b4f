// The world of processes and its groups over MPI (OpenMPI). A process started by mpirun (or
// any launcher that sets the PMI/PMIx/OpenMPI rank variables) joins MPI_COMM_WORLD; a process
// started on its own is a world of one that never calls MPI_Init, so `mds train` works on a
// machine without a launcher and a single-process run pays nothing for MPI.
// Groups are MPI_Comm_split sub-communicators of the world (see Communicator::split).
// MPI headers stay inside mpi_communicator.cpp: nothing above dist/ sees them.
#pragma once

#include <memory>

#include "mds/dist/communicator.h"

namespace mds::dist {

// True when the environment says this process was started by an MPI launcher.
bool launched_by_mpi();

// The world communicator. Under a launcher: initialises MPI (once, thread level funneled:
// only the main thread calls MPI) and returns COMM_WORLD; MPI is finalised when the returned
// object is destroyed (destroy every group split from it first). Otherwise: a world of one.
std::unique_ptr<Communicator> init_world();

// A world of one, no MPI: collectives are copies, send/recv are internal errors.
std::unique_ptr<Communicator> make_self_communicator();

}  // namespace mds::dist
