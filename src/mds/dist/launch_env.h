// What the launcher (mpirun, mpiexec, srun) tells a process through its environment, read
// before MPI starts: used to let one rank speak for all when every rank fails the same way
// (a bad flag is found by each rank while parsing, before any communicator exists), and to
// pick a rank's GPU and threads. The variables, first found wins, are ezpz's
// (reference/ezpz-deepspeed.md A2) less torchrun's generic RANK/WORLD_SIZE/LOCAL_RANK.
#pragma once

namespace mds::dist {

// This process's world rank from the launcher's environment (OpenMPI, PMIx, PMI/MPICH, PALS,
// Slurm), or 0 when it was started on its own.
int launcher_rank();

// The world size the launcher started, or 1 when this process was started on its own.
int launcher_world_size();

// This process's rank among the ranks on its host, or 0 when started on its own.
int launcher_local_rank();

// How many ranks the launcher put on this host, or 1 when started on its own.
int launcher_local_size();

}  // namespace mds::dist
