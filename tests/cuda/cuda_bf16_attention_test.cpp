// The CUDA flash attention on bf16 storage against the fp32 CPU kernel run on the same
// bf16-rounded q/k/v/dout: the shapes and layout of attention_test.cpp (GQA, odd s, b > 1, fused
// qkv rows with padding, hd 32..128). out, dq, dk, dv are each one rounding of an fp32 result
// (tolerance: the fp32 kernel's plus one unit roundoff), lse is fp32. Nothing outside the head
// entries may be written, and the backward gives the same bits twice.
//
// These go through the dispatch of ops_cuda.h, and the padded rows (strides not multiples of 8)
// keep every shape, hd 64 and 128 included, on the CUDA-core kernels: each test asserts it.
// cuda_tc_attention_test.cpp tests the tensor-core kernels, directly and against these.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kAttnForward;
using test::rounded_to_bf16;
using test::to_device;
using test::to_device_bf16;
using test::to_host;
using test::to_host_float;

constexpr test::Tol kBf16Out = test::after_bf16_roundings(kAttnForward, 1);
constexpr test::Tol kBf16Grad = test::after_bf16_roundings(test::kAttnBackward, 1);

struct AttnShape {
  int64_t b, s, nq, nkv, hd;
};
std::ostream& operator<<(std::ostream& os, const AttnShape& a) {
  return os << "b" << a.b << "_s" << a.s << "_nq" << a.nq << "_nkv" << a.nkv << "_hd" << a.hd;
}

// One fused row per token, [q heads | k heads | v heads | 3 of padding]; output rows padded by 5.
struct Layout {
  AttnShape a;
  int64_t stride() const { return (a.nq + 2 * a.nkv) * a.hd + 3; }
  int64_t out_stride() const { return a.nq * a.hd + 5; }
  int64_t k_off() const { return a.nq * a.hd; }
  int64_t v_off() const { return (a.nq + a.nkv) * a.hd; }
  size_t qkv_size() const { return static_cast<size_t>(a.b * a.s * stride()); }
  size_t out_size() const { return static_cast<size_t>(a.b * a.s * out_stride()); }
  // Indices of a buffer whose rows are `row` apart and whose entries [lo, hi) of a row are used.
  static std::vector<size_t> columns(size_t size, int64_t row, int64_t lo, int64_t hi) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < size; ++i) {
      const int64_t c = static_cast<int64_t>(i) % row;
      if (c >= lo && c < hi) idx.push_back(i);
    }
    return idx;
  }
};

std::vector<float> padding(const std::vector<float>& x, int64_t row, int64_t hi) {
  return test::gather(x, Layout::columns(x.size(), row, hi, row));
}

class CudaAttentionBf16 : public test::CudaTestWithParam<AttnShape> {
 protected:
  AttnShape a = GetParam();
  Layout L{a};
  std::vector<float> qkv = rounded_to_bf16(test::randn(L.qkv_size(), 21));
  std::vector<float> dout = rounded_to_bf16(test::randn(L.out_size(), 22));
  std::vector<float> out0 = rounded_to_bf16(test::randn(L.out_size(), 23));   // prior out
  std::vector<float> dqkv0 = rounded_to_bf16(test::randn(L.qkv_size(), 24));  // prior dq/dk/dv
  size_t lse_size = static_cast<size_t>(a.b * a.nq * a.s);

  void cpu_forward(std::vector<float>& out, std::vector<float>& lse) const {
    out = out0;
    lse.assign(lse_size, 0.0f);
    ops::attention_forward(out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                           qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                           L.out_stride());
  }
};

TEST_P(CudaAttentionBf16, ForwardAndLseMatchCpu) {
  ASSERT_FALSE(ops::cuda::attention_tc_supported(a.hd, L.stride(), L.out_stride(), {}));
  std::vector<float> out, lse;
  cpu_forward(out, lse);
  auto g_qkv = to_device_bf16(qkv), g_out = to_device_bf16(out0);
  auto g_lse = to_device(std::vector<float>(lse_size, 0.0f));
  const auto* gq = g_qkv.data();
  ops::cuda::attention_forward(g_out.data(), g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b,
                               a.s, a.nq, a.nkv, a.hd, L.stride(), L.out_stride(), nullptr);
  const auto gpu_out = to_host_float(g_out);
  const auto heads = Layout::columns(out.size(), L.out_stride(), 0, a.nq * a.hd);
  EXPECT_TRUE(close_to_cpu(test::gather(gpu_out, heads), test::gather(out, heads), kBf16Out));
  EXPECT_TRUE(test::same_bits(padding(gpu_out, L.out_stride(), a.nq * a.hd),
                              padding(out0, L.out_stride(), a.nq * a.hd)))
      << "forward wrote outside the head entries of out";
  EXPECT_TRUE(close_to_cpu(to_host(g_lse), lse, kAttnForward));
}

TEST_P(CudaAttentionBf16, BackwardMatchesCpuAndIsDeterministic) {
  ASSERT_FALSE(ops::cuda::attention_tc_supported(a.hd, L.stride(), L.out_stride(), {}));
  std::vector<float> out, lse;
  cpu_forward(out, lse);
  // Both backwards start from the out the bf16 forward would have stored (the CPU's, rounded)
  // and the CPU's lse, so only the backward is under test and D = rowsum(dout * out) is the same.
  out = rounded_to_bf16(out);
  std::vector<float> dqkv = dqkv0;
  ops::attention_backward(dqkv.data(), dqkv.data() + L.k_off(), dqkv.data() + L.v_off(),
                          dout.data(), out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                          qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                          L.out_stride());
  auto g_qkv = to_device_bf16(qkv), g_dout = to_device_bf16(dout), g_out = to_device_bf16(out);
  auto g_lse = to_device(lse);
  const auto* gq = g_qkv.data();
  const size_t n = dqkv.size();
  const int64_t row = L.stride();
  const struct {
    const char* name;
    std::vector<size_t> idx;
  } parts[] = {{"dq", Layout::columns(n, row, 0, L.k_off())},
               {"dk", Layout::columns(n, row, L.k_off(), L.v_off())},
               {"dv", Layout::columns(n, row, L.v_off(), L.v_off() + a.nkv * a.hd)}};
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    auto g_dqkv = to_device_bf16(dqkv0);
    auto* gd = g_dqkv.data();
    ops::cuda::attention_backward(gd, gd + L.k_off(), gd + L.v_off(), g_dout.data(), g_out.data(),
                                  g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq,
                                  a.nkv, a.hd, L.stride(), L.out_stride(), nullptr);
    const auto gpu = to_host_float(g_dqkv);
    for (const auto& p : parts)
      EXPECT_TRUE(close_to_cpu(test::gather(gpu, p.idx), test::gather(dqkv, p.idx), kBf16Grad))
          << p.name;
    const int64_t used = L.v_off() + a.nkv * a.hd;
    EXPECT_TRUE(test::same_bits(padding(gpu, row, used), padding(dqkv0, row, used)))
        << "backward wrote outside the head entries of dq/dk/dv";
    if (run == 0)
      first = gpu;
    else
      EXPECT_TRUE(test::same_bits(gpu, first)) << "backward is not deterministic";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionBf16,
    ::testing::Values(AttnShape{1, 1, 1, 1, 32},      // one token
                      AttnShape{2, 33, 4, 2, 32},     // b > 1, one row past a tile, GQA 2
                      AttnShape{1, 64, 2, 2, 64},     // exact tiles, no GQA
                      AttnShape{2, 77, 8, 2, 64},     // GQA 4, odd s
                      AttnShape{1, 45, 6, 3, 48},     // hd not a multiple of 32
                      AttnShape{1, 50, 4, 1, 80},     // multi-query, hd 80
                      AttnShape{2, 100, 4, 2, 128},   // hd 128, several tiles
                      AttnShape{1, 257, 4, 4, 128}),  // many tiles, one row past
    [](const auto& info) {
      const AttnShape& p = info.param;
      return "b" + std::to_string(p.b) + "_s" + std::to_string(p.s) + "_nq" + std::to_string(p.nq) +
             "_nkv" + std::to_string(p.nkv) + "_hd" + std::to_string(p.hd);
    });

}  // namespace
}  // namespace mds
