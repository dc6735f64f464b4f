// Which MPI library this mds is linked with, for `mds info`. Both calls are among the few the
// MPI standard allows before MPI_Init (and after MPI_Finalize), so asking starts nothing.
// MPI headers stay inside mpi_library.cpp.
#pragma once

#include <string>

namespace mds::dist {

// MPI_Get_library_version's text, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ...",
// trimmed to its first line.
std::string mpi_library_version();

// The MPI standard version the library implements (MPI_Get_version), e.g. "3.1".
std::string mpi_standard_version();

}  // namespace mds::dist
