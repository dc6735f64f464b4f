// Rank, world size and local rank/size from the launcher's environment (dist/launch_env.h).
#include <gtest/gtest.h>
#include <stdlib.h>

#include "mds/dist/launch_env.h"

namespace mds::dist {
namespace {

const char* kVars[] = {"OMPI_COMM_WORLD_RANK",
                       "OMPI_COMM_WORLD_SIZE",
                       "OMPI_COMM_WORLD_LOCAL_RANK",
                       "OMPI_COMM_WORLD_LOCAL_SIZE",
                       "PMIX_RANK",
                       "PMI_RANK",
                       "PMI_SIZE",
                       "PMI_LOCAL_RANK",
                       "PMI_LOCAL_SIZE",
                       "PALS_RANKID",
                       "PALS_LOCAL_RANKID",
                       "SLURM_PROCID",
                       "SLURM_STEP_NUM_TASKS",
                       "SLURM_LOCALID",
                       "RANK",
                       "WORLD_SIZE",
                       "MPI_LOCALRANKID",
                       "MPI_LOCALNRANKS"};

// Clears every launcher variable around each test (ctest may itself run under a launcher).
class LauncherEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) unsetenv(v);
  }
  void TearDown() override { SetUp(); }
};

TEST_F(LauncherEnv, AProcessOnItsOwnIsAWorldOfOne) {
  setenv("RANK", "3", 1);  // torchrun's generic names are not a launcher of ours
  setenv("WORLD_SIZE", "8", 1);
  EXPECT_EQ(launcher_rank(), 0);
  EXPECT_EQ(launcher_world_size(), 1);
  EXPECT_EQ(launcher_local_rank(), 0);
  EXPECT_EQ(launcher_local_size(), 1);
}

TEST_F(LauncherEnv, OpenMpi) {
  setenv("OMPI_COMM_WORLD_RANK", "5", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
  EXPECT_EQ(launcher_rank(), 5);
  EXPECT_EQ(launcher_world_size(), 8);
  EXPECT_EQ(launcher_local_rank(), 1);
  EXPECT_EQ(launcher_local_size(), 4);
}

TEST_F(LauncherEnv, MpichPalsAndSlurm) {
  setenv("PMI_RANK", "6", 1);
  setenv("PMI_SIZE", "12", 1);
  setenv("MPI_LOCALRANKID", "2", 1);
  setenv("MPI_LOCALNRANKS", "4", 1);
  EXPECT_EQ(launcher_rank(), 6);
  EXPECT_EQ(launcher_world_size(), 12);
  EXPECT_EQ(launcher_local_rank(), 2);
  EXPECT_EQ(launcher_local_size(), 4);
  SetUp();
  setenv("PALS_RANKID", "7", 1);
  setenv("PALS_LOCAL_RANKID", "3", 1);
  EXPECT_EQ(launcher_rank(), 7);
  EXPECT_EQ(launcher_local_rank(), 3);
  SetUp();
  setenv("SLURM_PROCID", "9", 1);
  setenv("SLURM_STEP_NUM_TASKS", "16", 1);
  setenv("SLURM_LOCALID", "1", 1);
  EXPECT_EQ(launcher_rank(), 9);
  EXPECT_EQ(launcher_world_size(), 16);
  EXPECT_EQ(launcher_local_rank(), 1);
}

}  // namespace
}  // namespace mds::dist
