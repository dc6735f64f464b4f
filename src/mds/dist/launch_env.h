// What the launcher (mpirun, mpiexec, srun) tells a process through its environment, read
// before MPI starts: used to let one rank speak for all when every rank fails the same way
// (a bad flag is found by each rank while parsing, before any communicator exists).
#pragma once

namespace mds::dist {

// This process's world rank from the launcher's environment (OpenMPI, PMIx, PMI/MPICH, PALS,
// Slurm), or 0 when it was started on its own.
int launcher_rank();

}  // namespace mds::dist
