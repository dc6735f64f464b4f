// TimedBackend (--timing-log-level 2): forwards every call to the backend it wraps, with the
// same results, and counts each call by name; paused calls and allocations are not counted.
#include <gtest/gtest.h>

#include <vector>

#include "mds/core/buffer.h"
#include "mds/ops/timed_backend.h"

namespace mds {
namespace {

TEST(TimedBackend, ForwardsAndCountsEachCallByName) {
  ops::TimedBackend timed(ops::cpu_backend());
  ops::Backend& be = timed;  // the kernels' overload set is the Backend's
  Buffer<float> x(timed, 4), y(timed, 4);
  const std::vector<float> a = {1, 2, 3, 4}, b = {10, 20, 30, 40};
  x.upload(a.data(), 4);
  y.upload(b.data(), 4);
  be.add_inplace(y.data(), x.data(), 4);
  EXPECT_EQ(y.to_host(), (std::vector<float>{11, 22, 33, 44}));
  EXPECT_DOUBLE_EQ(be.sum_squares(x.data(), 4), 30.0);  // a value-returning call
  timed.pause(true);
  be.add_inplace(y.data(), x.data(), 4);  // runs, not counted
  timed.pause(false);
  EXPECT_EQ(y.to_host(), (std::vector<float>{12, 24, 36, 48}));
  const auto& st = timed.stats();
  EXPECT_EQ(st.at("upload").calls, 2);
  EXPECT_EQ(st.at("add_inplace").calls, 1);
  EXPECT_EQ(st.at("sum_squares").calls, 1);
  EXPECT_EQ(st.at("download").calls, 2);  // the first to_host; the second one came unpaused
  EXPECT_EQ(st.count("allocate"), 0u);
  const std::string table = timed.report(1);
  EXPECT_NE(table.find("add_inplace"), std::string::npos) << table;
  EXPECT_NE(table.find("total"), std::string::npos) << table;
  timed.reset();
  EXPECT_TRUE(timed.stats().empty());
}

}  // namespace
}  // namespace mds
