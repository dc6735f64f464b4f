// The 16-bit attention of the CPU reference (half_reference.h): the fp32 flash kernels of
// attention.cpp on the exact fp32 values of the 16-bit q, k, v (and out, dout), lse fp32, out and
// dq, dk, dv rounded once. q, k, v are strided views (rows qkv_stride apart, e.g. inside one
// fused qkv buffer) and out, dout rows out_stride apart; the scratch packs each token's q, k and
// v heads into one fp32 row [nq | nkv | nkv] x hd, so the fp32 kernel runs on the same values
// with its own strides, and only the elements of the views are read or written back.
#pragma once

#include <cstddef>
#include <vector>

#include "mds/core/fp16.h"
#include "mds/ops/cpu/half_scratch.h"
#include "mds/ops/ops.h"

namespace mds::ops {

using half_scratch::narrow_rows;
using half_scratch::widen_rows;

namespace half_detail {

// One token's q, k and v heads side by side in fp32: [rows, (nq + 2 nkv) * hd].
struct PackedQkv {
  int64_t rows, q_width, kv_width, stride;
  std::vector<float> data;

  PackedQkv(int64_t rows_, int64_t nq, int64_t nkv, int64_t hd)
      : rows(rows_),
        q_width(nq * hd),
        kv_width(nkv * hd),
        stride(q_width + 2 * kv_width),
        data(static_cast<size_t>(rows * stride)) {}
  float* q() { return data.data(); }
  float* k() { return q() + q_width; }
  float* v() { return k() + kv_width; }

  template <typename H>
  void load(const H* q_, const H* k_, const H* v_, int64_t src_stride) {
    widen_rows(q(), stride, q_, src_stride, rows, q_width);
    widen_rows(k(), stride, k_, src_stride, rows, kv_width);
    widen_rows(v(), stride, v_, src_stride, rows, kv_width);
  }
  template <typename H>
  void store(H* q_, H* k_, H* v_, int64_t dst_stride) {
    narrow_rows(q_, dst_stride, q(), stride, rows, q_width);
    narrow_rows(k_, dst_stride, k(), stride, rows, kv_width);
    narrow_rows(v_, dst_stride, v(), stride, rows, kv_width);
  }
};

}  // namespace half_detail

template <typename H>
void attention_forward(H* out, float* lse, const H* q, const H* k, const H* v, int64_t b, int64_t s,
                       int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                       int64_t out_stride) {
  const int64_t rows = b * s, width = nq * hd;
  half_detail::PackedQkv qkv(rows, nq, nkv, hd);
  qkv.load(q, k, v, qkv_stride);
  std::vector<float> out32(static_cast<size_t>(rows * width));
  attention_forward(out32.data(), lse, qkv.q(), qkv.k(), qkv.v(), b, s, nq, nkv, hd, qkv.stride,
                    width);
  narrow_rows(out, out_stride, out32.data(), width, rows, width);
}

template <typename H>
void attention_backward(H* dq, H* dk, H* dv, const H* dout, const H* out, const float* lse,
                        const H* q, const H* k, const H* v, int64_t b, int64_t s, int64_t nq,
                        int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride) {
  const int64_t rows = b * s, width = nq * hd;
  half_detail::PackedQkv qkv(rows, nq, nkv, hd), grad(rows, nq, nkv, hd);
  qkv.load(q, k, v, qkv_stride);
  std::vector<float> out32(static_cast<size_t>(rows * width)), dout32(out32.size());
  widen_rows(out32.data(), width, out, out_stride, rows, width);
  widen_rows(dout32.data(), width, dout, out_stride, rows, width);
  attention_backward(grad.q(), grad.k(), grad.v(), dout32.data(), out32.data(), lse, qkv.q(),
                     qkv.k(), qkv.v(), b, s, nq, nkv, hd, qkv.stride, width);
  grad.store(dq, dk, dv, qkv_stride);
}

}  // namespace mds::ops
