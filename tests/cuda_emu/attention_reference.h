// What the emulated attention tests (attention_mma_test.cpp, attention_core_test.cpp) share: the
// float64 reference of causal GQA attention on the kernels' own inputs, and the comparisons.
// Layouts are ops_cuda.h's: fused qkv rows [b * s][qkv_stride] (q heads, k heads, v heads,
// padding), out and dout rows [b * s][out_stride], lse [b][nq][s]; query head h reads kv head
// h / (nq / nkv), scale 1/sqrt(hd).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../cuda/tolerances.h"
#include "emu.h"

namespace attention_test {

struct Layout {
  int64_t b, s, nq, nkv, hd, qkv_stride, out_stride;
};

// out and lse, and the gradients dqkv (qkv's layout) from the out and lse the backward kernels
// get: out rounded to the storage type T (returned in out_stored), lse rounded to fp32.
struct Reference {
  std::vector<double> out, lse, dqkv;
};
template <typename T>
Reference reference(const Layout& a, const std::vector<T>& qkv_in, const std::vector<T>& dout,
                    std::vector<T>& out_stored) {
  Reference ref;
  ref.out.assign(dout.size(), 0.0);  // out's layout
  ref.lse.assign(a.b * a.nq * a.s, 0.0);
  ref.dqkv.assign(qkv_in.size(), 0.0);
  out_stored.assign(dout.size(), T(0.0f));
  const int64_t hd = a.hd, group = a.nq / a.nkv;
  const double scale = 1.0 / std::sqrt(double(hd));
  const int64_t k0 = a.nq * hd, v0 = (a.nq + a.nkv) * hd;
  std::vector<double> p(a.s);
  for (int64_t bi = 0; bi < a.b; ++bi)
    for (int64_t h = 0; h < a.nq; ++h) {
      const int64_t kh = h / group;
      const auto qkv = [&](int64_t i, int64_t col) {
        return double{static_cast<float>(qkv_in[(bi * a.s + i) * a.qkv_stride + col])};
      };
      const auto Q = [&](int64_t i, int64_t d) { return qkv(i, h * hd + d); };
      const auto K = [&](int64_t j, int64_t d) { return qkv(j, k0 + kh * hd + d); };
      const auto V = [&](int64_t j, int64_t d) { return qkv(j, v0 + kh * hd + d); };
      const auto dO = [&](int64_t i, int64_t d) {
        return double{static_cast<float>(dout[(bi * a.s + i) * a.out_stride + h * hd + d])};
      };
      for (int64_t i = 0; i < a.s; ++i) {
        double mx = -INFINITY, l = 0;
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = 0;
          for (int64_t d = 0; d < hd; ++d) p[j] += Q(i, d) * K(j, d) * scale;
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= i; ++j) l += p[j] = std::exp(p[j] - mx);
        const double lse = mx + std::log(l);
        ref.lse[(bi * a.nq + h) * a.s + i] = lse;
        const int64_t o = (bi * a.s + i) * a.out_stride + h * hd;
        double dd = 0;  // D = dO . out_stored
        for (int64_t d = 0; d < hd; ++d) {
          for (int64_t j = 0; j <= i; ++j) ref.out[o + d] += p[j] / l * V(j, d);
          out_stored[o + d] = T(static_cast<float>(ref.out[o + d]));
          dd += dO(i, d) * static_cast<float>(out_stored[o + d]);
        }
        const double lse32 = static_cast<float>(lse);  // the kernels get lse in fp32
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0, dp = 0;
          for (int64_t d = 0; d < hd; ++d) s += Q(i, d) * K(j, d), dp += dO(i, d) * V(j, d);
          const double pij = std::exp(s * scale - lse32), ds = pij * (dp - dd) * scale;
          for (int64_t d = 0; d < hd; ++d) {
            ref.dqkv[(bi * a.s + i) * a.qkv_stride + h * hd + d] += ds * K(j, d);
            ref.dqkv[(bi * a.s + j) * a.qkv_stride + k0 + kh * hd + d] += ds * Q(i, d);
            ref.dqkv[(bi * a.s + j) * a.qkv_stride + v0 + kh * hd + d] += pij * dO(i, d);
          }
        }
      }
    }
  return ref;
}

// |got - ref| <= atol + rtol |ref| for every entry, atol = atol_rel max|ref| + tol.atol, with the
// CUDA tests' Tol (tests/cuda/tolerances.h).
using mds::test::Tol;
// The worst entry's error as a multiple of its tolerance (at most 1 to pass).
inline double worst_ratio(const std::vector<double>& got, const std::vector<double>& ref, Tol tol,
                          size_t* at = nullptr) {
  double scale = 0;
  for (double r : ref) scale = std::max(scale, std::fabs(r));
  const double atol = tol.atol_rel * scale + tol.atol;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double ratio = std::fabs(got[i] - ref[i]) / (atol + tol.rtol * std::fabs(ref[i]));
    if (!(ratio <= worst)) {
      worst = ratio;
      if (at) *at = i;
    }
  }
  return worst;
}
inline ::testing::AssertionResult close(const char* what, const std::vector<double>& got,
                                        const std::vector<double>& ref, Tol tol) {
  size_t at = 0, nonfinite = 0;
  const double worst = worst_ratio(got, ref, tol, &at);
  for (double g : got) nonfinite += !std::isfinite(g);
  if (worst <= 1 && nonfinite == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << nonfinite << " non-finite; worst entry " << at << " = " << got[at]
         << " against " << ref[at] << " (" << worst << " x the tolerance)";
}

// Each element's bits (T: float, bf16 or fp16), to compare two runs exactly.
template <typename T>
std::vector<uint32_t> bits(const std::vector<T>& v) {
  std::vector<uint32_t> b(v.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) std::memcpy(&b[i], &v[i], sizeof(T));
  return b;
}

// Columns [lo, hi) of every row, as doubles.
template <typename V>
std::vector<double> columns(const V& v, int64_t stride, int64_t lo, int64_t hi) {
  std::vector<double> out;
  for (size_t row = 0; row * stride < v.size(); ++row)
    for (int64_t col = lo; col < hi; ++col)
      out.push_back(static_cast<double>(static_cast<float>(v[row * stride + col])));
  return out;
}

inline ::testing::AssertionResult no_emulator_errors() {
  if (emu::errors.count == 0) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << emu::errors.count << " emulator errors:";
  for (const std::string& e : emu::errors.first) failure << "\n  " << e;
  return failure;
}

}  // namespace attention_test
