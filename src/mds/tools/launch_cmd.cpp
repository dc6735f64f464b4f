// `mds launch [flags] COMMAND [ARGS...]`: start COMMAND on every rank of the job, ezpz-style.
// Detects the devices and the hosts (PBS, Slurm, --hostfile, or this machine), places the
// ranks, writes a host file in the launcher's syntax, prints the launcher line (stdout, one
// shell-quoted line; what was detected goes to stderr) and replaces itself with it (execvp), so
// the exit status and signals are the launcher's own. One rank on one host still goes through
// the launcher: every run then reads its rank and world from the same place.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/launch/devices.h"
#include "mds/launch/hosts.h"
#include "mds/launch/launch_command.h"
#include "mds/launch/mpi_launcher.h"
#include "mds/tools/subcommands.h"

namespace mds::tools {
namespace {

using namespace mds::launch;

const char* kUsage =
    "usage: mds launch [flags] COMMAND [ARGS...]\n"
    "Runs COMMAND on every rank: an mds command (train, eval, generate, ...; run as this mds\n"
    "binary) or a program. Everything after COMMAND is passed through untouched.\n"
    "  --hostfile F         hosts, one per line: 'host', 'host slots=N' or 'host:N'\n"
    "                       (default: PBS_NODEFILE, SLURM_JOB_NODELIST, else this machine)\n"
    "  --np N               total ranks (default: hosts x ranks per host)\n"
    "  --ranks-per-host K   default: GPUs per host; on CPU one, or what T x P x S needs\n"
    "  --mpi M              auto (srun in a Slurm job, else the installed MPI), openmpi,\n"
    "                       mpich, pals or srun\n"
    "  --bind-to B          core (default: each rank gets its threads' cores) or none\n"
    "  --dry-run            print the launcher line, run nothing\n"
    "Threads per rank: cores / ranks per host (OMP_NUM_THREADS). MDS_DEVICE=cpu|cuda and\n"
    "MDS_BACKEND=mpi|nccl override the detection. MDS_SELF, when set, is the mds the ranks run\n"
    "(default: this binary, /proc/self/exe).\n";

// The commands of tools/mds.cpp that launch runs as this binary.
bool is_mds_command(const std::string& s) {
  for (const char* c : {"train", "eval", "generate", "preprocess", "inspect-data", "info"})
    if (s == c) return true;
  return false;
}

// This binary, as the ranks run it. MDS_SELF, when set, wins: a bundled mds runs under its own
// loader (scripts/device_bundle.sh), so /proc/self/exe is ld-linux, and the bundle's wrapper
// sets MDS_SELF to itself.
std::string self_exe() {
  if (const char* self = std::getenv("MDS_SELF"); self && *self) return self;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  MDS_ASSERT(n > 0, "cannot read /proc/self/exe: {}", std::strerror(errno));
  return std::string(buf, size_t(n));
}

int parse_count(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v.c_str(), &end, 10);
  MDS_CHECK(!v.empty() && *end == '\0' && errno == 0 && n > 0 && n <= 1 << 24,
            "{} '{}' is not a positive integer", flag, v);
  return int(n);
}

struct Args {
  std::string hostfile, mpi = "auto";
  LaunchFlags flags;
  bool dry_run = false;
  std::vector<std::string> command;
};

// Flags up to the first word that is not one (COMMAND); `--` also ends them.
bool parse_args(int argc, char** argv, Args& a) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.rfind("--", 0) != 0) break;  // COMMAND
    const size_t eq = arg.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    auto take = [&]() -> std::string {
      if (has_value) return value;
      MDS_CHECK(i + 1 < argc, "{} needs a value (see mds launch --help)", arg);
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return false;
    } else if (arg == "--hostfile") {
      a.hostfile = take();
      MDS_CHECK(!a.hostfile.empty(), "--hostfile needs a file");
    } else if (arg == "--np") {
      a.flags.np = parse_count(arg, take());
    } else if (arg == "--ranks-per-host") {
      a.flags.ranks_per_host = parse_count(arg, take());
    } else if (arg == "--mpi") {
      a.mpi = take();
      if (a.mpi != "auto") parse_mpi_flavor(a.mpi);  // a typo fails here, before any probing
    } else if (arg == "--bind-to") {
      const std::string b = take();
      MDS_CHECK(b == "core" || b == "none", "--bind-to {}: want core or none", b);
      a.flags.bind_to = b == "core" ? BindTo::core : BindTo::none;
    } else if (arg == "--dry-run") {
      MDS_CHECK(!has_value, "--dry-run takes no value");
      a.dry_run = true;
    } else {
      MDS_FAIL("unknown flag {} (flags go before COMMAND; see mds launch --help)", argv[i]);
    }
  }
  for (; i < argc; ++i) a.command.push_back(argv[i]);
  MDS_CHECK(!a.command.empty(), "no COMMAND to launch: mds launch [flags] COMMAND [ARGS...]");
  return true;
}

// A private file for the host list (mkstemp: no other user can swap it), under TMPDIR.
std::string write_hostfile(const std::string& text, const Env& env) {
  std::string dir = env_get(env, "TMPDIR");
  if (dir.empty()) dir = "/tmp";
  std::string path = dir + "/mds-hostfile.XXXXXX";
  const int fd = mkstemp(path.data());
  MDS_CHECK(fd >= 0, "cannot create a host file in {}: {} (set TMPDIR)", dir, std::strerror(errno));
  const bool ok = write(fd, text.data(), text.size()) == ssize_t(text.size());
  close(fd);
  MDS_CHECK(ok, "cannot write the host file {}", path);
  return path;
}

}  // namespace

int launch_main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) return 0;
  const Env env = process_env();

  LaunchInputs in;
  in.env = env;
  in.flags = args.flags;
  in.devices = detect_devices();
  in.hosts = discover_hosts(args.hostfile, env);
  in.as_root = geteuid() == 0;

  // What each rank runs: an mds command as this very binary, or a program as given.
  const std::string& cmd = args.command[0];
  MDS_CHECK(cmd != "launch", "mds launch cannot launch itself");
  if (is_mds_command(cmd)) {
    in.command = {self_exe()};
    in.command.insert(in.command.end(), args.command.begin(), args.command.end());
  } else {
    MDS_CHECK(!find_on_path(cmd, env).empty(),
              "COMMAND '{}' is neither an mds command (train, eval, generate, preprocess, "
              "inspect-data, info) nor a program on PATH",
              cmd);
    in.command = args.command;
  }
  in.layout =
      layout_from_args(std::vector<std::string>(args.command.begin() + 1, args.command.end()));

  const Launcher launcher = find_launcher(args.mpi, env);
  in.flavor = launcher.flavor;
  in.launcher = launcher.program;
  LaunchPlan plan = plan_launch(in);  // every check happens here, before anything is written
  if (!plan.hostfile_text.empty()) {
    in.hostfile_path = write_hostfile(plan.hostfile_text, env);
    plan = plan_launch(in);
  }

  const Placement& p = plan.placement;
  std::fprintf(stderr,
               "mds launch: devices %s x%d (%s, %d cores); backend %s; hosts %zu from %s (%s)\n",
               device_kind_name(in.devices.kind), in.devices.count, in.devices.name.c_str(),
               in.devices.cores, backend_name(plan.backend), in.hosts.hosts.size(),
               host_source_name(in.hosts.source), in.hosts.origin.c_str());
  std::fprintf(stderr,
               "mds launch: %d ranks = %d host(s) x %d per host, %d thread(s) per rank; "
               "T x P x S = %d x %d x %d; %s%s%s\n",
               p.np, p.nodes, p.ranks_per_host, p.threads_per_rank, in.layout.tp, in.layout.pp,
               in.layout.sp, mpi_flavor_name(launcher.flavor), launcher.version.empty() ? "" : ": ",
               launcher.version.c_str());
  if (!in.hostfile_path.empty())
    std::fprintf(stderr, "mds launch: host file %s (%d host(s))\n", in.hostfile_path.c_str(),
                 p.nodes);
  std::printf("%s\n", shell_join(plan.argv).c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  if (args.dry_run) return 0;

  MDS_CHECK(!find_on_path(plan.argv[0], env).empty(), "{} is not on PATH: cannot launch",
            plan.argv[0]);
  // The ranks' variables, also set here: srun and a local mpirun pass the environment on.
  for (const auto& [var, value] : plan.rank_env) setenv(var.c_str(), value.c_str(), 1);
  std::vector<char*> cargv;
  for (std::string& s : plan.argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  execvp(cargv[0], cargv.data());
  MDS_FAIL("cannot run {}: {}", plan.argv[0], std::strerror(errno));
}

}  // namespace mds::tools
