#include "mds/launch/hosts.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "mds/core/error.h"

extern char** environ;

namespace mds::launch {
namespace {

// Slurm allocations of a million nodes do not exist: a bigger range is a typo.
constexpr long kMaxHosts = 1000000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool valid_hostname(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

// A positive decimal integer, or -1.
long parse_count(std::string_view s) {
  long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v <= 0 || v > INT_MAX) return -1;
  return v;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) words.push_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

// Hosts in first-listed order; a host listed again adds its slots.
struct HostTable {
  std::vector<Host> hosts;
  std::unordered_map<std::string, size_t> index;

  void add(std::string_view name, int slots) {
    auto [it, fresh] = index.emplace(std::string(name), hosts.size());
    if (fresh) hosts.push_back({std::string(name), 0});
    hosts[it->second].slots += slots;
  }
};

std::string read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  MDS_CHECK(in.good(), "cannot read the host file {} ({})", path, what);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// One bracket group's numbers ("001-004,007") as strings, zero padding kept.
std::vector<std::string> expand_ranges(std::string_view body, std::string_view list,
                                       std::string_view what) {
  std::vector<std::string> out;
  auto bad = [&](std::string_view why) {
    MDS_FAIL("{}='{}' does not parse: {} in [{}]", what, list, why, body);
  };
  size_t start = 0;
  while (start <= body.size()) {
    size_t comma = body.find(',', start);
    if (comma == std::string_view::npos) comma = body.size();
    const std::string_view part = body.substr(start, comma - start);
    const size_t dash = part.find('-');
    const std::string_view lo_s = part.substr(0, dash);
    const std::string_view hi_s = dash == std::string_view::npos ? lo_s : part.substr(dash + 1);
    auto number = [&](std::string_view s) {
      if (s.empty() || s.size() > 9 ||
          !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        bad(strfmt("'{}' is not a number or a lo-hi range", part));
      long v = 0;
      std::from_chars(s.data(), s.data() + s.size(), v);
      return v;
    };
    const long lo = number(lo_s), hi = number(hi_s);
    if (hi < lo) bad(strfmt("range {} runs backwards", part));
    if (long(out.size()) + hi - lo + 1 > kMaxHosts) bad("more than a million hosts");
    const size_t width = lo_s.size();  // nid[001-004]: three digits; [8-10]: no padding
    for (long v = lo; v <= hi; ++v) {
      std::string digits = std::to_string(v);
      if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
      out.push_back(std::move(digits));
    }
    start = comma + 1;
  }
  return out;
}

// One item of the list ("nid[001-004]x", "gpu12"): the product of its bracket groups.
std::vector<std::string> expand_item(std::string_view item, std::string_view list,
                                     std::string_view what) {
  std::vector<std::string> names{""};
  size_t i = 0;
  while (i < item.size()) {
    if (item[i] == '[') {
      const size_t close = item.find(']', i);
      MDS_CHECK(close != std::string_view::npos, "{}='{}' does not parse: '[' without ']' in {}",
                what, list, item);
      const std::string_view body = item.substr(i + 1, close - i - 1);
      MDS_CHECK(body.find('[') == std::string_view::npos,
                "{}='{}' does not parse: nested '[' in {}", what, list, item);
      const std::vector<std::string> nums = expand_ranges(body, list, what);
      MDS_CHECK(long(names.size()) * long(nums.size()) <= kMaxHosts,
                "{}='{}' does not parse: more than a million hosts", what, list);
      std::vector<std::string> next;
      next.reserve(names.size() * nums.size());
      for (const std::string& prefix : names)
        for (const std::string& n : nums) next.push_back(prefix + n);
      names = std::move(next);
      i = close + 1;
    } else {
      const size_t next = std::min(item.find('[', i), item.size());
      const std::string_view text = item.substr(i, next - i);
      MDS_CHECK(text.find(']') == std::string_view::npos,
                "{}='{}' does not parse: ']' without '[' in {}", what, list, item);
      for (std::string& n : names) n += text;
      i = next;
    }
  }
  for (const std::string& n : names)
    MDS_CHECK(valid_hostname(n), "{}='{}' does not parse: '{}' is not a host name", what, list, n);
  return names;
}

std::string this_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

Env process_env() {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

std::string env_get(const Env& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

const char* host_source_name(HostSource s) {
  switch (s) {
    case HostSource::hostfile:
      return "--hostfile";
    case HostSource::pbs:
      return "PBS";
    case HostSource::slurm:
      return "Slurm";
    case HostSource::local:
      return "local";
  }
  return "?";
}

std::vector<std::string> expand_slurm_nodelist(std::string_view list, std::string_view what) {
  const std::string_view all = trim(list);
  MDS_CHECK(!all.empty(), "{} is empty: no hosts to run on", what);
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  // Split at the commas outside brackets: those inside separate numbers, not hosts.
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    const char c = i < all.size() ? all[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    MDS_CHECK(depth >= 0, "{}='{}' does not parse: ']' without '['", what, list);
    if (c == ',' && depth == 0) {
      const std::string_view item = all.substr(start, i - start);
      MDS_CHECK(!item.empty(), "{}='{}' does not parse: an empty host between commas", what, list);
      for (std::string& n : expand_item(item, list, what)) {
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
        MDS_CHECK(long(names.size()) <= kMaxHosts,
                  "{}='{}' does not parse: more than a million hosts", what, list);
      }
      start = i + 1;
    }
  }
  MDS_CHECK(depth == 0, "{}='{}' does not parse: '[' without ']'", what, list);
  return names;
}

std::vector<Host> parse_pbs_nodefile(std::string_view text, std::string_view path) {
  HostTable hosts;
  std::istringstream in{std::string(text)};
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const std::string_view name = trim(line);
    if (name.empty()) continue;
    MDS_CHECK(valid_hostname(name), "PBS node file {} line {}: '{}' is not a host name", path,
              line_no, name);
    hosts.add(name, 1);
  }
  MDS_CHECK(!hosts.hosts.empty(), "PBS node file {} lists no hosts", path);
  return std::move(hosts.hosts);
}

std::vector<Host> parse_hostfile(std::string_view text, std::string_view path) {
  HostTable hosts;
  std::istringstream in{std::string(text)};
  int line_no = 0;
  for (std::string raw; std::getline(in, raw);) {
    ++line_no;
    std::string_view line = raw;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const std::vector<std::string_view> words = split_words(line);
    if (words.empty()) continue;
    auto bad = [&](std::string_view why) {
      MDS_FAIL("host file {} line {}: '{}': {} (want 'host', 'host slots=N' or 'host:N')", path,
               line_no, trim(raw), why);
    };
    std::string_view name = words[0];
    long slots = 1;
    if (size_t colon = name.find(':'); colon != std::string_view::npos) {  // MPICH host:N
      if (words.size() > 1) bad("nothing may follow host:N");
      slots = parse_count(name.substr(colon + 1));
      if (slots < 0) bad("N in host:N must be a positive integer");
      name = name.substr(0, colon);
    }
    for (size_t w = 1; w < words.size(); ++w) {  // OpenMPI: slots=N, max_slots=M
      const std::string_view word = words[w];
      const size_t eq = word.find('=');
      const std::string_view key = word.substr(0, eq);
      if (eq == std::string_view::npos || (key != "slots" && key != "max_slots"))
        bad(strfmt("unknown '{}'", word));
      const long n = parse_count(word.substr(eq + 1));
      if (n < 0) bad(strfmt("{} must be a positive integer", key));
      if (key == "slots") slots = n;
    }
    if (!valid_hostname(name)) bad(strfmt("'{}' is not a host name", name));
    hosts.add(name, int(slots));
  }
  MDS_CHECK(!hosts.hosts.empty(), "host file {} lists no hosts", path);
  return std::move(hosts.hosts);
}

HostList discover_hosts(const std::string& hostfile, const Env& env) {
  HostList list;
  if (!hostfile.empty()) {
    list.source = HostSource::hostfile;
    list.origin = hostfile;
    list.hosts = parse_hostfile(read_file(hostfile, "--hostfile"), hostfile);
    return list;
  }
  if (const std::string pbs = env_get(env, "PBS_NODEFILE"); !pbs.empty()) {
    list.source = HostSource::pbs;
    list.origin = pbs;
    list.hosts = parse_pbs_nodefile(read_file(pbs, "PBS_NODEFILE"), pbs);
    return list;
  }
  for (const char* var : {"SLURM_JOB_NODELIST", "SLURM_NODELIST"}) {
    const std::string nodes = env_get(env, var);
    if (!env.count(var)) continue;
    list.source = HostSource::slurm;
    list.origin = strfmt("{}={}", var, nodes);
    for (std::string& n : expand_slurm_nodelist(nodes, var)) list.hosts.push_back({n, 0});
    return list;
  }
  list.source = HostSource::local;
  list.origin = this_hostname();
  list.hosts.push_back({list.origin, 0});
  return list;
}

}  // namespace mds::launch
