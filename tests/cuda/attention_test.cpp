// The CUDA attention (ops::cuda::attention_forward/backward), flash and unfused, against the CPU
// kernel of the same backend, fp32:
// grouped-query heads, sequences that are not multiples of the 32-row tile, b > 1, q/k/v as
// strided views of one fused qkv buffer with padded rows, head dims 32..128 (including ones
// that are not multiples of 32). Checks out, lse and dq/dk/dv, that nothing outside the head
// entries is written, and that the backward gives the same bits twice.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "attention_test_util.h"
#include "cuda_test_util.h"
#include "mds/ops/attention_backend.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kAttnBackward;
using test::kAttnForward;
using test::to_device;
using test::to_host;

using test::AttnShape;
using test::Layout;

// Over both attention backends (--attention-backend): flash and unfused, each on the GPU against
// the same backend on the CPU.
class CudaAttention : public test::CudaTestWithParam<std::tuple<AttnShape, ops::AttentionBackend>> {
 protected:
  void SetUp() override {
    test::CudaTestWithParam<std::tuple<AttnShape, ops::AttentionBackend>>::SetUp();
    ops::attention_backend() = std::get<1>(GetParam());
  }
  void TearDown() override { ops::attention_backend() = ops::AttentionBackend::flash; }
  AttnShape a = std::get<0>(GetParam());
  Layout L{a, 3, 5};
  std::vector<float> qkv = test::randn(L.qkv_size(), 21);
  std::vector<float> dout = test::randn(L.out_size(), 22);
  std::vector<float> out0 = test::randn(L.out_size(), 23);   // prior contents of out
  std::vector<float> dqkv0 = test::randn(L.qkv_size(), 24);  // prior contents of dq/dk/dv
  size_t lse_size = L.lse_size();

  void cpu_forward(std::vector<float>& out, std::vector<float>& lse) const {
    out = out0;
    lse.assign(lse_size, 0.0f);
    ops::attention_forward(out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                           qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                           L.out_stride());
  }
};

TEST_P(CudaAttention, ForwardAndLseMatchCpu) {
  std::vector<float> out, lse;
  cpu_forward(out, lse);
  auto g_qkv = to_device(qkv), g_out = to_device(out0);
  auto g_lse = to_device(std::vector<float>(lse_size, 0.0f));
  const float* gq = g_qkv.data();
  ops::cuda::attention_forward(g_out.data(), g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b,
                               a.s, a.nq, a.nkv, a.hd, L.stride(), L.out_stride(), nullptr);
  const auto gpu_out = to_host(g_out);
  const auto heads = L.out_heads();
  EXPECT_TRUE(close_to_cpu(test::gather(gpu_out, heads), test::gather(out, heads), kAttnForward));
  EXPECT_TRUE(test::same_bits(L.out_padding(gpu_out), L.out_padding(out0)))
      << "forward wrote outside the head entries of out";
  EXPECT_TRUE(close_to_cpu(to_host(g_lse), lse, kAttnForward));
}

TEST_P(CudaAttention, BackwardMatchesCpuAndIsDeterministic) {
  std::vector<float> out, lse;
  cpu_forward(out, lse);
  std::vector<float> dqkv = dqkv0;
  ops::attention_backward(dqkv.data(), dqkv.data() + L.k_off(), dqkv.data() + L.v_off(),
                          dout.data(), out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                          qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                          L.out_stride());
  // The GPU backward starts from the CPU's out and lse, so only the backward is under test.
  auto g_qkv = to_device(qkv), g_dout = to_device(dout), g_out = to_device(out);
  auto g_lse = to_device(lse);
  const float* gq = g_qkv.data();
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    auto g_dqkv = to_device(dqkv0);
    float* gd = g_dqkv.data();
    ops::cuda::attention_backward(gd, gd + L.k_off(), gd + L.v_off(), g_dout.data(), g_out.data(),
                                  g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq,
                                  a.nkv, a.hd, L.stride(), L.out_stride(), nullptr);
    const auto gpu = to_host(g_dqkv);
    for (const auto& p : L.parts())
      EXPECT_TRUE(close_to_cpu(test::gather(gpu, p.idx), test::gather(dqkv, p.idx), kAttnBackward))
          << p.name;
    EXPECT_TRUE(test::same_bits(L.qkv_padding(gpu), L.qkv_padding(dqkv0)))
        << "backward wrote outside the head entries of dq/dk/dv";
    if (run == 0)
      first = gpu;
    else
      EXPECT_TRUE(test::same_bits(gpu, first)) << "backward is not deterministic";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Combine(
        ::testing::Values(AttnShape{1, 1, 1, 1, 32},      // one token
                          AttnShape{2, 33, 4, 2, 32},     // b > 1, one row past a tile, GQA 2
                          AttnShape{1, 64, 2, 2, 64},     // exact tiles, no GQA
                          AttnShape{2, 77, 8, 2, 64},     // GQA 4, odd s
                          AttnShape{1, 45, 6, 3, 48},     // hd not a multiple of 32
                          AttnShape{1, 50, 4, 1, 80},     // multi-query, hd 80
                          AttnShape{2, 100, 4, 2, 128},   // hd 128, several tiles
                          AttnShape{1, 257, 4, 4, 128}),  // many tiles, one row past
        ::testing::Values(ops::AttentionBackend::flash, ops::AttentionBackend::unfused)),
    [](const auto& info) {
      std::ostringstream os;
      os << std::get<0>(info.param)
         << (std::get<1>(info.param) == ops::AttentionBackend::flash ? "_flash" : "_unfused");
      std::string name = os.str();
      for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

}  // namespace
}  // namespace mds
