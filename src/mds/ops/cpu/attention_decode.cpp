// Attention of a few new queries against a KV cache on the CPU (inference: prefill and decode).
//
// A task is (query, kv head): it computes the scores of every query head of the group against
// the cached keys 0 .. pos0+i in one pass over the keys, so each cached K and V row is read
// once per group rather than once per query head (grouped-query attention shares them), then a
// plain softmax over the full score row (the row is at most max_position_embeddings long, so
// it fits in a per-thread buffer; no online rescaling is needed) and one pass over V.
// Every output element is owned by one task and summed in a fixed order: the result does not
// depend on the thread count. exp() is the same vectorisable polynomial the training kernel
// uses (fast_exp.h), so a cached decode and a full forward agree to rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mds/core/error.h"
#include "mds/ops/cpu/fast_exp.h"
#include "mds/ops/ops.h"

namespace mds::ops {

void attention_decode(float* out, const float* q, const float* k, const float* v, int64_t m,
                      int64_t pos0, int64_t nq, int64_t nkv, int64_t hd, int64_t q_stride,
                      int64_t kv_stride, int64_t out_stride) {
  MDS_ASSERT(nkv > 0 && nq % nkv == 0, "query heads ({}) must be a multiple of kv heads ({})", nq,
             nkv);
  MDS_ASSERT(hd > 0 && m >= 0 && pos0 >= 0, "bad attention_decode shape: m {} pos0 {} hd {}", m,
             pos0, hd);
  const int64_t group = nq / nkv, keys = pos0 + m;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel
  {
    // scores[r * keys + j]: query head (g * group + r) against key j.
    std::vector<float> scores(static_cast<size_t>(group * keys));
    std::vector<float> inv_sum(static_cast<size_t>(group));
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t g = 0; g < nkv; ++g) {
        const int64_t len = pos0 + i + 1;  // causal: keys 0 .. pos0 + i
        const float* qi = q + i * q_stride + g * group * hd;
        for (int64_t j = 0; j < len; ++j) {
          const float* kj = k + j * kv_stride + g * hd;
          for (int64_t r = 0; r < group; ++r) {
            const float* qr = qi + r * hd;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < hd; ++d) dot += qr[d] * kj[d];
            scores[static_cast<size_t>(r * keys + j)] = dot * scale;
          }
        }
        for (int64_t r = 0; r < group; ++r) {
          float* s = scores.data() + r * keys;
          float mx = s[0];
          for (int64_t j = 1; j < len; ++j) mx = std::max(mx, s[j]);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < len; ++j) {
            s[j] = fast_exp(s[j] - mx);
            sum += s[j];
          }
          inv_sum[static_cast<size_t>(r)] = 1.0f / sum;
          float* o = out + i * out_stride + (g * group + r) * hd;
          std::fill(o, o + hd, 0.0f);
        }
        for (int64_t j = 0; j < len; ++j) {
          const float* vj = v + j * kv_stride + g * hd;
          for (int64_t r = 0; r < group; ++r) {
            const float p = scores[static_cast<size_t>(r * keys + j)];
            float* o = out + i * out_stride + (g * group + r) * hd;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
          }
        }
        for (int64_t r = 0; r < group; ++r) {
          float* o = out + i * out_stride + (g * group + r) * hd;
          const float inv = inv_sum[static_cast<size_t>(r)];
#pragma omp simd
          for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
        }
      }
    }
  }
}

}  // namespace mds::ops
