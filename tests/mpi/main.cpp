// main of mds_mpi_tests: joins the MPI world (run under mpirun by CTest), runs every test on
// every rank, and prints the results of rank 0 only. Any rank's failure fails the job: the
// exit codes are combined with an all-reduce so every rank agrees.
#include <gtest/gtest.h>

#include <memory>

#include "mds/dist/mpi_communicator.h"
#include "mpi_world.h"

namespace {
std::unique_ptr<mds::dist::Communicator> g_world;
}

mds::dist::Communicator& mds::testing::world() {
  return *g_world;
}

int main(int argc, char** argv) {
  g_world = mds::dist::init_world();
  ::testing::InitGoogleTest(&argc, argv);
  if (g_world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int32_t failed = RUN_ALL_TESTS() != 0;
  g_world->all_reduce(&failed, 1, mds::dist::ReduceOp::max);
  if (failed && g_world->rank() == 0) std::fprintf(stderr, "a test failed on some rank\n");
  g_world.reset();  // MPI_Finalize
  return failed;
}
