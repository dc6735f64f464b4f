#include "mds/launch/mpi_launcher.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "mds/core/error.h"

namespace mds::launch {
namespace {

bool is_executable(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// The first line `program --version` prints (stdout and stderr), or "".
std::string version_line(const std::string& program) {
  const std::string cmd = "'" + program + "' --version 2>&1";  // program: a path from PATH
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  // Skip blank lines (MPICH starts with one); keep the first line that names something.
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    if (nl == std::string::npos) nl = out.size();
    std::string line = out.substr(start, nl - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      // Hydra prints "HYDRA build details:" first and its version on the next line; keep both.
      if (line.find("HYDRA") != std::string::npos && nl < out.size()) {
        size_t nl2 = out.find('\n', nl + 1);
        line += ' ';
        line += out.substr(nl + 1, (nl2 == std::string::npos ? out.size() : nl2) - nl - 1);
      }
      return line;
    }
    start = nl + 1;
  }
  return "";
}

}  // namespace

std::string find_on_path(const std::string& name, const Env& env) {
  if (name.find('/') != std::string::npos) return is_executable(name) ? name : "";
  const std::string path = env_get(env, "PATH");
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    if (dir.empty()) dir.assign(1, '.');  // GCC 12 -Wrestrict misfires on = "."
    std::string candidate = std::move(dir);
    candidate += '/';
    candidate += name;
    if (is_executable(candidate)) return candidate;
    start = colon + 1;
  }
  return "";
}

Launcher find_launcher(const std::string& mpi, const Env& env) {
  Launcher l;
  if (mpi == "srun" || (mpi == "auto" && !env_get(env, "SLURM_JOB_ID").empty())) {
    l.flavor = MpiFlavor::srun;
    const std::string found = find_on_path("srun", env);
    l.program = found.empty() ? "srun" : found;
    return l;
  }
  if (mpi != "auto") {
    l.flavor = parse_mpi_flavor(mpi);
    // OpenMPI's own name is mpirun; MPICH and PALS install mpiexec.
    const char* first = l.flavor == MpiFlavor::openmpi ? "mpirun" : "mpiexec";
    const char* second = l.flavor == MpiFlavor::openmpi ? "mpiexec" : "mpirun";
    std::string found = find_on_path(first, env);
    if (found.empty()) found = find_on_path(second, env);
    l.program = found.empty() ? first : found;
    if (!found.empty()) l.version = version_line(found);
    return l;
  }
  std::string tried;
  for (const char* name : {"mpirun", "mpiexec"}) {
    const std::string found = find_on_path(name, env);
    if (found.empty()) continue;
    l.program = found;
    l.version = version_line(found);
    if (mpi_flavor_from_version(l.version, l.flavor)) return l;
    tried += strfmt("{}{} --version says '{}'", tried.empty() ? "" : "; ", found, l.version);
  }
  MDS_CHECK(!tried.empty(),
            "no MPI launcher: neither mpirun nor mpiexec is on PATH (install OpenMPI, see "
            "scripts/setup.sh) and this is not a Slurm job");
  MDS_FAIL("cannot tell which MPI is installed ({}): pass --mpi openmpi|mpich|pals|srun", tried);
}

}  // namespace mds::launch
