// Host lists from PBS node files, Slurm's compressed node lists and host files (launch/hosts.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/launch/hosts.h"
#include "user_error_text.h"

namespace mds::launch {
namespace {

using Names = std::vector<std::string>;

using test::user_error_of;

Names names(const std::vector<Host>& hosts) {
  Names out;
  for (const Host& h : hosts) out.push_back(h.name);
  return out;
}

std::vector<int> slots(const std::vector<Host>& hosts) {
  std::vector<int> out;
  for (const Host& h : hosts) out.push_back(h.slots);
  return out;
}

Names slurm(const char* list) {
  return expand_slurm_nodelist(list, "SLURM_JOB_NODELIST");
}

TEST(SlurmNodelist, ExpandsRangesListsAndPlainNames) {
  EXPECT_EQ(slurm("nid[001-004,007],gpu12"),
            (Names{"nid001", "nid002", "nid003", "nid004", "nid007", "gpu12"}));
  EXPECT_EQ(slurm("gpu12"), (Names{"gpu12"}));
  EXPECT_EQ(slurm("a1,b2,c3"), (Names{"a1", "b2", "c3"}));
  EXPECT_EQ(slurm("host-[01-03]"), (Names{"host-01", "host-02", "host-03"}));
  EXPECT_EQ(slurm("x[7]"), (Names{"x7"}));
}

TEST(SlurmNodelist, KeepsZeroPaddingOfTheLowEnd) {
  EXPECT_EQ(slurm("n[8-11]"), (Names{"n8", "n9", "n10", "n11"}));  // no padding
  EXPECT_EQ(slurm("n[08-11]"), (Names{"n08", "n09", "n10", "n11"}));
  EXPECT_EQ(slurm("n[0098-0101]"), (Names{"n0098", "n0099", "n0100", "n0101"}));
}

TEST(SlurmNodelist, SeveralBracketGroupsExpandAsAProductLeftmostSlowest) {
  EXPECT_EQ(slurm("a[1-2]b[3-4]"), (Names{"a1b3", "a1b4", "a2b3", "a2b4"}));
  EXPECT_EQ(slurm("r[1-2]n[01,03].cluster,login"),
            (Names{"r1n01.cluster", "r1n03.cluster", "r2n01.cluster", "r2n03.cluster", "login"}));
}

TEST(SlurmNodelist, ListsAHostOnceInFirstOrder) {
  EXPECT_EQ(slurm("n[1-3],n2,n[3-4]"), (Names{"n1", "n2", "n3", "n4"}));
}

TEST(SlurmNodelist, MalformedListsNameTheVariableAndTheText) {
  for (const char* bad : {"nid[001-", "nid001]", "nid[[1-2]]", "nid[4-2]", "nid[a-b]", "nid[1-]",
                          "nid[]", "a,,b", ",a", "bad name", "nid[1-2000000]", "-x"}) {
    const std::string e = user_error_of([&] { slurm(bad); });
    EXPECT_NE(e.find("SLURM_JOB_NODELIST='" + std::string(bad) + "'"), std::string::npos)
        << bad << " -> " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  EXPECT_NE(user_error_of([] { slurm("  "); }).find("SLURM_JOB_NODELIST is empty"),
            std::string::npos);
}

TEST(PbsNodefile, RepeatedLinesAreSlotsInFirstOrder) {
  const auto hosts = parse_pbs_nodefile("x1\nx1\nx0\nx1\n\nx0\n", "/var/spool/pbs/aux/1.pbs");
  EXPECT_EQ(names(hosts), (Names{"x1", "x0"}));
  EXPECT_EQ(slots(hosts), (std::vector<int>{3, 2}));
  EXPECT_EQ(names(parse_pbs_nodefile("x3005c0s13b0n0.hsn.cm.polaris.alcf.anl.gov\n", "f")),
            (Names{"x3005c0s13b0n0.hsn.cm.polaris.alcf.anl.gov"}));
}

TEST(PbsNodefile, EmptyOrMalformedFilesNameTheFileAndLine) {
  EXPECT_EQ(user_error_of([] { parse_pbs_nodefile("\n  \n", "/pbs/nodes"); }),
            "PBS node file /pbs/nodes lists no hosts");
  EXPECT_EQ(user_error_of([] { parse_pbs_nodefile("x1\nx1 slots=2\n", "/pbs/nodes"); }),
            "PBS node file /pbs/nodes line 2: 'x1 slots=2' is not a host name");
}

TEST(Hostfile, ReadsThePlainOpenMpiAndMpichSyntaxes) {
  const auto hosts = parse_hostfile(
      "# the nodes\n"
      "node1\n"
      "node2 slots=4\n"
      "node3:8\n"
      "  node4 slots=2 max_slots=6   # trailing comment\n"
      "node1\n",
      "hosts.txt");
  EXPECT_EQ(names(hosts), (Names{"node1", "node2", "node3", "node4"}));
  EXPECT_EQ(slots(hosts), (std::vector<int>{2, 4, 8, 2}));
}

TEST(Hostfile, EmptyOrMalformedLinesNameTheFileAndLine) {
  EXPECT_EQ(user_error_of([] { parse_hostfile("# nothing\n\n", "h.txt"); }),
            "host file h.txt lists no hosts");
  const char* want = " (want 'host', 'host slots=N' or 'host:N')";
  EXPECT_EQ(
      user_error_of([] { parse_hostfile("a\nb slots=x\n", "h.txt"); }),
      std::string("host file h.txt line 2: 'b slots=x': slots must be a positive integer") + want);
  EXPECT_EQ(
      user_error_of([] { parse_hostfile("b:0\n", "h.txt"); }),
      std::string("host file h.txt line 1: 'b:0': N in host:N must be a positive integer") + want);
  EXPECT_EQ(user_error_of([] { parse_hostfile("b cpus=2\n", "h.txt"); }),
            std::string("host file h.txt line 1: 'b cpus=2': unknown 'cpus=2'") + want);
  EXPECT_EQ(user_error_of([] { parse_hostfile("b:2 slots=2\n", "h.txt"); }),
            std::string("host file h.txt line 1: 'b:2 slots=2': nothing may follow host:N") + want);
  EXPECT_EQ(
      user_error_of([] { parse_hostfile("/bad/host\n", "h.txt"); }),
      std::string("host file h.txt line 1: '/bad/host': '/bad/host' is not a host name") + want);
}

class DiscoverHosts : public ::testing::Test {
 protected:
  std::string file(const std::string& text) {
    std::string path =
        ::testing::TempDir() + "mds_hosts_" + std::to_string(getpid()) + "_" + std::to_string(n_++);
    std::ofstream(path) << text;
    return path;
  }
  int n_ = 0;
};

TEST_F(DiscoverHosts, HostfileThenPbsThenSlurmThenThisMachine) {
  const std::string pbs = file("p1\np1\np2\n"), hf = file("h1 slots=2\n");
  Env env{{"PBS_NODEFILE", pbs}, {"SLURM_JOB_NODELIST", "s[1-3]"}};
  HostList l = discover_hosts(hf, env);
  EXPECT_EQ(l.source, HostSource::hostfile);
  EXPECT_EQ(names(l.hosts), (Names{"h1"}));
  l = discover_hosts("", env);
  EXPECT_EQ(l.source, HostSource::pbs);
  EXPECT_EQ(l.origin, pbs);
  EXPECT_EQ(names(l.hosts), (Names{"p1", "p2"}));
  env.erase("PBS_NODEFILE");
  l = discover_hosts("", env);
  EXPECT_EQ(l.source, HostSource::slurm);
  EXPECT_EQ(names(l.hosts), (Names{"s1", "s2", "s3"}));
  l = discover_hosts("", Env{{"SLURM_NODELIST", "old[1-2]"}});  // the older name
  EXPECT_EQ(names(l.hosts), (Names{"old1", "old2"}));
  l = discover_hosts("", Env{});
  EXPECT_EQ(l.source, HostSource::local);
  ASSERT_EQ(l.hosts.size(), 1u);
  char me[256] = {};
  gethostname(me, sizeof me - 1);
  EXPECT_EQ(l.hosts[0].name, me);
}

TEST_F(DiscoverHosts, MissingFilesAreUserErrors) {
  EXPECT_EQ(user_error_of([] { discover_hosts("/no/such/hosts", Env{}); }),
            "cannot read the host file /no/such/hosts (--hostfile)");
  EXPECT_EQ(user_error_of([] {
              discover_hosts("", Env{{"PBS_NODEFILE", "/no/such/nodes"}});
            }),
            "cannot read the host file /no/such/nodes (PBS_NODEFILE)");
  EXPECT_NE(user_error_of([&] {
              discover_hosts("", Env{{"PBS_NODEFILE", file("")}});
            }).find("lists no hosts"),
            std::string::npos);
}

}  // namespace
}  // namespace mds::launch
