// The FA2 mma.sync attention kernels (src/mds/ops/cuda/attention_mma.cuh, attention_mma_bwd.cuh),
// their source unmodified, run on the CPU under the CUDA emulator (emu.h), so that every edit of
// them is checked in CI without a GPU: forward and both backward kernels against the float64
// reference (attention_reference.h), with the GPU test's tolerances (cuda_tc_attention_test.cpp's
// TcTol). Shapes: hd 64 and 128, bf16 and fp16, s = 1 (one row of one warp), 65 (a row past a
// backward tile) and 130 (past two, and a partial forward tile), GQA 2/2, 4/2, 4/1, padded fused
// rows, b = 2.
//
// The checks and shapes are attention_tensor_core_check.h's (shared with the WMMA kernels' test);
// the launch grids and shared-memory sizes below are attention_mma.cu's.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attention_tensor_core_check.h"
#include "emu.h"
#include "mds/ops/cuda/attention_mma_bwd.cuh"

namespace {

namespace fa2 = mds::ops::cuda::fa2;

// attention_mma.cu's launches of the kernels: grids and shared-memory sizes.
template <int HD, typename T>
struct Fa2Kernels : attention_test::Problem<HD, T> {
  using attention_test::Problem<HD, T>::Problem;
  using P = attention_test::Problem<HD, T>;
  using P::c, P::group, P::qkv_stride, P::out_stride, P::out, P::lse, P::D, P::dout, P::q, P::k,
      P::v;

  void forward() {
    this->prepare_forward();
    const float scale_log2 = 1.0f / std::sqrt(float{HD}) * fa2::kLog2e;
    const unsigned tiles = static_cast<unsigned>((c.s + fa2::kFwdRows - 1) / fa2::kFwdRows);
    emu::launch(
        {tiles, unsigned(c.nq), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::forward_smem, [&] {
          fa2::fa2_forward_kernel<HD, T>(out.data(), lse.data(), q(), k(), v(), c.s, int(c.nq),
                                         int(group), qkv_stride, out_stride, scale_log2);
        });
  }
  void backward(const std::vector<T>& out_in, const std::vector<float>& lse_in) {
    this->prepare_backward(out_in, lse_in);
    const float scale = 1.0f / std::sqrt(float{HD}), scale_log2 = scale * fa2::kLog2e;
    T *dq = this->dq(), *dk = this->dk(), *dv = this->dv();
    const unsigned tiles = static_cast<unsigned>((c.s + fa2::kBwdTile - 1) / fa2::kBwdTile);
    emu::launch({tiles, unsigned(c.nkv), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::dkdv_smem,
                [&] {
                  fa2::fa2_dkdv_kernel<HD, T>(dk, dv, dout.data(), lse.data(), D.data(), q(), k(),
                                              v(), c.s, int(c.nq), int(group), qkv_stride,
                                              out_stride, scale, scale_log2);
                });
    emu::launch({tiles, unsigned(c.nq), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::dq_smem, [&] {
      fa2::fa2_dq_kernel<HD, T>(dq, dout.data(), lse.data(), D.data(), q(), k(), v(), c.s,
                                int(c.nq), int(group), qkv_stride, out_stride, scale, scale_log2);
    });
  }
};

class MmaAttention : public ::testing::TestWithParam<attention_test::Shape> {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
  }
};

TEST_P(MmaAttention, MatchesFloat64ReferenceUnderTheEmulator) {
  // check() asserts out, lse, dq, dk, dv, the untouched padding and inputs, and the schedule.
  ASSERT_TRUE(attention_test::check_shape<Fa2Kernels>(GetParam()))
      << "no kernels for hd " << GetParam().hd << ": the shape checks nothing";
}

INSTANTIATE_TEST_SUITE_P(Shapes, MmaAttention,
                         ::testing::ValuesIn(attention_test::kTensorCoreShapes),
                         [](const auto& info) { return attention_test::shape_name(info.param); });

}  // namespace
