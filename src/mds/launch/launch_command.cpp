#include "mds/launch/launch_command.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>

#include "mds/core/error.h"

namespace mds::launch {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int positive_int(std::string_view flag, std::string_view value) {
  int v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  MDS_CHECK(ec == std::errc() && end == value.data() + value.size() && v > 0,
            "{} '{}' is not a positive integer", flag, value);
  return v;
}

int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

std::string layout_text(const ParallelLayout& l) {
  return strfmt(
      "the layout's T x P x S = {} x {} x {} = {} (--tensor-model-parallel-size x "
      "--pipeline-model-parallel-size x --ds-sequence-parallel-size)",
      l.tp, l.pp, l.sp, l.size());
}

}  // namespace

const char* mpi_flavor_name(MpiFlavor f) {
  switch (f) {
    case MpiFlavor::openmpi:
      return "openmpi";
    case MpiFlavor::mpich:
      return "mpich";
    case MpiFlavor::pals:
      return "pals";
    case MpiFlavor::srun:
      return "srun";
  }
  return "?";
}

const char* backend_name(Backend b) {
  return b == Backend::nccl ? "nccl" : "mpi";
}

MpiFlavor parse_mpi_flavor(std::string_view s) {
  for (MpiFlavor f : {MpiFlavor::openmpi, MpiFlavor::mpich, MpiFlavor::pals, MpiFlavor::srun})
    if (s == mpi_flavor_name(f)) return f;
  MDS_FAIL("--mpi {}: want auto, openmpi, mpich, pals or srun", s);
}

bool mpi_flavor_from_version(std::string_view version_text, MpiFlavor& flavor) {
  const std::string t = lower(version_text);
  auto has = [&](const char* s) { return t.find(s) != std::string::npos; };
  if (has("open mpi") || has("openrte")) {
    flavor = MpiFlavor::openmpi;
  } else if (has("hydra") || has("mpich") || has("intel(r) mpi")) {
    flavor = MpiFlavor::mpich;
  } else if (has("pals") || has("cray") || has("hpe")) {
    flavor = MpiFlavor::pals;
  } else {
    return false;
  }
  return true;
}

Backend choose_backend(const DeviceInfo& d, const Env& env) {
  const std::string want = lower(env_get(env, "MDS_BACKEND"));
  if (want.empty()) return d.kind == DeviceKind::cuda ? Backend::nccl : Backend::mpi;
  if (want == "mpi") return Backend::mpi;
  MDS_CHECK(want == "nccl", "MDS_BACKEND={} is not a backend: use mpi or nccl",
            env_get(env, "MDS_BACKEND"));
  MDS_CHECK(d.kind == DeviceKind::cuda,
            "MDS_BACKEND=nccl needs CUDA GPUs, and the devices here are the CPU: unset it or use "
            "MDS_BACKEND=mpi");
  return Backend::nccl;
}

ParallelLayout layout_from_args(const std::vector<std::string>& args) {
  ParallelLayout l;
  const std::pair<const char*, int*> flags[] = {{"--tensor-model-parallel-size", &l.tp},
                                                {"--pipeline-model-parallel-size", &l.pp},
                                                {"--ds-sequence-parallel-size", &l.sp}};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    for (auto [flag, slot] : flags) {
      const std::string_view f = flag;
      if (a == f) {
        MDS_CHECK(i + 1 < args.size(), "{} needs a value", f);
        *slot = positive_int(f, args[++i]);
      } else if (a.size() > f.size() && a.substr(0, f.size()) == f && a[f.size()] == '=') {
        *slot = positive_int(f, a.substr(f.size() + 1));
      }
    }
  }
  return l;
}

Placement place_ranks(int num_hosts, const DeviceInfo& d, const LaunchFlags& flags,
                      const ParallelLayout& layout) {
  MDS_ASSERT(num_hosts >= 1, "no hosts");
  const int tps = layout.size();
  Placement p;
  const char* rph_why = "";
  if (d.kind == DeviceKind::cuda) {
    MDS_CHECK(flags.ranks_per_host <= d.count,
              "--ranks-per-host {} is more than the {} GPUs per host: one rank per GPU at most",
              flags.ranks_per_host, d.count);
    p.ranks_per_host = flags.ranks_per_host > 0 ? flags.ranks_per_host : d.count;
    p.np = flags.np > 0 ? flags.np : num_hosts * p.ranks_per_host;
    rph_why = flags.ranks_per_host > 0 ? "--ranks-per-host" : "GPUs per host";
  } else if (flags.ranks_per_host > 0) {
    p.ranks_per_host = flags.ranks_per_host;
    p.np = flags.np > 0 ? flags.np : num_hosts * p.ranks_per_host;
    rph_why = "--ranks-per-host";
  } else if (flags.np > 0) {
    p.np = flags.np;
    p.ranks_per_host = ceil_div(p.np, num_hosts);  // spread evenly, fill hosts in order
  } else {
    // One rank per host with all its cores, more when the layout needs more ranks than hosts;
    // the world is then the largest multiple of the layout the hosts hold.
    p.ranks_per_host = ceil_div(tps, num_hosts);
    p.np = num_hosts * p.ranks_per_host / tps * tps;
  }
  MDS_CHECK(p.np <= num_hosts * p.ranks_per_host,
            "--np {} is more ranks than {} host(s) x {} ranks per host ({}) can hold", p.np,
            num_hosts, p.ranks_per_host, rph_why);
  if (flags.np > 0)
    MDS_CHECK(p.np % tps == 0, "--np {} does not fit {}: the world must be a multiple of {}", p.np,
              layout_text(layout), tps);
  else
    MDS_CHECK(p.np % tps == 0,
              "{} ranks ({} host(s) x {} per host) do not fit {}: the world must be a multiple "
              "of {}; pass --np or --ranks-per-host",
              p.np, num_hosts, p.ranks_per_host, layout_text(layout), tps);
  p.nodes = ceil_div(p.np, p.ranks_per_host);
  p.threads_per_rank = std::max(1, d.cores / p.ranks_per_host);
  p.oversubscribe = p.ranks_per_host > d.cores;
  return p;
}

LaunchPlan plan_launch(const LaunchInputs& in) {
  LaunchPlan plan;
  plan.backend = choose_backend(in.devices, in.env);
  const Placement& p = plan.placement =
      place_ranks(int(in.hosts.hosts.size()), in.devices, in.flags, in.layout);
  // Binding a rank to its cores needs as many cores as ranks; oversubscribed, let them float.
  const bool bind = in.flags.bind_to == BindTo::core && !p.oversubscribe;
  const std::string n = std::to_string(p.np), k = std::to_string(p.ranks_per_host),
                    t = std::to_string(p.threads_per_rank);

  // VAR=VALUE, as OpenMPI's -x, PALS's --env and srun's --export take them.
  auto assign = [](const std::pair<std::string, std::string>& kv) {
    std::string s = kv.first;
    s += '=';
    s += kv.second;
    return s;
  };
  plan.rank_env.push_back({"OMP_NUM_THREADS", t});
  plan.rank_env.push_back({"MDS_BACKEND", backend_name(plan.backend)});
  if (std::string dev = env_get(in.env, "MDS_DEVICE"); !dev.empty())
    plan.rank_env.push_back({"MDS_DEVICE", dev});

  // The hosts the ranks use, for a host file (or srun's --nodelist).
  const bool local = in.hosts.source == HostSource::local;
  std::vector<std::string> used;
  used.reserve(size_t(p.nodes));
  for (int i = 0; i < p.nodes; ++i) used.push_back(in.hosts.hosts[size_t(i)].name);
  auto write_hostfile = [&](auto line) {
    for (const std::string& h : used) plan.hostfile_text += line(h) + "\n";
  };

  std::vector<std::string>& a = plan.argv;
  a.push_back(in.launcher);
  switch (in.flavor) {
    case MpiFlavor::openmpi:
      // mpirun -np N -npernode K --hostfile F --bind-to core [--map-by slot:PE=T] -x VAR=...
      if (in.as_root) a.push_back("--allow-run-as-root");
      a.insert(a.end(), {"-np", n, "-npernode", k});
      if (!local) {
        write_hostfile([&](const std::string& h) { return h + " slots=" + k; });
        a.insert(a.end(), {"--hostfile", in.hostfile_path});
      }
      if (p.oversubscribe) a.push_back("--oversubscribe");
      a.insert(a.end(), {"--bind-to", bind ? "core" : "none"});
      // A rank's T threads get T cores; without PE=T, --bind-to core pins them all to one.
      if (bind && p.threads_per_rank > 1) a.insert(a.end(), {"--map-by", "slot:PE=" + t});
      for (const auto& kv : plan.rank_env) a.insert(a.end(), {"-x", assign(kv)});
      break;
    case MpiFlavor::mpich:
      // MPICH's Hydra: mpiexec -n N -ppn K -f F -genv VAR VALUE -bind-to core:T
      a.insert(a.end(), {"-n", n, "-ppn", k});
      if (!local) {
        write_hostfile([&](const std::string& h) { return h + ":" + k; });
        a.insert(a.end(), {"-f", in.hostfile_path});
      }
      for (const auto& [var, value] : plan.rank_env) a.insert(a.end(), {"-genv", var, value});
      a.insert(a.end(), {"-bind-to", bind ? "core:" + t : "none"});
      break;
    case MpiFlavor::pals:
      // HPE/Cray PALS (Aurora, Polaris), as ezpz: mpiexec --envall --np N --ppn K --hostfile F
      // --cpu-bind depth --depth T
      a.insert(a.end(), {"--envall", "--np", n, "--ppn", k});
      if (!local) {
        write_hostfile([&](const std::string& h) { return h; });
        a.insert(a.end(), {"--hostfile", in.hostfile_path});
      }
      if (bind)
        a.insert(a.end(), {"--cpu-bind", "depth", "--depth", t});
      else
        a.insert(a.end(), {"--cpu-bind", "none"});
      for (const auto& kv : plan.rank_env) a.insert(a.end(), {"--env", assign(kv)});
      break;
    case MpiFlavor::srun: {
      // srun -N nodes -n N --ntasks-per-node K --cpus-per-task T --cpu-bind=cores
      a.insert(a.end(), {"-N", std::to_string(p.nodes), "-n", n, "--ntasks-per-node", k,
                         "--cpus-per-task", t});
      if (in.devices.kind == DeviceKind::cuda) a.push_back("--gpus-per-node=" + k);
      if (p.oversubscribe) a.push_back("--overcommit");
      a.push_back(bind ? "--cpu-bind=cores" : "--cpu-bind=none");
      if (in.hosts.source != HostSource::slurm && !local) {  // hosts outside the allocation's list
        std::string list;
        for (const std::string& h : used) list += (list.empty() ? "" : ",") + h;
        a.push_back("--nodelist=" + list);
      }
      std::string exports = "--export=ALL";
      for (const auto& kv : plan.rank_env) {  // appended piecewise: GCC 12 misreports "," + str
        exports += ',';
        exports += assign(kv);
      }
      a.push_back(exports);
      break;
    }
  }
  a.insert(a.end(), in.command.begin(), in.command.end());
  return plan;
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& w : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("_-./=:,+@%^").find(c) != std::string_view::npos;
    });
    if (plain) {
      out += w;
      continue;
    }
    out += '\'';
    for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

}  // namespace mds::launch
