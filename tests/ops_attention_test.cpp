// The attention kernels (ops::attention_forward/backward), flash and unfused
// (--attention-backend: ops/attention_backend.h), each against a naive double-precision causal
// softmax attention: forward outputs and lse, gradients by central finite differences, GQA head
// mapping, strided views inside a fused qkv buffer, and bitwise determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <tuple>

#include "mds/ops/attention_backend.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

using test::all_close;

struct AttnShape {
  int64_t b, s, nq, nkv, hd;
};

std::ostream& operator<<(std::ostream& os, const AttnShape& a) {
  return os << "b" << a.b << "_s" << a.s << "_nq" << a.nq << "_nkv" << a.nkv << "_hd" << a.hd;
}

// One fused buffer per token: [q heads | k heads | v heads | 3 floats of padding], so q, k and v
// are strided views, as the model's fused QKV projection produces them. The output rows are
// padded too.
struct Layout {
  AttnShape a;
  int64_t stride() const { return (a.nq + 2 * a.nkv) * a.hd + 3; }
  int64_t out_stride() const { return a.nq * a.hd + 5; }
  int64_t k_off() const { return a.nq * a.hd; }
  int64_t v_off() const { return (a.nq + a.nkv) * a.hd; }
  size_t qkv_size() const { return static_cast<size_t>(a.b * a.s * stride()); }
  size_t out_size() const { return static_cast<size_t>(a.b * a.s * out_stride()); }
  bool is_head_entry(size_t i) const {
    return static_cast<int64_t>(i) % stride() < v_off() + a.nkv * a.hd;
  }
};

// Naive causal attention in double on the fused layout: full score row, masked softmax.
void naive_forward(std::vector<double>& out, std::vector<double>& lse,
                   const std::vector<double>& qkv, const Layout& L) {
  const auto& a = L.a;
  const int64_t S = L.stride(), group = a.nq / a.nkv;
  out.assign(L.out_size(), 0.0);
  lse.assign(static_cast<size_t>(a.b * a.nq * a.s), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(a.hd));
  std::vector<double> p(static_cast<size_t>(a.s));
  for (int64_t bi = 0; bi < a.b; ++bi)
    for (int64_t h = 0; h < a.nq; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < a.s; ++i) {
        const double* qi = &qkv[static_cast<size_t>((bi * a.s + i) * S + h * a.hd)];
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          const double* kj = &qkv[static_cast<size_t>((bi * a.s + j) * S + L.k_off() + g * a.hd)];
          double dot = 0;
          for (int64_t d = 0; d < a.hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(p[j] - mx);
        double* o = &out[static_cast<size_t>((bi * a.s + i) * L.out_stride() + h * a.hd)];
        for (int64_t j = 0; j <= i; ++j) {
          const double w = std::exp(p[j] - mx) / sum;
          const double* vj = &qkv[static_cast<size_t>((bi * a.s + j) * S + L.v_off() + g * a.hd)];
          for (int64_t d = 0; d < a.hd; ++d) o[d] += w * vj[d];
        }
        lse[static_cast<size_t>((bi * a.nq + h) * a.s + i)] = mx + std::log(sum);
      }
    }
}

struct AttnRun {
  std::vector<float> out, lse, dqkv;
};

// Runs the kernels on the fused buffer; dqkv starts as a sentinel so that writes outside the
// head entries show up.
AttnRun run_kernels(const std::vector<float>& qkv, const std::vector<float>& dout, const Layout& L,
                    float sentinel = 7.0f) {
  const auto& a = L.a;
  AttnRun r;
  r.out.assign(L.out_size(), 0.0f);
  r.lse.assign(static_cast<size_t>(a.b * a.nq * a.s), 0.0f);
  r.dqkv.assign(L.qkv_size(), sentinel);
  ops::attention_forward(r.out.data(), r.lse.data(), qkv.data(), qkv.data() + L.k_off(),
                         qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                         L.out_stride());
  ops::attention_backward(r.dqkv.data(), r.dqkv.data() + L.k_off(), r.dqkv.data() + L.v_off(),
                          dout.data(), r.out.data(), r.lse.data(), qkv.data(),
                          qkv.data() + L.k_off(), qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv,
                          a.hd, L.stride(), L.out_stride());
  return r;
}

class Attention : public ::testing::TestWithParam<std::tuple<AttnShape, ops::AttentionBackend>> {
 protected:
  void SetUp() override { ops::attention_backend() = std::get<1>(GetParam()); }
  void TearDown() override { ops::attention_backend() = ops::AttentionBackend::flash; }
  Layout L{std::get<0>(GetParam())};
  std::vector<float> qkv =
      test::randn(L.qkv_size(), 11, 1.5f);               // peaky softmax: max moves across tiles
  std::vector<float> R = test::randn(L.out_size(), 12);  // L = sum(out * R), so dout = R
};

TEST_P(Attention, ForwardMatchesNaive) {
  const AttnRun r = run_kernels(qkv, R, L);
  std::vector<double> out, lse;
  naive_forward(out, lse, test::to_double(qkv), L);
  for (size_t i = 0; i < out.size(); ++i)  // padding columns are not written: compare heads only
    if (static_cast<int64_t>(i) % L.out_stride() >= L.a.nq * L.a.hd) out[i] = r.out[i];
  EXPECT_TRUE(all_close(r.out, out, 1e-4, 1e-5));
  EXPECT_TRUE(all_close(r.lse, lse, 1e-5, 1e-6));
}

TEST_P(Attention, BackwardMatchesFiniteDifferences) {
  const AttnRun r = run_kernels(qkv, R, L);
  auto loss = [&](const std::vector<double>& x) {
    std::vector<double> out, lse;
    naive_forward(out, lse, x, L);
    double acc = 0;
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int64_t>(i) % L.out_stride() < L.a.nq * L.a.hd) acc += out[i] * R[i];
    return acc;
  };
  // Per coordinate on a sample of q, k and v entries.
  std::vector<size_t> heads;
  for (size_t i = 0; i < L.qkv_size(); ++i)
    if (L.is_head_entry(i)) heads.push_back(i);
  std::vector<size_t> idx;
  for (size_t j : test::sample_indices(heads.size(), 48, 13)) idx.push_back(heads[j]);
  const auto fd = test::finite_differences(loss, test::to_double(qkv), idx, 1e-4);
  EXPECT_TRUE(all_close(test::gather(r.dqkv, idx), fd, 2e-3, 2e-4));

  // And along one random direction over every entry, which catches what the sample misses.
  const auto dir = test::randn(L.qkv_size(), 14);
  double analytic = 0;
  for (size_t i : heads) analytic += static_cast<double>(r.dqkv[i]) * dir[i];
  const auto x0 = test::to_double(qkv);
  auto along = [&](const std::vector<double>& t) {
    std::vector<double> x = x0;
    for (size_t i : heads) x[i] += t[0] * dir[i];
    return loss(x);
  };
  const double numeric = test::finite_differences(along, {0.0}, {0}, 1e-4)[0];
  EXPECT_NEAR(analytic, numeric, 1e-3 * std::fabs(numeric) + 1e-4);

  // Padding between the views is never written.
  for (size_t i = 0; i < L.qkv_size(); ++i) {
    if (!L.is_head_entry(i)) {
      ASSERT_EQ(r.dqkv[i], 7.0f) << "wrote padding entry " << i;
    }
  }
}

TEST_P(Attention, IdenticalBitsAcrossRunsAndThreadCounts) {
  const AttnRun first = run_kernels(qkv, R, L);
  const AttnRun again = run_kernels(qkv, R, L);
  const AttnRun serial = test::run_single_threaded([&] { return run_kernels(qkv, R, L); });
  for (const AttnRun* other : {&again, &serial}) {
    EXPECT_TRUE(test::same_bits(first.out, other->out));
    EXPECT_TRUE(test::same_bits(first.lse, other->lse));
    EXPECT_TRUE(test::same_bits(first.dqkv, other->dqkv));
  }
}

// GQA ratios 1, 2, 4 (and 8 with a single kv head), s below, at and across the 64-row tile,
// head dims 8..64, batch > 1.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Attention,
    ::testing::Combine(::testing::Values(AttnShape{1, 1, 1, 1, 8}, AttnShape{2, 5, 2, 2, 8},
                                         AttnShape{1, 64, 4, 4, 16}, AttnShape{1, 70, 4, 2, 16},
                                         AttnShape{2, 67, 4, 1, 32}, AttnShape{1, 130, 2, 1, 64},
                                         AttnShape{2, 129, 8, 2, 8}, AttnShape{1, 200, 8, 1, 24}),
                       ::testing::Values(ops::AttentionBackend::flash,
                                         ops::AttentionBackend::unfused)),
    [](const auto& info) {
      std::ostringstream os;
      os << std::get<0>(info.param)
         << (std::get<1>(info.param) == ops::AttentionBackend::flash ? "_flash" : "_unfused");
      return os.str();
    });

}  // namespace
}  // namespace mds
