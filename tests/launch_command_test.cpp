// The launcher line for each MPI flavour, and the placement rules behind it
// (launch/launch_command.h): pure functions of hosts, devices, flags and environment.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/launch/launch_command.h"
#include "user_error_text.h"

namespace mds::launch {
namespace {

using Argv = std::vector<std::string>;

using test::user_error_of;

DeviceInfo cpu(int cores) {
  DeviceInfo d;
  d.kind = DeviceKind::cpu;
  d.name = "Test CPU";
  d.cores = cores;
  return d;
}

DeviceInfo gpus(int count, int cores) {
  DeviceInfo d;
  d.kind = DeviceKind::cuda;
  d.count = count;
  d.name = "NVIDIA H100 80GB HBM3";
  d.cores = cores;
  return d;
}

HostList hosts(HostSource source, std::vector<std::string> names) {
  HostList l;
  l.source = source;
  for (auto& n : names) l.hosts.push_back({n, 0});
  return l;
}

TEST(ParallelLayout, ReadsMegatronFlagsInBothFormsLastWins) {
  const ParallelLayout l = layout_from_args(
      {"--num-layers", "2", "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size=3",
       "--ds-sequence-parallel-size", "5", "--tensor-model-parallel-size=4"});
  EXPECT_EQ(l.tp, 4);
  EXPECT_EQ(l.pp, 3);
  EXPECT_EQ(l.sp, 5);
  EXPECT_EQ(l.size(), 60);
  EXPECT_EQ(layout_from_args({"--lr", "1e-3"}).size(), 1);
  EXPECT_EQ(user_error_of([] {
              layout_from_args({"--tensor-model-parallel-size", "two"});
            }),
            "--tensor-model-parallel-size 'two' is not a positive integer");
  EXPECT_EQ(user_error_of([] { layout_from_args({"--pipeline-model-parallel-size"}); }),
            "--pipeline-model-parallel-size needs a value");
}

TEST(Backend, NcclOnGpusMpiOnCpuMdsBackendOverrides) {
  EXPECT_EQ(choose_backend(cpu(4), {}), Backend::mpi);
  EXPECT_EQ(choose_backend(gpus(4, 32), {}), Backend::nccl);
  EXPECT_EQ(choose_backend(gpus(4, 32), {{"MDS_BACKEND", "mpi"}}), Backend::mpi);
  EXPECT_NE(user_error_of([] {
              choose_backend(cpu(4), {{"MDS_BACKEND", "nccl"}});
            }).find("MDS_BACKEND=nccl needs CUDA GPUs"),
            std::string::npos);
  EXPECT_EQ(user_error_of([] {
              choose_backend(cpu(4), {{"MDS_BACKEND", "gloo"}});
            }),
            "MDS_BACKEND=gloo is not a backend: use mpi or nccl");
}

TEST(MpiFlavor, FromVersionText) {
  MpiFlavor f = MpiFlavor::srun;
  ASSERT_TRUE(mpi_flavor_from_version("mpirun (Open MPI) 4.1.4\n\nReport bugs to ...", f));
  EXPECT_EQ(f, MpiFlavor::openmpi);
  ASSERT_TRUE(mpi_flavor_from_version("mpiexec (OpenRTE) 4.1.4", f));
  EXPECT_EQ(f, MpiFlavor::openmpi);
  ASSERT_TRUE(mpi_flavor_from_version("HYDRA build details:\n    Version: 4.1.2", f));
  EXPECT_EQ(f, MpiFlavor::mpich);
  ASSERT_TRUE(mpi_flavor_from_version("Intel(R) MPI Library for Linux* OS, Version 2021.10", f));
  EXPECT_EQ(f, MpiFlavor::mpich);
  ASSERT_TRUE(mpi_flavor_from_version("mpiexec version 1.2.12 (HPE PALS)", f));
  EXPECT_EQ(f, MpiFlavor::pals);
  EXPECT_FALSE(mpi_flavor_from_version("bash: command not found", f));
  EXPECT_EQ(parse_mpi_flavor("srun"), MpiFlavor::srun);
  EXPECT_EQ(user_error_of([] { parse_mpi_flavor("mvapich"); }),
            "--mpi mvapich: want auto, openmpi, mpich, pals or srun");
}

TEST(PlaceRanks, CpuDefaultIsOneRankPerHostWithAllCores) {
  const Placement p = place_ranks(4, cpu(32), {}, {});
  EXPECT_EQ(p.np, 4);
  EXPECT_EQ(p.nodes, 4);
  EXPECT_EQ(p.ranks_per_host, 1);
  EXPECT_EQ(p.threads_per_rank, 32);
  EXPECT_FALSE(p.oversubscribe);
}

TEST(PlaceRanks, CpuDefaultGivesTheLayoutTheRanksItNeeds) {
  ParallelLayout l;
  l.tp = 2;
  l.pp = 2;
  Placement p = place_ranks(1, cpu(8), {}, l);  // T x P = 4 ranks on one host, 2 cores each
  EXPECT_EQ(p.np, 4);
  EXPECT_EQ(p.ranks_per_host, 4);
  EXPECT_EQ(p.threads_per_rank, 2);
  p = place_ranks(3, cpu(8), {}, l);  // 3 hosts hold 2 each: the largest multiple of 4 is 4
  EXPECT_EQ(p.np, 4);
  EXPECT_EQ(p.ranks_per_host, 2);
  EXPECT_EQ(p.nodes, 2);
  EXPECT_EQ(p.threads_per_rank, 4);
}

TEST(PlaceRanks, NpSpreadsOverHostsAndThreadsShareTheCores) {
  LaunchFlags f;
  f.np = 2;
  Placement p = place_ranks(1, cpu(2), f, {});
  EXPECT_EQ(p.ranks_per_host, 2);
  EXPECT_EQ(p.threads_per_rank, 1);
  f.np = 6;
  p = place_ranks(4, cpu(16), f, {});  // 2 per host on the first 3 hosts
  EXPECT_EQ(p.ranks_per_host, 2);
  EXPECT_EQ(p.nodes, 3);
  EXPECT_EQ(p.threads_per_rank, 8);
  f.np = 3;
  p = place_ranks(1, cpu(2), f, {});  // more ranks than cores: oversubscribed, one thread
  EXPECT_TRUE(p.oversubscribe);
  EXPECT_EQ(p.threads_per_rank, 1);
}

TEST(PlaceRanks, WorldsTheLayoutCannotUseAreOneLineErrors) {
  ParallelLayout l;
  l.tp = 2;
  LaunchFlags f;
  f.np = 3;
  EXPECT_EQ(user_error_of([&] { place_ranks(1, cpu(8), f, l); }),
            "--np 3 does not fit the layout's T x P x S = 2 x 1 x 1 = 2 "
            "(--tensor-model-parallel-size x --pipeline-model-parallel-size x "
            "--ds-sequence-parallel-size): the world must be a multiple of 2");
  l.tp = 4;
  f.np = 2;  // fewer ranks than one model replica needs
  EXPECT_NE(user_error_of([&] { place_ranks(1, cpu(8), f, l); }).find("--np 2 does not fit"),
            std::string::npos);
  f = {};
  f.ranks_per_host = 1;  // 3 hosts x 1 = 3 ranks, not a multiple of 4
  EXPECT_NE(user_error_of([&] {
              place_ranks(3, cpu(8), f, l);
            }).find("3 ranks (3 host(s) x 1 per host) do not fit the layout's"),
            std::string::npos);
  f.np = 8;  // more than 3 hosts x 1 hold
  EXPECT_EQ(user_error_of([&] { place_ranks(3, cpu(8), f, {}); }),
            "--np 8 is more ranks than 3 host(s) x 1 ranks per host (--ranks-per-host) can hold");
}

TEST(PlaceRanks, GpusGetOneRankEach) {
  Placement p = place_ranks(2, gpus(4, 64), {}, {});
  EXPECT_EQ(p.np, 8);
  EXPECT_EQ(p.ranks_per_host, 4);
  EXPECT_EQ(p.threads_per_rank, 16);
  LaunchFlags f;
  f.np = 12;
  EXPECT_EQ(user_error_of([&] { place_ranks(2, gpus(4, 64), f, {}); }),
            "--np 12 is more ranks than 2 host(s) x 4 ranks per host (GPUs per host) can hold");
  f = {};
  f.ranks_per_host = 8;
  EXPECT_EQ(user_error_of([&] { place_ranks(2, gpus(4, 64), f, {}); }),
            "--ranks-per-host 8 is more than the 4 GPUs per host: one rank per GPU at most");
}

LaunchInputs inputs(MpiFlavor flavor, HostList h, DeviceInfo d) {
  LaunchInputs in;
  in.hosts = std::move(h);
  in.devices = d;
  in.flavor = flavor;
  in.launcher = flavor == MpiFlavor::openmpi ? "mpirun"
                : flavor == MpiFlavor::srun  ? "srun"
                                             : "mpiexec";
  in.hostfile_path = "/tmp/hf";
  in.command = {"/opt/mds", "train", "--tensor-model-parallel-size", "2"};
  in.layout.tp = 2;
  return in;
}

TEST(LaunchCommand, OpenMpiOnPbsHosts) {
  LaunchInputs in = inputs(MpiFlavor::openmpi, hosts(HostSource::pbs, {"x1", "x2", "x3"}), cpu(8));
  in.as_root = true;
  in.flags.ranks_per_host = 2;
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.argv, (Argv{"mpirun",
                          "--allow-run-as-root",
                          "-np",
                          "6",
                          "-npernode",
                          "2",
                          "--hostfile",
                          "/tmp/hf",
                          "--bind-to",
                          "core",
                          "--map-by",
                          "slot:PE=4",
                          "-x",
                          "OMP_NUM_THREADS=4",
                          "-x",
                          "MDS_BACKEND=mpi",
                          "/opt/mds",
                          "train",
                          "--tensor-model-parallel-size",
                          "2"}));
  EXPECT_EQ(p.hostfile_text, "x1 slots=2\nx2 slots=2\nx3 slots=2\n");
}

TEST(LaunchCommand, OpenMpiOnThisMachinePassesNoHostfile) {
  LaunchInputs in = inputs(MpiFlavor::openmpi, hosts(HostSource::local, {"vm"}), cpu(2));
  in.flags.np = 4;  // 4 ranks on 2 cores: oversubscribed, unbound
  in.env = {{"MDS_DEVICE", "cpu"}};
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.argv,
            (Argv{"mpirun", "-np", "4", "-npernode", "4", "--oversubscribe", "--bind-to", "none",
                  "-x", "OMP_NUM_THREADS=1", "-x", "MDS_BACKEND=mpi", "-x", "MDS_DEVICE=cpu",
                  "/opt/mds", "train", "--tensor-model-parallel-size", "2"}));
  EXPECT_EQ(p.hostfile_text, "");
}

TEST(LaunchCommand, MpichHydraUsesHostColonSlotsAndGenv) {
  LaunchInputs in = inputs(MpiFlavor::mpich, hosts(HostSource::hostfile, {"a", "b"}), cpu(16));
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.argv, (Argv{"mpiexec", "-n", "2", "-ppn", "1", "-f", "/tmp/hf", "-genv",
                          "OMP_NUM_THREADS", "16", "-genv", "MDS_BACKEND", "mpi", "-bind-to",
                          "core:16", "/opt/mds", "train", "--tensor-model-parallel-size", "2"}));
  EXPECT_EQ(p.hostfile_text, "a:1\nb:1\n");
}

TEST(LaunchCommand, PalsAsEzpzOnGpus) {
  LaunchInputs in = inputs(
      MpiFlavor::pals, hosts(HostSource::pbs, {"x3005c0s13b0n0", "x3005c0s13b1n0"}), gpus(4, 64));
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.backend, Backend::nccl);
  EXPECT_EQ(p.argv, (Argv{"mpiexec",
                          "--envall",
                          "--np",
                          "8",
                          "--ppn",
                          "4",
                          "--hostfile",
                          "/tmp/hf",
                          "--cpu-bind",
                          "depth",
                          "--depth",
                          "16",
                          "--env",
                          "OMP_NUM_THREADS=16",
                          "--env",
                          "MDS_BACKEND=nccl",
                          "/opt/mds",
                          "train",
                          "--tensor-model-parallel-size",
                          "2"}));
  EXPECT_EQ(p.hostfile_text, "x3005c0s13b0n0\nx3005c0s13b1n0\n");
}

TEST(LaunchCommand, SrunInsideTheAllocationNeedsNoHostList) {
  LaunchInputs in = inputs(
      MpiFlavor::srun, hosts(HostSource::slurm, {"nid001", "nid002", "nid003", "nid004"}), cpu(64));
  in.flags.bind_to = BindTo::none;
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.argv,
            (Argv{"srun", "-N", "4", "-n", "4", "--ntasks-per-node", "1", "--cpus-per-task", "64",
                  "--cpu-bind=none", "--export=ALL,OMP_NUM_THREADS=64,MDS_BACKEND=mpi", "/opt/mds",
                  "train", "--tensor-model-parallel-size", "2"}));
  EXPECT_EQ(p.hostfile_text, "");
}

TEST(LaunchCommand, SrunWithAHostfileNamesItsNodes) {
  LaunchInputs in = inputs(MpiFlavor::srun, hosts(HostSource::hostfile, {"g1", "g2"}), gpus(2, 32));
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.argv, (Argv{"srun", "-N", "2", "-n", "4", "--ntasks-per-node", "2", "--cpus-per-task",
                          "16", "--gpus-per-node=2", "--cpu-bind=cores", "--nodelist=g1,g2",
                          "--export=ALL,OMP_NUM_THREADS=16,MDS_BACKEND=nccl", "/opt/mds", "train",
                          "--tensor-model-parallel-size", "2"}));
}

TEST(LaunchCommand, UsesOnlyTheHostsTheRanksNeed) {
  LaunchInputs in = inputs(MpiFlavor::openmpi, hosts(HostSource::pbs, {"a", "b", "c"}), cpu(4));
  in.flags.np = 2;
  const LaunchPlan p = plan_launch(in);
  EXPECT_EQ(p.placement.nodes, 2);
  EXPECT_EQ(p.hostfile_text, "a slots=1\nb slots=1\n");
}

TEST(ShellJoin, QuotesWhatTheShellWouldSplitOrExpand) {
  EXPECT_EQ(shell_join({"mpirun", "-x", "OMP_NUM_THREADS=4", "/a/b", "--split", "969,30,1"}),
            "mpirun -x OMP_NUM_THREADS=4 /a/b --split 969,30,1");
  EXPECT_EQ(shell_join({"echo", "two words", "it's", "", "$HOME", "a*"}),
            "echo 'two words' 'it'\\''s' '' '$HOME' 'a*'");
}

}  // namespace
}  // namespace mds::launch
