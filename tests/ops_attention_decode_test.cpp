// KV-cache attention (ops::attention_decode) against a naive double-precision loop over the
// cached keys, against the training kernel (a prefill from position 0 is causal attention),
// and for bitwise determinism across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

using test::all_close;

struct DecodeShape {
  int64_t m, pos0, nq, nkv, hd;
};

std::ostream& operator<<(std::ostream& os, const DecodeShape& a) {
  return os << "m" << a.m << "_pos" << a.pos0 << "_nq" << a.nq << "_nkv" << a.nkv << "_hd" << a.hd;
}

// Padded rows everywhere, so that a kernel reading or writing with the wrong stride shows up.
struct Layout {
  DecodeShape a;
  int64_t q_stride() const { return a.nq * a.hd + 3; }
  int64_t kv_stride() const { return a.nkv * a.hd + 2; }
  int64_t out_stride() const { return a.nq * a.hd + 5; }
  int64_t keys() const { return a.pos0 + a.m; }
};

// Query i of head h attends to keys 0 .. pos0 + i of kv head h / (nq / nkv).
std::vector<double> naive(const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, const Layout& L,
                          const std::vector<float>& out_init) {
  const auto& a = L.a;
  std::vector<double> out(out_init.begin(), out_init.end());  // padding keeps its value
  const double scale = 1.0 / std::sqrt(static_cast<double>(a.hd));
  for (int64_t i = 0; i < a.m; ++i)
    for (int64_t h = 0; h < a.nq; ++h) {
      const int64_t g = h / (a.nq / a.nkv), len = a.pos0 + i + 1;
      std::vector<double> s(static_cast<size_t>(len));
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < len; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < a.hd; ++d)
          dot += double(q[size_t(i * L.q_stride() + h * a.hd + d)]) *
                 k[size_t(j * L.kv_stride() + g * a.hd + d)];
        s[size_t(j)] = dot * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t d = 0; d < a.hd; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < len; ++j)
          acc += s[size_t(j)] / sum * v[size_t(j * L.kv_stride() + g * a.hd + d)];
        out[size_t(i * L.out_stride() + h * a.hd + d)] = acc;
      }
    }
  return out;
}

class AttentionDecode : public ::testing::TestWithParam<DecodeShape> {
 protected:
  Layout L{GetParam()};
  std::vector<float> q = test::randn(size_t(L.a.m * L.q_stride()), 21, 1.5f);
  std::vector<float> k = test::randn(size_t(L.keys() * L.kv_stride()), 22, 1.5f);
  std::vector<float> v = test::randn(size_t(L.keys() * L.kv_stride()), 23);

  std::vector<float> run() const {
    std::vector<float> out(size_t(L.a.m * L.out_stride()), 7.0f);
    ops::attention_decode(out.data(), q.data(), k.data(), v.data(), L.a.m, L.a.pos0, L.a.nq,
                          L.a.nkv, L.a.hd, L.q_stride(), L.kv_stride(), L.out_stride());
    return out;
  }
};

TEST_P(AttentionDecode, MatchesNaiveLoop) {
  const std::vector<float> out = run();
  EXPECT_TRUE(all_close(out, naive(q, k, v, L, std::vector<float>(out.size(), 7.0f)), 1e-4, 1e-5));
}

TEST_P(AttentionDecode, IdenticalBitsAcrossRunsAndThreadCounts) {
  const std::vector<float> first = run(), again = run();
  const std::vector<float> serial = test::run_single_threaded([&] { return run(); });
  EXPECT_TRUE(test::same_bits(first, again));
  EXPECT_TRUE(test::same_bits(first, serial));
}

// One decoding step (m = 1) at positions 0, 1 and deep into a cache; prefills of several
// tokens from 0 and after a cached prefix; GQA ratios 1, 2, 4 and 8; head dims 8..64.
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionDecode,
                         ::testing::Values(DecodeShape{1, 0, 1, 1, 8}, DecodeShape{1, 1, 2, 2, 8},
                                           DecodeShape{1, 100, 4, 2, 16},
                                           DecodeShape{1, 300, 8, 1, 64},
                                           DecodeShape{7, 0, 4, 4, 16},
                                           DecodeShape{5, 33, 4, 1, 32},
                                           DecodeShape{70, 10, 8, 2, 24}),
                         [](const auto& info) {
                           std::ostringstream os;
                           os << info.param;
                           return os.str();
                         });

// A prefill from position 0 over a whole sequence is the causal attention of training: the two
// kernels agree on the same fused q|k|v buffer.
TEST(AttentionDecodeVsTraining, PrefillFromZeroEqualsCausalAttentionForward) {
  const int64_t s = 150, nq = 4, nkv = 2, hd = 16, stride = (nq + 2 * nkv) * hd;
  const std::vector<float> qkv = test::randn(size_t(s * stride), 31, 1.5f);
  const float *q = qkv.data(), *k = q + nq * hd, *v = k + nkv * hd;
  std::vector<float> flash(size_t(s * nq * hd)), cached(flash.size()), lse(size_t(nq * s));
  ops::attention_forward(flash.data(), lse.data(), q, k, v, 1, s, nq, nkv, hd, stride, nq * hd);
  ops::attention_decode(cached.data(), q, k, v, s, 0, nq, nkv, hd, stride, stride, nq * hd);
  EXPECT_TRUE(all_close(cached, test::to_double(flash), 1e-5, 1e-6));
}

}  // namespace
}  // namespace mds
