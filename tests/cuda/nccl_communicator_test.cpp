// NcclCommunicator: each collective against MpiCommunicator's result on the same host data
// (copied to the device, run through NCCL, copied back). Inputs are small integers, so sums and
// maxima must match exactly in every type; averages of floats within a relative 1e-6.
//
// One process (CTest nccl.*): a world of one on one GPU, the identity for every collective but
// a real NCCL communicator, stream and split. Under mpirun -np 2 (nccl.np2): needs two GPUs,
// one per rank; with fewer every test skips. Without a GPU every test but the check macro's
// skips with "no CUDA GPU visible: compiled only".
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/nccl_check.h"
#include "mds/dist/nccl_communicator.h"
#include "nccl_world.h"

namespace mds {
namespace {

using dist::Communicator;
using dist::ReduceOp;
using testing::mpi_world;

// Small integers in [-5, 5], different on every rank.
template <typename T>
std::vector<T> inputs(int64_t n, int rank, int salt = 0) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = T((i * 7 + rank * 3 + salt) % 11 - 5);
  return v;
}

template <typename T>
::testing::AssertionResult same(const std::vector<T>& nccl, const std::vector<T>& mpi,
                                double rtol = 0) {
  if (nccl.size() != mpi.size())
    return ::testing::AssertionFailure() << "size " << nccl.size() << " vs " << mpi.size();
  for (size_t i = 0; i < nccl.size(); ++i) {
    const double a = double(nccl[i]), b = double(mpi[i]);
    if (std::abs(a - b) > rtol * std::max(1.0, std::abs(b)))
      return ::testing::AssertionFailure() << "element " << i << ": NCCL " << a << ", MPI " << b;
  }
  return ::testing::AssertionSuccess();
}

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    MDS_REQUIRE_GPU();
    nccl_ = testing::nccl_world();
    if (!nccl_)
      GTEST_SKIP() << "needs one GPU per rank: " << mpi_world().size() << " ranks, "
                   << testing::gpus_visible() << " GPUs visible (multi-GPU tests need more GPUs)";
  }
  Communicator& nccl() { return *nccl_; }
  Communicator* nccl_ = nullptr;
};

template <typename T>
class NcclTyped : public Nccl {};
using Types = ::testing::Types<float, double, int32_t, int64_t>;
TYPED_TEST_SUITE(NcclTyped, Types);

// Sizes: one element, a small odd count, and one past a power of two (several NCCL chunks).
constexpr int64_t kSizes[] = {1, 1001, (1 << 20) + 3};

TYPED_TEST(NcclTyped, AllReduceSumAndMaxMatchMpi) {
  using T = TypeParam;
  const int r = mpi_world().rank();
  for (int64_t n : kSizes)
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
      std::vector<T> expected = inputs<T>(n, r);
      auto dev = test::to_device(expected);
      mpi_world().all_reduce(expected.data(), n, op);
      this->nccl().all_reduce(dev.data(), n, op);
      EXPECT_TRUE(same(test::to_host(dev), expected)) << "n=" << n << " op=" << int(op);
    }
}

TYPED_TEST(NcclTyped, ReduceScatterSumMatchesMpi) {
  using T = TypeParam;
  const int r = mpi_world().rank(), p = mpi_world().size();
  for (int64_t n : kSizes) {
    const std::vector<T> in = inputs<T>(p * n, r);
    std::vector<T> expected(static_cast<size_t>(n));
    mpi_world().reduce_scatter(in.data(), expected.data(), n, ReduceOp::sum);
    auto dev_in = test::to_device(in);
    ops::cuda::DeviceBuffer<T> dev_out(static_cast<size_t>(n));
    this->nccl().reduce_scatter(dev_in.data(), dev_out.data(), n, ReduceOp::sum);
    EXPECT_TRUE(same(test::to_host(dev_out), expected)) << "n=" << n;
  }
}

TYPED_TEST(NcclTyped, AllGatherMatchesMpi) {
  using T = TypeParam;
  const int r = mpi_world().rank(), p = mpi_world().size();
  for (int64_t n : kSizes) {
    const std::vector<T> in = inputs<T>(n, r);
    std::vector<T> expected(static_cast<size_t>(p * n));
    mpi_world().all_gather(in.data(), expected.data(), n);
    auto dev_in = test::to_device(in);
    ops::cuda::DeviceBuffer<T> dev_out(static_cast<size_t>(p * n));
    this->nccl().all_gather(dev_in.data(), dev_out.data(), n);
    EXPECT_TRUE(same(test::to_host(dev_out), expected)) << "n=" << n;
  }
}

TYPED_TEST(NcclTyped, AllToAllMatchesMpi) {
  using T = TypeParam;
  const int r = mpi_world().rank(), p = mpi_world().size();
  for (int64_t n : kSizes) {
    const std::vector<T> in = inputs<T>(p * n, r);
    std::vector<T> expected(static_cast<size_t>(p * n));
    mpi_world().all_to_all(in.data(), expected.data(), n);
    auto dev_in = test::to_device(in);
    ops::cuda::DeviceBuffer<T> dev_out(static_cast<size_t>(p * n));
    this->nccl().all_to_all(dev_in.data(), dev_out.data(), n);
    EXPECT_TRUE(same(test::to_host(dev_out), expected)) << "n=" << n;
  }
}

TYPED_TEST(NcclTyped, BroadcastFromLastRankMatchesMpi) {
  using T = TypeParam;
  const int r = mpi_world().rank(), root = mpi_world().size() - 1;
  for (int64_t n : kSizes) {
    std::vector<T> expected = inputs<T>(n, r);
    auto dev = test::to_device(expected);
    mpi_world().broadcast(expected.data(), n, root);
    this->nccl().broadcast(dev.data(), n, root);
    EXPECT_TRUE(same(test::to_host(dev), expected)) << "n=" << n;
  }
}

TEST_F(Nccl, AverageMatchesMpiWithinTolerance) {
  const int r = mpi_world().rank(), p = mpi_world().size();
  const int64_t n = 1001;
  std::vector<float> expected = inputs<float>(n, r);
  auto dev = test::to_device(expected);
  mpi_world().all_reduce(expected.data(), n, ReduceOp::avg);
  nccl().all_reduce(dev.data(), n, ReduceOp::avg);
  EXPECT_TRUE(same(test::to_host(dev), expected, 1e-6));

  const std::vector<double> in = inputs<double>(p * n, r);
  std::vector<double> expected_rs(static_cast<size_t>(n));
  mpi_world().reduce_scatter(in.data(), expected_rs.data(), n, ReduceOp::avg);
  auto dev_in = test::to_device(in);
  ops::cuda::DeviceBuffer<double> dev_out(static_cast<size_t>(n));
  nccl().reduce_scatter(dev_in.data(), dev_out.data(), n, ReduceOp::avg);
  EXPECT_TRUE(same(test::to_host(dev_out), expected_rs, 1e-12));
}

// A ring: every rank sends to the next and receives from the previous (itself in a world of
// one: NCCL's self send/recv), in one grouped call, so it cannot deadlock.
TEST_F(Nccl, SendRecvRingReceivesThePreviousRanksData) {
  const int r = nccl().rank(), p = nccl().size();
  const int next = (r + 1) % p, prev = (r + p - 1) % p;
  const int64_t n_send = 1001, n_recv = 1001;
  auto dev_send = test::to_device(inputs<float>(n_send, r));
  ops::cuda::DeviceBuffer<float> dev_recv(static_cast<size_t>(n_recv));
  nccl().send_recv(dev_send.data(), n_send, next, dev_recv.data(), n_recv, prev);
  EXPECT_TRUE(same(test::to_host(dev_recv), inputs<float>(n_recv, prev)));
}

TEST_F(Nccl, SendThenRecvBetweenPairs) {
  const int r = nccl().rank(), p = nccl().size();
  if (p < 2) GTEST_SKIP() << "needs 2 ranks on 2 GPUs (mpirun -np 2)";
  const int64_t n = 4097;
  if (r % 2 == 0 && r + 1 < p) {
    auto dev = test::to_device(inputs<int64_t>(n, r));
    nccl().send(dev.data(), n, r + 1);
  } else if (r % 2 == 1) {
    ops::cuda::DeviceBuffer<int64_t> dev(static_cast<size_t>(n));
    nccl().recv(dev.data(), n, r - 1);
    EXPECT_TRUE(same(test::to_host(dev), inputs<int64_t>(n, r - 1)));
  }
}

TEST_F(Nccl, BarrierCompletesAndIsCounted) {
  const int64_t before = nccl().stats().calls[int(dist::CommKind::barrier)];
  nccl().barrier();
  nccl().barrier();
  EXPECT_EQ(nccl().stats().calls[int(dist::CommKind::barrier)], before + 2);
}

// Groups by ncclCommSplit: even and odd ranks, ordered by descending rank, against the MPI
// split of the same colours and keys (a world of one splits into itself).
TEST_F(Nccl, SplitMatchesMpiSplit) {
  const int r = mpi_world().rank();
  auto mpi_sub = mpi_world().split(r % 2, -r);
  auto nccl_sub = nccl().split(r % 2, -r);
  EXPECT_EQ(nccl_sub->rank(), mpi_sub->rank());
  EXPECT_EQ(nccl_sub->size(), mpi_sub->size());
  const int64_t n = 1001;
  std::vector<int32_t> expected = inputs<int32_t>(n, r, 1);
  auto dev = test::to_device(expected);
  mpi_sub->all_reduce(expected.data(), n, ReduceOp::sum);
  nccl_sub->all_reduce(dev.data(), n, ReduceOp::sum);
  EXPECT_TRUE(same(test::to_host(dev), expected));
}

TEST_F(Nccl, StatsCountCallsAndBytes) {
  const int k = int(dist::CommKind::all_reduce);
  const int64_t calls = nccl().stats().calls[k], bytes = nccl().stats().bytes[k];
  ops::cuda::DeviceBuffer<float> dev(100);
  MDS_CUDA_CHECK(cudaMemset(dev.data(), 0, dev.bytes()));
  nccl().all_reduce(dev.data(), 100, ReduceOp::sum);
  EXPECT_EQ(nccl().stats().calls[k], calls + 1);
  EXPECT_EQ(nccl().stats().bytes[k], bytes + 400);
}

// The communication stream must wait for what the compute (legacy default) stream has queued:
// here a host callback that sleeps, then the write of the input. Were the event order wrong,
// NCCL would read the input before the write. Out of place, so even a world of one (where the
// collective is a copy) shows it; also the started all-reduce that wait_all completes, whose sum
// over the ranks of the written value tells the same.
void CUDART_CB sleep_50ms(void*) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST_F(Nccl, CollectivesWaitForTheComputeStreamsQueuedWrites) {
  const int64_t n = 1 << 16, p = nccl().size();
  ops::cuda::DeviceBuffer<int32_t> in(static_cast<size_t>(p * n)), out(static_cast<size_t>(n));
  MDS_CUDA_CHECK(cudaMemset(in.data(), 0, in.bytes()));
  MDS_CUDA_CHECK(cudaDeviceSynchronize());
  MDS_CUDA_CHECK(cudaLaunchHostFunc(cudaStreamLegacy, sleep_50ms, nullptr));
  MDS_CUDA_CHECK(cudaMemsetAsync(in.data(), 1, in.bytes(), cudaStreamLegacy));  // 0x01010101
  nccl().reduce_scatter(in.data(), out.data(), n, ReduceOp::sum);
  const std::vector<int32_t> got = test::to_host(out);
  EXPECT_EQ(std::count(got.begin(), got.end(), int32_t(p * 0x01010101)), n) << "reduce_scatter";

  MDS_CUDA_CHECK(cudaMemset(in.data(), 0, in.bytes()));
  MDS_CUDA_CHECK(cudaDeviceSynchronize());
  MDS_CUDA_CHECK(cudaLaunchHostFunc(cudaStreamLegacy, sleep_50ms, nullptr));
  MDS_CUDA_CHECK(cudaMemsetAsync(in.data(), 1, in.bytes(), cudaStreamLegacy));
  nccl().start_all_reduce(in.data(), p * n, ReduceOp::sum);
  nccl().wait_all();
  const std::vector<int32_t> sums = test::to_host(in);
  EXPECT_EQ(std::count(sums.begin(), sums.end(), int32_t(p * 0x01010101)), p * n)
      << "start_all_reduce + wait_all";
}

// Host only (ncclGetErrorString needs no device): runs everywhere.
TEST(NcclCheck, FailedNcclCallNamesTheResultTheCallAndTheLine) {
  std::string msg;
  try {
    MDS_NCCL_CHECK(ncclInvalidArgument);
  } catch (const InternalError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("nccl_communicator_test.cpp:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ncclInvalidArgument"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in ncclInvalidArgument"), std::string::npos) << msg;  // the call text
  EXPECT_NE(msg.find(ncclGetErrorString(ncclInvalidArgument)), std::string::npos) << msg;
  EXPECT_NO_THROW(MDS_NCCL_CHECK(ncclSuccess));
}

}  // namespace
}  // namespace mds
