// Causal grouped-query attention on the CPU, flash style (Dao et al., FlashAttention-2).
//
// Forward: tasks are (batch, query head, query tile); each walks the key tiles at or below the
// diagonal with an online softmax, keeping per query row only its running max, sum and output
// accumulator. Only lse = max + log(sum) [b, nq, s] is saved: no s x s matrix ever exists, and
// scratch is O(tile * hd) per thread. Query head j reads kv head j / (nq / nkv) in place; K and
// V are never copied per query head.
//
// Backward: probabilities are recomputed as P = exp(scale * q.k - lse). With D_i = dout_i.out_i,
// dS = P * (dout.v - D). Two passes keep every output owned by exactly one task, so there are
// no atomics and the result is bit-identical for any thread count and schedule:
//   pass 1, tasks (batch, kv head, key tile): dk, dv of the tile, summed over the query heads of
//           the group and the query rows in a fixed order;
//   pass 2, tasks (batch, query head, query tile): dq of the tile.
// The scores are recomputed in both passes (~1.4x the FLOPs of a fused backward), the price of
// determinism without an s x s or per-head dk/dv buffer.
//
// Inner loops run over the key tile (scores, as axpys against a transposed K tile) or over hd
// (outputs), both contiguous, so they vectorise without horizontal sums. exp() is a branch-free
// polynomial (below) that vectorises; forward and backward use the same one, so recomputed
// probabilities agree with the saved lse.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mds/core/error.h"
#include "mds/ops/attention_backend.h"
#include "mds/ops/cpu/attention_unfused.h"
#include "mds/ops/cpu/fast_exp.h"
#include "mds/ops/ops.h"

namespace mds::ops {

namespace {

constexpr int64_t kTile = 64;  // query and key tile length

// Copies rows [j0, j0 + len) of one head into a transposed tile t[hd][kTile] so that the scores
// of one query row against the whole tile are hd axpys over contiguous memory.
void load_transposed(float* t, const float* src, int64_t j0, int64_t len, int64_t hd,
                     int64_t stride) {
  for (int64_t j = 0; j < len; ++j) {
    const float* row = src + (j0 + j) * stride;
    for (int64_t d = 0; d < hd; ++d) t[d * kTile + j] = row[d];
  }
}

// s[0, len) = scale * q . t[:, j]
inline void scores(float* s, const float* q, const float* t, int64_t len, int64_t hd, float scale) {
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) s[j] = 0.0f;
  for (int64_t d = 0; d < hd; ++d) {
    const float qd = q[d] * scale;
    const float* td = t + d * kTile;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) s[j] += qd * td[j];
  }
}

// y[0, hd) += a * x[0, hd)
inline void axpy(float* y, float a, const float* x, int64_t hd) {
#pragma omp simd
  for (int64_t d = 0; d < hd; ++d) y[d] += a * x[d];
}

void check_shapes(int64_t nq, int64_t nkv, int64_t hd) {
  MDS_ASSERT(nkv > 0 && nq % nkv == 0, "query heads ({}) must be a multiple of kv heads ({})", nq,
             nkv);
  MDS_ASSERT(hd > 0, "head dim must be positive, got {}", hd);
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride) {
  check_shapes(nq, nkv, hd);
  if (attention_backend() == AttentionBackend::unfused)
    return attention_forward_unfused(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
  const int64_t group = nq / nkv;
  const int64_t qtiles = (s + kTile - 1) / kTile;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel
  {
    std::vector<float> kt(static_cast<size_t>(hd * kTile));
    std::vector<float> acc(static_cast<size_t>(kTile * hd));
    float srow[kTile], mrow[kTile], lrow[kTile];
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t h = 0; h < nq; ++h) {
        for (int64_t qt = 0; qt < qtiles; ++qt) {
          // Heaviest tiles (most keys) first would balance better; dynamic scheduling of small
          // tasks is enough at these sizes.
          const int64_t i0 = qt * kTile, qlen = std::min(kTile, s - i0);
          const int64_t g = h / group;
          const float* qb = q + bi * s * qkv_stride + h * hd;
          const float* kb = k + bi * s * qkv_stride + g * hd;
          const float* vb = v + bi * s * qkv_stride + g * hd;
          std::fill(acc.begin(), acc.end(), 0.0f);
          std::fill(mrow, mrow + kTile, -std::numeric_limits<float>::infinity());
          std::fill(lrow, lrow + kTile, 0.0f);
          for (int64_t j0 = 0; j0 < i0 + qlen; j0 += kTile) {
            const int64_t klen = std::min(kTile, s - j0);
            load_transposed(kt.data(), kb, j0, klen, hd, qkv_stride);
            for (int64_t r = 0; r < qlen; ++r) {
              const int64_t i = i0 + r;
              const int64_t len = std::min(klen, i - j0 + 1);  // causal: keys j <= i
              if (len <= 0) continue;
              scores(srow, qb + i * qkv_stride, kt.data(), len, hd, scale);
              float mx = mrow[r];
              for (int64_t j = 0; j < len; ++j) mx = std::max(mx, srow[j]);
              // Rescale what was accumulated under the old max (nothing on the first tile).
              const float corr = mrow[r] == -std::numeric_limits<float>::infinity()
                                     ? 0.0f
                                     : fast_exp(mrow[r] - mx);
              float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
              for (int64_t j = 0; j < len; ++j) {
                srow[j] = fast_exp(srow[j] - mx);
                sum += srow[j];
              }
              lrow[r] = lrow[r] * corr + sum;
              mrow[r] = mx;
              float* a = acc.data() + r * hd;
#pragma omp simd
              for (int64_t d = 0; d < hd; ++d) a[d] *= corr;
              for (int64_t j = 0; j < len; ++j) axpy(a, srow[j], vb + (j0 + j) * qkv_stride, hd);
            }
          }
          for (int64_t r = 0; r < qlen; ++r) {
            const int64_t i = i0 + r;
            float* o = out + (bi * s + i) * out_stride + h * hd;
            const float inv = 1.0f / lrow[r];
            const float* a = acc.data() + r * hd;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) o[d] = a[d] * inv;
            lse[(bi * nq + h) * s + i] = mrow[r] + std::log(lrow[r]);
          }
        }
      }
    }
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride) {
  check_shapes(nq, nkv, hd);
  if (attention_backend() == AttentionBackend::unfused)
    return attention_backward_unfused(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd,
                                      qkv_stride, out_stride);
  const int64_t group = nq / nkv;
  const int64_t tiles = (s + kTile - 1) / kTile;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  // D[b, nq, s] = rowwise dout . out: O(s) scratch, shared by both passes.
  std::vector<float> D(static_cast<size_t>(b * nq * s));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t i = 0; i < s; ++i) {
      const float* o = out + (bi * s + i) * out_stride;
      const float* dout_row = dout + (bi * s + i) * out_stride;
      for (int64_t h = 0; h < nq; ++h) {
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t d = 0; d < hd; ++d) acc += o[h * hd + d] * dout_row[h * hd + d];
        D[static_cast<size_t>((bi * nq + h) * s + i)] = acc;
      }
    }
  }

  // Pass 1: dk, dv per (batch, kv head, key tile).
#pragma omp parallel
  {
    std::vector<float> kt(static_cast<size_t>(hd * kTile)), vt(static_cast<size_t>(hd * kTile));
    std::vector<float> dkt(static_cast<size_t>(kTile * hd)), dvt(static_cast<size_t>(kTile * hd));
    float p[kTile], ds[kTile];
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t g = 0; g < nkv; ++g) {
        for (int64_t kt_i = 0; kt_i < tiles; ++kt_i) {
          const int64_t j0 = kt_i * kTile, klen = std::min(kTile, s - j0);
          const float* kb = k + bi * s * qkv_stride + g * hd;
          const float* vb = v + bi * s * qkv_stride + g * hd;
          load_transposed(kt.data(), kb, j0, klen, hd, qkv_stride);
          load_transposed(vt.data(), vb, j0, klen, hd, qkv_stride);
          std::fill(dkt.begin(), dkt.end(), 0.0f);
          std::fill(dvt.begin(), dvt.end(), 0.0f);
          for (int64_t h = g * group; h < (g + 1) * group; ++h) {
            const float* qb = q + bi * s * qkv_stride + h * hd;
            const float* dob = dout + bi * s * out_stride + h * hd;
            const float* lse_h = lse + (bi * nq + h) * s;
            const float* D_h = D.data() + (bi * nq + h) * s;
            for (int64_t i = j0; i < s; ++i) {
              const int64_t len = std::min(klen, i - j0 + 1);
              const float* qi = qb + i * qkv_stride;
              const float* doi = dob + i * out_stride;
              scores(p, qi, kt.data(), len, hd, scale);
              scores(ds, doi, vt.data(), len, hd, 1.0f);  // dP = dout_i . v_j
              const float l = lse_h[i], Di = D_h[i];
#pragma omp simd
              for (int64_t j = 0; j < len; ++j) {
                p[j] = fast_exp(p[j] - l);
                ds[j] = p[j] * (ds[j] - Di) * scale;
              }
              for (int64_t j = 0; j < len; ++j) {
                axpy(dvt.data() + j * hd, p[j], doi, hd);
                axpy(dkt.data() + j * hd, ds[j], qi, hd);
              }
            }
          }
          for (int64_t j = 0; j < klen; ++j) {
            float* dkr = dk + (bi * s + j0 + j) * qkv_stride + g * hd;
            float* dvr = dv + (bi * s + j0 + j) * qkv_stride + g * hd;
            std::copy_n(dkt.data() + j * hd, hd, dkr);
            std::copy_n(dvt.data() + j * hd, hd, dvr);
          }
        }
      }
    }
  }

  // Pass 2: dq per (batch, query head, query tile).
#pragma omp parallel
  {
    std::vector<float> kt(static_cast<size_t>(hd * kTile)), vt(static_cast<size_t>(hd * kTile));
    std::vector<float> dqt(static_cast<size_t>(kTile * hd));
    float p[kTile], ds[kTile];
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t h = 0; h < nq; ++h) {
        for (int64_t qt = 0; qt < tiles; ++qt) {
          const int64_t i0 = qt * kTile, qlen = std::min(kTile, s - i0);
          const int64_t g = h / group;
          const float* qb = q + bi * s * qkv_stride + h * hd;
          const float* kb = k + bi * s * qkv_stride + g * hd;
          const float* vb = v + bi * s * qkv_stride + g * hd;
          const float* dob = dout + bi * s * out_stride + h * hd;
          const float* lse_h = lse + (bi * nq + h) * s;
          const float* D_h = D.data() + (bi * nq + h) * s;
          std::fill(dqt.begin(), dqt.end(), 0.0f);
          for (int64_t j0 = 0; j0 < i0 + qlen; j0 += kTile) {
            const int64_t klen = std::min(kTile, s - j0);
            load_transposed(kt.data(), kb, j0, klen, hd, qkv_stride);
            load_transposed(vt.data(), vb, j0, klen, hd, qkv_stride);
            for (int64_t r = 0; r < qlen; ++r) {
              const int64_t i = i0 + r;
              const int64_t len = std::min(klen, i - j0 + 1);
              if (len <= 0) continue;
              scores(p, qb + i * qkv_stride, kt.data(), len, hd, scale);
              scores(ds, dob + i * out_stride, vt.data(), len, hd, 1.0f);
              const float l = lse_h[i], Di = D_h[i];
#pragma omp simd
              for (int64_t j = 0; j < len; ++j) ds[j] = fast_exp(p[j] - l) * (ds[j] - Di) * scale;
              float* dqr = dqt.data() + r * hd;
              for (int64_t j = 0; j < len; ++j) axpy(dqr, ds[j], kb + (j0 + j) * qkv_stride, hd);
            }
          }
          for (int64_t r = 0; r < qlen; ++r)
            std::copy_n(dqt.data() + r * hd, hd, dq + (bi * s + i0 + r) * qkv_stride + h * hd);
        }
      }
    }
  }
}

}  // namespace mds::ops
