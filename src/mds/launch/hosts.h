// The hosts a job runs on, from wherever the scheduler or the user lists them:
//   --hostfile FILE            `host`, `host slots=N` (OpenMPI) or `host:N` (MPICH) per line
//   PBS_NODEFILE               one host per line, a host repeated once per slot
//   SLURM_JOB_NODELIST         Slurm's compressed list, e.g. nid[001-004,007],gpu12
//   (or SLURM_NODELIST)
//   otherwise                  this machine alone (gethostname)
// in that order. Bad input (an empty or malformed file, a list that does not parse) is a
// UserError naming the file or variable and the offending line or text.
// The parsers are pure functions of text so the tests can feed them anything.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mds::launch {

// The environment as a table, so the pure planning functions can be given a fake one.
using Env = std::map<std::string, std::string>;
Env process_env();  // this process's environ
// env[name] or "" when unset.
std::string env_get(const Env& env, const std::string& name);

struct Host {
  std::string name;
  int slots = 0;  // slots the source gave (repeated lines, slots=N, :N); 0 when it gave none
};

enum class HostSource { hostfile, pbs, slurm, local };
const char* host_source_name(HostSource s);  // "--hostfile", "PBS", "Slurm", "local"

struct HostList {
  std::vector<Host> hosts;  // distinct names, in the order first listed
  HostSource source = HostSource::local;
  std::string origin;  // what was read: the file, "SLURM_JOB_NODELIST=...", or the hostname
};

// Slurm's hostlist syntax: comma-separated items, each a name with any number of bracket
// groups of comma-separated numbers or lo-hi ranges; zero padding is kept (the width of lo),
// several groups expand as a product, leftmost slowest: a[1-2]b[3-4] -> a1b3 a1b4 a2b3 a2b4.
// what names the variable in errors.
std::vector<std::string> expand_slurm_nodelist(std::string_view list, std::string_view what);

// A PBS node file: one host per line, repeated per slot; lines are de-duplicated keeping the
// first order and each host's count becomes its slots. path names the file in errors.
std::vector<Host> parse_pbs_nodefile(std::string_view text, std::string_view path);

// A host file: per line `host`, `host slots=N [max_slots=M]` or `host:N`; '#' starts a
// comment; a host listed twice adds its slots (a bare line counts 1, as in a PBS node file).
std::vector<Host> parse_hostfile(std::string_view text, std::string_view path);

// The hosts of this job (see the top of this file). hostfile: the --hostfile flag or "".
HostList discover_hosts(const std::string& hostfile, const Env& env);

}  // namespace mds::launch
