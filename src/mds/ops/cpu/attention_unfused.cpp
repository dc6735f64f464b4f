// Unfused causal GQA attention on the CPU (--attention-backend unfused, ops/attention_backend.h):
// per (batch, query head, query row) the whole masked score row is computed, softmaxed with
// its own maximum and sum, and used to weight V; lse = max + log(sum) is saved as the flash
// kernels save it. The backward recomputes each row's probabilities from q, k and lse:
// D_i = dout_i . out_i, dS_ij = P_ij (dout_i . v_j - D_i), dq_i = scale sum_j dS_ij k_j,
// dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dout_i. Tasks are (batch, kv head): each owns
// the dk, dv of its kv head and the dq of its query heads, so there are no races, and the
// order of every sum is fixed (bit-identical for any thread count). exp is std::exp, not the
// flash kernels' polynomial: the two paths agree to rounding, independently computed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mds/ops/cpu/attention_unfused.h"

namespace mds::ops {

namespace {

float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace

void attention_forward_unfused(float* out, float* lse, const float* q, const float* k,
                               const float* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                               int64_t hd, int64_t qkv_stride, int64_t out_stride) {
  const int64_t group = nq / nkv;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < nq; ++h) {
      std::vector<float> p(static_cast<size_t>(s));
      const int64_t g = h / group;
      for (int64_t i = 0; i < s; ++i) {
        const float* qi = q + (bi * s + i) * qkv_stride + h * hd;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          p[size_t(j)] = scale * dot(qi, k + (bi * s + j) * qkv_stride + g * hd, hd);
          m = std::max(m, p[size_t(j)]);
        }
        float sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - m));
        float* oi = out + (bi * s + i) * out_stride + h * hd;
        std::fill(oi, oi + hd, 0.0f);
        for (int64_t j = 0; j <= i; ++j) {
          const float w = p[size_t(j)] / sum;
          const float* vj = v + (bi * s + j) * qkv_stride + g * hd;
          for (int64_t d = 0; d < hd; ++d) oi[d] += w * vj[d];
        }
        lse[(bi * nq + h) * s + i] = m + std::log(sum);
      }
    }
}

void attention_backward_unfused(float* dq, float* dk, float* dv, const float* dout,
                                const float* out, const float* lse, const float* q, const float* k,
                                const float* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                                int64_t hd, int64_t qkv_stride, int64_t out_stride) {
  const int64_t group = nq / nkv;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t g = 0; g < nkv; ++g) {
      for (int64_t j = 0; j < s; ++j) {
        std::fill_n(dk + (bi * s + j) * qkv_stride + g * hd, hd, 0.0f);
        std::fill_n(dv + (bi * s + j) * qkv_stride + g * hd, hd, 0.0f);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t i = 0; i < s; ++i) {
          const float* qi = q + (bi * s + i) * qkv_stride + h * hd;
          const float* doi = dout + (bi * s + i) * out_stride + h * hd;
          const float di = dot(doi, out + (bi * s + i) * out_stride + h * hd, hd);
          const float l = lse[(bi * nq + h) * s + i];
          float* dqi = dq + (bi * s + i) * qkv_stride + h * hd;
          std::fill(dqi, dqi + hd, 0.0f);
          for (int64_t j = 0; j <= i; ++j) {
            const float* kj = k + (bi * s + j) * qkv_stride + g * hd;
            const float* vj = v + (bi * s + j) * qkv_stride + g * hd;
            const float p = std::exp(scale * dot(qi, kj, hd) - l);
            const float ds = p * (dot(doi, vj, hd) - di);
            float* dkj = dk + (bi * s + j) * qkv_stride + g * hd;
            float* dvj = dv + (bi * s + j) * qkv_stride + g * hd;
            for (int64_t d = 0; d < hd; ++d) {
              dqi[d] += scale * ds * kj[d];
              dkj[d] += scale * ds * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
    }
}

}  // namespace mds::ops
