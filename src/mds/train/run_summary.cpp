#include "mds/train/run_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "mds/train/metrics.h"

namespace mds::train {

LossHistory::Bounds LossHistory::bounds() const {
  Bounds b{double(train.front().iteration), double(train.front().iteration), train.front().loss,
           train.front().loss};
  for (const auto* pts : {&train, &valid})
    for (const Point& p : *pts) {
      b.x0 = std::min(b.x0, double(p.iteration));
      b.x1 = std::max(b.x1, double(p.iteration));
      b.lo = std::min(b.lo, p.loss);
      b.hi = std::max(b.hi, p.loss);
    }
  if (b.x1 == b.x0) b.x1 = b.x0 + 1;
  return b;
}

std::string format_summary(const RunSummary& s) {
  char buf[512];
  std::string out;
  const long long first = s.first_iteration + 1, last = s.last_iteration;
  std::snprintf(buf, sizeof buf, "> run summary: iterations %lld-%lld (%lld), %lld tokens\n", first,
                last, last - first + 1, (long long)s.tokens);
  out += buf;
  std::snprintf(buf, sizeof buf,
                ">   time %s (%.1f s in training iterations), %.1f tokens/s, %.3f TFLOP/s per "
                "device",
                format_duration(s.wall_seconds).c_str(), s.train_seconds, s.tokens_per_second,
                s.tflops);
  out += buf;
  if (s.mfu >= 0) {
    std::snprintf(buf, sizeof buf, ", MFU %.2f%%", s.mfu);
    out += buf;
  }
  out += "\n";
  std::snprintf(buf, sizeof buf, ">   lm loss: final train %.6f", s.final_train_loss);
  out += buf;
  if (s.final_valid_loss >= 0) {
    std::snprintf(buf, sizeof buf, ", final validation %.6f (PPL %.3f)", s.final_valid_loss,
                  std::exp(std::min(20.0, s.final_valid_loss)));
    out += buf;
  }
  return out + "\n";
}

std::string summary_json(const RunSummary& s) {
  auto maybe = [](double v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::ordered_json j;
  j["first_iteration"] = s.first_iteration;
  j["last_iteration"] = s.last_iteration;
  j["tokens"] = s.tokens;
  j["wall_seconds"] = s.wall_seconds;
  j["train_seconds"] = s.train_seconds;
  j["tokens_per_second"] = s.tokens_per_second;
  j["TFLOPs"] = s.tflops;
  j["MFU"] = maybe(s.mfu);
  j["final_train_loss"] = maybe(s.final_train_loss);
  j["final_valid_loss"] = maybe(s.final_valid_loss);
  nlohmann::ordered_json line;
  line["summary"] = j;
  return line.dump();
}

}  // namespace mds::train
