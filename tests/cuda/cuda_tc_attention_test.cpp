// The tensor-core (WMMA) bf16 flash attention, called directly (not through the dispatch), against
// the fp32 CPU kernel run on the same bf16-rounded q/k/v/dout, and against the CUDA-core bf16
// kernels: hd 64 and 128, GQA (8 query heads on 2 kv heads), s a multiple of the 64-row tile and
// not, b = 2, fused qkv rows padded to a multiple of 8 elements (the dispatch's condition).
// Nothing outside the head entries may be written, and the backward gives the same bits twice.
// The dispatch rule itself (attention_tc_supported) is checked without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::rounded_to_bf16;
using test::to_device;
using test::to_device_bf16;
using test::to_host;
using test::to_host_float;

// Not yet calibrated on a GPU. Beyond the CUDA-core bf16 kernels' error (the fp32 tolerance plus
// the rounding of the output), the tensor cores take P (forward, dV) and dS (dK, dQ) rounded to
// bf16: each term of a k-sum moves by at most u |term| (u = 2^-8), so a sum moves by u times the
// sum of |terms|, bounded here by a few times the largest |result| (rows see few keys, or
// weights summing to 1). A wrong index, mask or head mapping misses these by O(1).
constexpr double kU = kBf16UnitRoundoff;
constexpr test::Tol kCoreOut = test::after_bf16_roundings(test::kAttnForward, 1);
constexpr test::Tol kCoreGrad = test::after_bf16_roundings(test::kAttnBackward, 1);
constexpr test::Tol kTcOut{kCoreOut.rtol + kU, kCoreOut.atol_rel + 2 * kU};
constexpr test::Tol kTcGrad{kCoreGrad.rtol + 2 * kU, kCoreGrad.atol_rel + 4 * kU};
// lse is fp32 from fp32 tensor-core sums of exact products (kBf16GemmFp32Sums' argument).
constexpr test::Tol kTcLse{test::kAttnForward.rtol + test::kBf16GemmFp32Sums.rtol,
                           test::kAttnForward.atol_rel + test::kBf16GemmFp32Sums.atol_rel};
// The two GPU kernels each within their tolerance of the CPU's: within the sum of each other.
constexpr test::Tol kAgreeOut{kTcOut.rtol + kCoreOut.rtol, kTcOut.atol_rel + kCoreOut.atol_rel};
constexpr test::Tol kAgreeGrad{kTcGrad.rtol + kCoreGrad.rtol,
                               kTcGrad.atol_rel + kCoreGrad.atol_rel};
constexpr test::Tol kAgreeLse{kTcLse.rtol + test::kAttnForward.rtol,
                              kTcLse.atol_rel + test::kAttnForward.atol_rel};

struct AttnShape {
  int64_t b, s, nq, nkv, hd;
};

// One fused row per token, [q heads | k heads | v heads | 8 of padding]; out rows padded by 8, so
// every row is 16-byte aligned.
struct Layout {
  AttnShape a;
  int64_t stride() const { return (a.nq + 2 * a.nkv) * a.hd + 8; }
  int64_t out_stride() const { return a.nq * a.hd + 8; }
  int64_t k_off() const { return a.nq * a.hd; }
  int64_t v_off() const { return (a.nq + a.nkv) * a.hd; }
  int64_t used() const { return v_off() + a.nkv * a.hd; }
  size_t qkv_size() const { return static_cast<size_t>(a.b * a.s * stride()); }
  size_t out_size() const { return static_cast<size_t>(a.b * a.s * out_stride()); }
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

enum class Kernel { tensor_core, cuda_core };

class CudaAttentionTc : public test::CudaTestWithParam<AttnShape> {
 protected:
  AttnShape a = GetParam();
  Layout L{a};
  std::vector<float> qkv = rounded_to_bf16(test::randn(L.qkv_size(), 31));
  std::vector<float> dout = rounded_to_bf16(test::randn(L.out_size(), 32));
  std::vector<float> out0 = rounded_to_bf16(test::randn(L.out_size(), 33));   // prior out
  std::vector<float> dqkv0 = rounded_to_bf16(test::randn(L.qkv_size(), 34));  // prior dq/dk/dv
  size_t lse_size = static_cast<size_t>(a.b * a.nq * a.s);

  void cpu_forward(std::vector<float>& out, std::vector<float>& lse) const {
    out = out0;
    lse.assign(lse_size, 0.0f);
    ops::attention_forward(out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                           qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                           L.out_stride());
  }

  // The GPU forward of one kernel: out (bf16 values as fp32) and lse.
  void gpu_forward(Kernel kernel, std::vector<float>& out, std::vector<float>& lse) const {
    auto g_qkv = to_device_bf16(qkv), g_out = to_device_bf16(out0);
    auto g_lse = to_device(std::vector<float>(lse_size, 0.0f));
    const auto* gq = g_qkv.data();
    auto* run = kernel == Kernel::tensor_core ? &ops::cuda::attention_forward_tc
                                              : &ops::cuda::attention_forward_cuda_core;
    run(g_out.data(), g_lse.data(), gq, gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd,
        L.stride(), L.out_stride(), nullptr);
    out = to_host_float(g_out);
    lse = to_host(g_lse);
  }

  // The GPU backward of one kernel from the given (bf16-valued) out and lse: dq/dk/dv.
  std::vector<float> gpu_backward(Kernel kernel, const std::vector<float>& out,
                                  const std::vector<float>& lse) const {
    auto g_qkv = to_device_bf16(qkv), g_dout = to_device_bf16(dout), g_out = to_device_bf16(out);
    auto g_lse = to_device(lse);
    auto g_dqkv = to_device_bf16(dqkv0);
    const auto* gq = g_qkv.data();
    auto* gd = g_dqkv.data();
    auto* run = kernel == Kernel::tensor_core ? &ops::cuda::attention_backward_tc
                                              : &ops::cuda::attention_backward_cuda_core;
    run(gd, gd + L.k_off(), gd + L.v_off(), g_dout.data(), g_out.data(), g_lse.data(), gq,
        gq + L.k_off(), gq + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(), L.out_stride(),
        nullptr);
    return to_host_float(g_dqkv);
  }

  struct Part {
    const char* name;
    std::vector<size_t> idx;
  };
  std::vector<Part> parts() const {
    const size_t n = L.qkv_size();
    const int64_t row = L.stride();
    return {{"dq", Layout::columns(n, row, 0, L.k_off())},
            {"dk", Layout::columns(n, row, L.k_off(), L.v_off())},
            {"dv", Layout::columns(n, row, L.v_off(), L.used())}};
  }
};

TEST_P(CudaAttentionTc, ForwardAndLseMatchCpu) {
  std::vector<float> out, lse, gpu_out, gpu_lse;
  cpu_forward(out, lse);
  gpu_forward(Kernel::tensor_core, gpu_out, gpu_lse);
  const auto heads = Layout::columns(out.size(), L.out_stride(), 0, a.nq * a.hd);
  EXPECT_TRUE(close_to_cpu(test::gather(gpu_out, heads), test::gather(out, heads), kTcOut));
  EXPECT_TRUE(test::same_bits(padding(gpu_out, L.out_stride(), a.nq * a.hd),
                              padding(out0, L.out_stride(), a.nq * a.hd)))
      << "forward wrote outside the head entries of out";
  EXPECT_TRUE(close_to_cpu(gpu_lse, lse, kTcLse));
}

TEST_P(CudaAttentionTc, BackwardMatchesCpuAndIsDeterministic) {
  std::vector<float> out, lse;
  cpu_forward(out, lse);
  // From the out the bf16 forward would have stored (the CPU's, rounded) and the CPU's lse, so
  // only the backward is under test and D = rowsum(dout * out) is the same.
  out = rounded_to_bf16(out);
  std::vector<float> dqkv = dqkv0;
  ops::attention_backward(dqkv.data(), dqkv.data() + L.k_off(), dqkv.data() + L.v_off(),
                          dout.data(), out.data(), lse.data(), qkv.data(), qkv.data() + L.k_off(),
                          qkv.data() + L.v_off(), a.b, a.s, a.nq, a.nkv, a.hd, L.stride(),
                          L.out_stride());
  const auto first = gpu_backward(Kernel::tensor_core, out, lse);
  for (const auto& p : parts())
    EXPECT_TRUE(close_to_cpu(test::gather(first, p.idx), test::gather(dqkv, p.idx), kTcGrad))
        << p.name;
  EXPECT_TRUE(
      test::same_bits(padding(first, L.stride(), L.used()), padding(dqkv0, L.stride(), L.used())))
      << "backward wrote outside the head entries of dq/dk/dv";
  EXPECT_TRUE(test::same_bits(gpu_backward(Kernel::tensor_core, out, lse), first))
      << "backward is not deterministic";
}

TEST_P(CudaAttentionTc, AgreesWithCudaCoreKernels) {
  std::vector<float> tc_out, tc_lse, core_out, core_lse;
  gpu_forward(Kernel::tensor_core, tc_out, tc_lse);
  gpu_forward(Kernel::cuda_core, core_out, core_lse);
  const auto heads = Layout::columns(tc_out.size(), L.out_stride(), 0, a.nq * a.hd);
  EXPECT_TRUE(close_to_cpu(test::gather(tc_out, heads), test::gather(core_out, heads), kAgreeOut));
  EXPECT_TRUE(close_to_cpu(tc_lse, core_lse, kAgreeLse));
  // Both backwards from the CUDA-core forward's out and lse.
  const auto tc = gpu_backward(Kernel::tensor_core, core_out, core_lse);
  const auto core = gpu_backward(Kernel::cuda_core, core_out, core_lse);
  for (const auto& p : parts())
    EXPECT_TRUE(close_to_cpu(test::gather(tc, p.idx), test::gather(core, p.idx), kAgreeGrad))
        << p.name;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionTc,
    ::testing::Values(AttnShape{2, 64, 8, 2, 64},    // one exact tile
                      AttnShape{2, 100, 8, 2, 64},   // a partial second tile
                      AttnShape{2, 256, 8, 2, 64},   // four tiles
                      AttnShape{2, 64, 8, 2, 128},   // hd 128
                      AttnShape{2, 100, 8, 2, 128},  //
                      AttnShape{2, 256, 8, 2, 128},  //
                      AttnShape{2, 1, 8, 2, 64},     // one token: one row of one warp
                      AttnShape{1, 65, 4, 4, 128}),  // one row past a tile, no GQA
    [](const auto& info) {
      const AttnShape& p = info.param;
      return "b" + std::to_string(p.b) + "_s" + std::to_string(p.s) + "_nq" + std::to_string(p.nq) +
             "_nkv" + std::to_string(p.nkv) + "_hd" + std::to_string(p.hd);
    });

// The dispatch takes the tensor cores only where they apply; host logic, no GPU needed.
TEST(AttentionTcSupported, RequiresHeadDim64Or128AndAlignedRows) {
  alignas(16) static const unsigned char buf[64] = {};
  const void* ok = buf;
  const void* odd = buf + 2;  // bf16-aligned, not 16-byte aligned
  EXPECT_TRUE(ops::cuda::attention_tc_supported(64, 8 * 64 + 8, 4 * 64, {ok, ok}));
  EXPECT_TRUE(ops::cuda::attention_tc_supported(128, 1536, 1024, {ok}));
  EXPECT_FALSE(ops::cuda::attention_tc_supported(32, 512, 512, {ok}));
  EXPECT_FALSE(ops::cuda::attention_tc_supported(80, 640, 640, {ok}));
  EXPECT_FALSE(ops::cuda::attention_tc_supported(64, 8 * 64 + 3, 512, {ok}));
  EXPECT_FALSE(ops::cuda::attention_tc_supported(64, 512, 512 + 5, {ok}));
  EXPECT_FALSE(ops::cuda::attention_tc_supported(64, 512, 512, {ok, odd}));
}

}  // namespace
}  // namespace mds
