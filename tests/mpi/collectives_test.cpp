// Every collective of the MPI communicator against hand-computed results, on whatever number of
// ranks the test runs with (CTest: 2 and 4). Values encode (source rank, destination, index)
// so a misplaced block shows up as a wrong number.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "../half_test_util.h"
#include "mds/dist/communicator.h"
#include "mpi_world.h"

namespace mds::dist {
namespace {

using mds::testing::world;

TEST(Collectives, WorldIsLaunchedByMpirun) {
  EXPECT_GE(world().size(), 2) << "run this binary under mpirun -np 2 or more";
}

TEST(Collectives, AllReduceSumMaxAvgFloat) {
  const int p = world().size(), r = world().rank(), n = 5;
  std::vector<float> sum(n), mx(n), avg(n);
  for (int i = 0; i < n; ++i) sum[i] = mx[i] = avg[i] = float(r * 10 + i);
  world().all_reduce(sum.data(), n, ReduceOp::sum);
  world().all_reduce(mx.data(), n, ReduceOp::max);
  world().all_reduce(avg.data(), n, ReduceOp::avg);
  const float rank_sum = float(p * (p - 1) / 2);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(sum[i], 10 * rank_sum + float(p * i)) << i;
    EXPECT_EQ(mx[i], float(10 * (p - 1) + i)) << i;
    EXPECT_FLOAT_EQ(avg[i], (10 * rank_sum + float(p * i)) / float(p)) << i;
  }
}

TEST(Collectives, AllReduceIntegersAndDoubles) {
  const int p = world().size(), r = world().rank();
  int64_t big[2] = {int64_t(1) << 40, -r};
  world().all_reduce(big, 2, ReduceOp::sum);
  EXPECT_EQ(big[0], int64_t(p) << 40);
  EXPECT_EQ(big[1], -p * (p - 1) / 2);
  int32_t small = 3 * r;
  world().all_reduce(&small, 1, ReduceOp::max);
  EXPECT_EQ(small, 3 * (p - 1));
  double d = 1.0 / 3.0 + r;
  world().all_reduce(&d, 1, ReduceOp::avg);
  EXPECT_NEAR(d, 1.0 / 3.0 + (p - 1) / 2.0, 1e-15);
}

// bf16 and fp16 (mixed precision's activations under TP/SP): user MPI operations combining in
// fp32 and rounding once. Values exact in both types (small integers) give exact sums; a rounding
// case (values 1 + r 2u, one more bit than H keeps once summed) checks the result is an H value
// next to the exact sum; past H's largest finite value (fp16: 65504) a sum is inf, which the
// fp16 loss scaler must see on every rank; and the all-to-all moves 2-byte elements.
template <typename H>
class CollectivesHalf : public ::testing::Test {};
TYPED_TEST_SUITE(CollectivesHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CollectivesHalf, AllReduceAndAllToAll) {
  using H = TypeParam;
  const int p = world().size(), r = world().rank(), n = 4;
  std::vector<H> sum(n), mx(n), avg(n);
  for (int i = 0; i < n; ++i) sum[i] = mx[i] = avg[i] = H(float(r * 8 + i));
  world().all_reduce(sum.data(), n, ReduceOp::sum);
  world().all_reduce(mx.data(), n, ReduceOp::max);
  world().all_reduce(avg.data(), n, ReduceOp::avg);
  const float rank_sum = float(p * (p - 1) / 2);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(float(sum[i]), 8 * rank_sum + float(p * i)) << i;
    EXPECT_EQ(float(mx[i]), float(8 * (p - 1) + i)) << i;
    EXPECT_EQ(float(avg[i]), test::round_to<H>((8 * rank_sum + float(p * i)) / float(p))) << i;
  }
  const float step = float(2 * test::unit_roundoff<H>());  // bf16 2^-7, fp16 2^-10: H's ulp at 1
  H odd(1.0f + float(r) * step);  // exact; the p values' sum needs more bits than H has
  world().all_reduce(&odd, 1, ReduceOp::sum);
  const float exact = float(p) + rank_sum * step;
  EXPECT_EQ(float(odd), test::round_to<H>(float(odd)));
  EXPECT_NEAR(float(odd), exact, float(p) * exact * step);
  const float max = test::largest_finite<H>();
  std::vector<H> big = {H(max), H(-max), H(r == 0 ? INFINITY : max)};
  world().all_reduce(big.data(), 2, ReduceOp::sum);
  world().all_reduce(big.data() + 2, 1, ReduceOp::max);
  EXPECT_EQ(float(big[0]), INFINITY);  // p x max: past the largest finite H
  EXPECT_EQ(float(big[1]), -INFINITY);
  EXPECT_EQ(float(big[2]), INFINITY);  // one rank's inf is every rank's
  std::vector<H> in(p), out(p);
  for (int j = 0; j < p; ++j) in[j] = H(float(10 * r + j));  // exact in bf16 and fp16 (< 256)
  world().all_to_all(in.data(), out.data(), 1);
  for (int j = 0; j < p; ++j) EXPECT_EQ(float(out[j]), float(10 * j + r)) << j;
}

TEST(Collectives, ReduceScatterGivesEachRankItsBlock) {
  const int p = world().size(), r = world().rank(), n = 3;
  std::vector<float> in(p * n), out(n, -1);
  for (int dst = 0; dst < p; ++dst)
    for (int i = 0; i < n; ++i) in[dst * n + i] = float(r + 100 * dst + i);
  world().reduce_scatter(in.data(), out.data(), n, ReduceOp::sum);
  for (int i = 0; i < n; ++i) EXPECT_EQ(out[i], float(p * (p - 1) / 2 + p * (100 * r + i)));
  world().reduce_scatter(in.data(), out.data(), n, ReduceOp::avg);
  for (int i = 0; i < n; ++i)
    EXPECT_FLOAT_EQ(out[i], float(p * (p - 1) / 2 + p * (100 * r + i)) / float(p));
}

TEST(Collectives, AllGatherOrdersBlocksByRank) {
  const int p = world().size(), r = world().rank(), n = 4;
  std::vector<int64_t> in(n), out(p * n, -1);
  for (int i = 0; i < n; ++i) in[i] = 100 * r + i;
  world().all_gather(in.data(), out.data(), n);
  for (int src = 0; src < p; ++src)
    for (int i = 0; i < n; ++i) EXPECT_EQ(out[src * n + i], 100 * src + i);
}

TEST(Collectives, AllToAllTransposesBlocks) {
  const int p = world().size(), r = world().rank(), n = 2;
  std::vector<float> in(p * n), out(p * n, -1);
  for (int dst = 0; dst < p; ++dst)
    for (int i = 0; i < n; ++i) in[dst * n + i] = float(1000 * r + 10 * dst + i);
  world().all_to_all(in.data(), out.data(), n);
  for (int src = 0; src < p; ++src)
    for (int i = 0; i < n; ++i) EXPECT_EQ(out[src * n + i], float(1000 * src + 10 * r + i));
}

TEST(Collectives, BroadcastFromTheLastRank) {
  const int p = world().size(), r = world().rank();
  std::vector<float> v(3, float(r));
  world().broadcast(v.data(), 3, p - 1);
  for (float x : v) EXPECT_EQ(x, float(p - 1));
}

TEST(Collectives, SendRecvAroundARing) {
  const int p = world().size(), r = world().rank();
  const int next = (r + 1) % p, prev = (r + p - 1) % p;
  std::vector<float> out(4), in(4, -1);
  for (int i = 0; i < 4; ++i) out[i] = float(10 * r + i);
  // Even ranks send first, odd ranks receive first: blocking sends cannot deadlock.
  if (r % 2 == 0) {
    world().send(out.data(), 4, next, 7);
    world().recv(in.data(), 4, prev, 7);
  } else {
    world().recv(in.data(), 4, prev, 7);
    world().send(out.data(), 4, next, 7);
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(in[i], float(10 * prev + i));
}

TEST(Collectives, CountersRecordCallsAndPayloadBytes) {
  const int p = world().size();
  auto group = world().split(0, world().rank());  // a fresh communicator: counters at zero
  std::vector<float> buf(10 * p);
  group->all_reduce(buf.data(), 10, ReduceOp::sum);
  group->all_reduce(buf.data(), 6, ReduceOp::avg);
  std::vector<float> gathered(3 * p);
  group->all_gather(buf.data(), gathered.data(), 3);
  group->barrier();
  const CommStats& s = group->stats();
  EXPECT_EQ(s.calls[int(CommKind::all_reduce)], 2);
  EXPECT_EQ(s.bytes[int(CommKind::all_reduce)], (10 + 6) * 4);
  EXPECT_EQ(s.calls[int(CommKind::all_gather)], 1);
  EXPECT_EQ(s.bytes[int(CommKind::all_gather)], 3 * p * 4);
  EXPECT_EQ(s.calls[int(CommKind::barrier)], 1);
  EXPECT_EQ(s.total_bytes(), (10 + 6 + 3 * p) * 4);
  EXPECT_GE(s.total_seconds(), 0.0);
}

}  // namespace
}  // namespace mds::dist
