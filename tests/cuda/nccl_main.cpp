// main of mds_nccl_tests: joins the MPI world (under mpirun) or is a world of one, runs every
// test on every rank, prints rank 0's results only, and fails the job when any rank failed
// (like tests/mpi/main.cpp). The NCCL world is made lazily by the first test that needs it and
// destroyed before MPI is finalised.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "mds/dist/mpi_communicator.h"
#include "mds/dist/nccl_communicator.h"
#include "nccl_world.h"

namespace {
std::unique_ptr<mds::dist::Communicator> g_mpi, g_nccl;
bool g_nccl_tried = false;

// This rank's GPU: its local rank on the host (OpenMPI), else its world rank.
int local_rank() {
  if (const char* s = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) return std::atoi(s);
  return g_mpi->rank();
}
}  // namespace

mds::dist::Communicator& mds::testing::mpi_world() {
  return *g_mpi;
}

int mds::testing::gpus_visible() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  (void)cudaGetLastError();
  return count;
}

mds::dist::Communicator* mds::testing::nccl_world() {
  if (!g_nccl_tried) {
    g_nccl_tried = true;
    // Every rank agrees whether all have a GPU of their own, so none waits in ncclCommInitRank.
    int32_t missing = local_rank() >= gpus_visible();
    g_mpi->all_reduce(&missing, 1, mds::dist::ReduceOp::max);
    if (!missing) g_nccl = mds::dist::make_nccl_world(*g_mpi, local_rank());
  }
  return g_nccl.get();
}

int main(int argc, char** argv) {
  g_mpi = mds::dist::init_world();
  ::testing::InitGoogleTest(&argc, argv);
  if (g_mpi->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int32_t failed = RUN_ALL_TESTS() != 0;
  g_nccl.reset();  // ncclCommDestroy before MPI_Finalize
  g_mpi->all_reduce(&failed, 1, mds::dist::ReduceOp::max);
  if (failed && g_mpi->rank() == 0) std::fprintf(stderr, "a test failed on some rank\n");
  g_mpi.reset();  // MPI_Finalize
  return failed;
}
