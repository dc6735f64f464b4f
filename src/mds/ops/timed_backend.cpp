#include "mds/ops/timed_backend.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace mds::ops {

std::string TimedCalls::report(int64_t iterations) const {
  std::vector<std::pair<std::string, Stat>> rows(stats_.begin(), stats_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  const double per = iterations > 0 ? 1e3 / double(iterations) : 0;
  char line[256];
  std::snprintf(line, sizeof line,
                "> kernel time on %s over %lld training iterations (each call synchronised; "
                "evaluation left out):\n>   %-28s %9s %12s %8s\n",
                device_name(device()), (long long)iterations, "kernel", "calls", "ms/iter",
                "share");
  std::string s = line;
  auto row = [&](const std::string& name, const char* calls, double seconds) {
    std::snprintf(line, sizeof line, ">   %-28s %9s %12.3f %7.1f%%\n", name.c_str(), calls,
                  seconds * per, total > 0 ? 100.0 * seconds / total : 0.0);
    s += line;
  };
  for (const auto& [name, st] : rows) row(name, std::to_string(st.calls).c_str(), st.seconds);
  row("total", "", total);
  return s;
}

}  // namespace mds::ops
