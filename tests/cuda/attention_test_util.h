// What the CUDA attention tests share (attention_test.cpp, cuda_half_attention_test.cpp,
// cuda_tc_attention_test.cpp): a shape, q/k/v as strided views of one fused qkv buffer with
// padded rows, the index sets of the head entries and of the padding around them; and for the
// 16-bit tests, one case's inputs rounded to H with the fp32 CPU kernel and a GPU kernel on them.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "../ops_test_util.h"
#include "cuda_test_util.h"
#include "mds/ops/ops.h"

namespace mds::test {

struct AttnShape {
  int64_t b, s, nq, nkv, hd;
};
inline std::ostream& operator<<(std::ostream& os, const AttnShape& a) {
  return os << "b" << a.b << "_s" << a.s << "_nq" << a.nq << "_nkv" << a.nkv << "_hd" << a.hd;
}
// The name of a TEST_P instance over shapes.
inline std::string shape_name(const ::testing::TestParamInfo<AttnShape>& info) {
  const AttnShape& p = info.param;
  return "b" + std::to_string(p.b) + "_s" + std::to_string(p.s) + "_nq" + std::to_string(p.nq) +
         "_nkv" + std::to_string(p.nkv) + "_hd" + std::to_string(p.hd);
}

// One fused row per token, [q heads | k heads | v heads | qkv_pad elements of padding], as the
// model's fused QKV projection lays it out; output rows padded by out_pad.
struct Layout {
  AttnShape a;
  int64_t qkv_pad, out_pad;
  int64_t stride() const { return (a.nq + 2 * a.nkv) * a.hd + qkv_pad; }
  int64_t out_stride() const { return a.nq * a.hd + out_pad; }
  int64_t k_off() const { return a.nq * a.hd; }
  int64_t v_off() const { return (a.nq + a.nkv) * a.hd; }
  int64_t used() const { return v_off() + a.nkv * a.hd; }
  size_t qkv_size() const { return static_cast<size_t>(a.b * a.s * stride()); }
  size_t out_size() const { return static_cast<size_t>(a.b * a.s * out_stride()); }
  size_t lse_size() const { return static_cast<size_t>(a.b * a.nq * a.s); }
  // Indices of a buffer whose rows are `row` apart and whose entries [lo, hi) of a row are used.
  static std::vector<size_t> columns(size_t size, int64_t row, int64_t lo, int64_t hi) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < size; ++i) {
      const int64_t c = static_cast<int64_t>(i) % row;
      if (c >= lo && c < hi) idx.push_back(i);
    }
    return idx;
  }
  // The head entries of out.
  std::vector<size_t> out_heads() const { return columns(out_size(), out_stride(), 0, k_off()); }
  // The entries of dq, dk and dv in the fused gradient buffer.
  struct Part {
    const char* name;
    std::vector<size_t> idx;
  };
  std::vector<Part> parts() const {
    return {{"dq", columns(qkv_size(), stride(), 0, k_off())},
            {"dk", columns(qkv_size(), stride(), k_off(), v_off())},
            {"dv", columns(qkv_size(), stride(), v_off(), used())}};
  }
  // The values of the padding of out, and of the fused qkv (or dqkv) buffer: what no kernel may
  // write.
  std::vector<float> out_padding(const std::vector<float>& out) const {
    return gather(out, columns(out.size(), out_stride(), k_off(), out_stride()));
  }
  std::vector<float> qkv_padding(const std::vector<float>& qkv) const {
    return gather(qkv, columns(qkv.size(), stride(), used(), stride()));
  }
};

// One 16-bit attention case: q/k/v, dout and the prior contents of out and dq/dk/dv drawn from
// `seed` and rounded to H; the fp32 CPU kernel on those values (the reference) and a GPU kernel
// of the storage type (the dispatch, or one implementation: ops_cuda.h), with their results as
// fp32.
template <typename H>
struct HalfAttention {
  using D = DeviceHalf<H>;
  using Forward = void (*)(D* out, float* lse, const D* q, const D* k, const D* v, int64_t b,
                           int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                           int64_t out_stride, cudaStream_t stream);
  using Backward = void (*)(D* dq, D* dk, D* dv, const D* dout, const D* out, const float* lse,
                            const D* q, const D* k, const D* v, int64_t b, int64_t s, int64_t nq,
                            int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                            cudaStream_t stream);

  HalfAttention(Layout layout, uint32_t seed)
      : L(layout),
        qkv(randn_half<H>(L.qkv_size(), seed)),
        dout(randn_half<H>(L.out_size(), seed + 1)),
        out0(randn_half<H>(L.out_size(), seed + 2)),
        dqkv0(randn_half<H>(L.qkv_size(), seed + 3)) {}

  Layout L;
  AttnShape a = L.a;
  std::vector<float> qkv, dout;
  std::vector<float> out0, dqkv0;  // the prior contents of out and of dq/dk/dv

  void cpu_forward(std::vector<float>& out, std::vector<float>& lse) const {
    out = out0;
    lse.assign(L.lse_size(), 0.0f);
    ops::attention_forward(out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                           qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                           L.out_stride());
  }
  // dq/dk/dv (in the fused buffer, from dqkv0) from the given out and lse.
  std::vector<float> cpu_backward(const std::vector<float>& out,
                                  const std::vector<float>& lse) const {
    std::vector<float> dqkv = dqkv0;
    ops::attention_backward(dqkv.data(), dqkv.data() + L.k_off(), dqkv.data() + L.v_off(),
                            dout.data(), out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                            qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                            L.out_stride());
    return dqkv;
  }

  void gpu_forward(Forward run, std::vector<float>& out, std::vector<float>& lse) const {
    auto g_qkv = to_device_half<H>(qkv), g_out = to_device_half<H>(out0);
    auto g_lse = to_device(std::vector<float>(L.lse_size(), 0.0f));
    const D* gq = g_qkv.data();
    run(g_out.data(), g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd,
        L.stride(), L.out_stride(), nullptr);
    out = to_host_float(g_out);
    lse = to_host(g_lse);
  }
  // From the given out (H values) and lse, as cpu_backward.
  std::vector<float> gpu_backward(Backward run, const std::vector<float>& out,
                                  const std::vector<float>& lse) const {
    auto g_qkv = to_device_half<H>(qkv), g_dout = to_device_half<H>(dout);
    auto g_out = to_device_half<H>(out), g_dqkv = to_device_half<H>(dqkv0);
    auto g_lse = to_device(lse);
    const D* gq = g_qkv.data();
    D* gd = g_dqkv.data();
    run(gd, gd + L.k_off(), gd + L.v_off(), g_dout.data(), g_out.data(), g_lse.data(), gq,
        gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(), L.out_stride(),
        nullptr);
    return to_host_float(g_dqkv);
  }

  // The GPU forward against the CPU's: out within out_tol, lse within lse_tol, and nothing
  // written outside the head entries of out.
  void expect_forward_matches_cpu(Forward run, Tol out_tol, Tol lse_tol) const {
    std::vector<float> out, lse, gpu_out, gpu_lse;
    cpu_forward(out, lse);
    gpu_forward(run, gpu_out, gpu_lse);
    const auto heads = L.out_heads();
    EXPECT_TRUE(close_to_cpu(gather(gpu_out, heads), gather(out, heads), out_tol));
    EXPECT_TRUE(same_bits(L.out_padding(gpu_out), L.out_padding(out0)))
        << "forward wrote outside the head entries of out";
    EXPECT_TRUE(close_to_cpu(gpu_lse, lse, lse_tol));
  }
  // The GPU backward against the CPU's, both from the out the 16-bit forward would have stored
  // (the CPU's, rounded) and the CPU's lse, so only the backward is under test and
  // D = rowsum(dout * out) is the same: dq, dk, dv within grad_tol, nothing written outside
  // their head entries, and the same bits twice.
  void expect_backward_matches_cpu(Backward run, Tol grad_tol) const {
    std::vector<float> out, lse;
    cpu_forward(out, lse);
    out = rounded<H>(out);
    const std::vector<float> dqkv = cpu_backward(out, lse);
    const std::vector<float> first = gpu_backward(run, out, lse);
    for (const auto& p : L.parts())
      EXPECT_TRUE(close_to_cpu(gather(first, p.idx), gather(dqkv, p.idx), grad_tol)) << p.name;
    EXPECT_TRUE(same_bits(L.qkv_padding(first), L.qkv_padding(dqkv0)))
        << "backward wrote outside the head entries of dq/dk/dv";
    EXPECT_TRUE(same_bits(gpu_backward(run, out, lse), first)) << "backward is not deterministic";
  }
};

}  // namespace mds::test
