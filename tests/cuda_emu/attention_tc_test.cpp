// The WMMA tensor-core attention kernels (src/mds/ops/cuda/attention_tc.cuh), their source
// unmodified, run on the CPU under the CUDA emulator (emu.h, with shim/mma.h standing in for
// CUDA's WMMA header), so that every edit of them is checked in CI without a GPU: forward and both
// backward kernels against the float64 reference, with the GPU test's tolerances
// (cuda_tc_attention_test.cpp's TcTol), on the shapes and with the checks of
// attention_tensor_core_check.h (shared with the FA2 kernels' test). The launch grids and
// shared-memory sizes below are attention_tc.cu's.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attention_tensor_core_check.h"
#include "emu.h"
#include "mds/ops/cuda/attention_tc.cuh"

namespace {

namespace tc = mds::ops::cuda::tc;

// attention_tc.cu's launches: a block of tc::kThreads per (64-row tile, head, batch); the query
// tiles of the forward and dq, the key tiles of dk/dv (over kv heads).
template <int HD, typename T>
struct WmmaKernels : attention_test::Problem<HD, T> {
  using attention_test::Problem<HD, T>::Problem;
  using P = attention_test::Problem<HD, T>;
  using P::c, P::group, P::qkv_stride, P::out_stride, P::out, P::lse, P::D, P::dout, P::q, P::k,
      P::v;
  const unsigned tiles = static_cast<unsigned>((c.s + tc::kTile - 1) / tc::kTile);
  const float scale = 1.0f / std::sqrt(float{HD});

  void forward() {
    this->prepare_forward();
    emu::launch(
        {tiles, unsigned(c.nq), unsigned(c.b)}, tc::kThreads, tc::Geo<HD>::forward_smem, [&] {
          tc::tc_forward_kernel<HD, T>(out.data(), lse.data(), q(), k(), v(), c.s, int(c.nq),
                                       int(group), qkv_stride, out_stride, scale);
        });
  }
  void backward(const std::vector<T>& out_in, const std::vector<float>& lse_in) {
    this->prepare_backward(out_in, lse_in);
    T *dq = this->dq(), *dk = this->dk(), *dv = this->dv();
    emu::launch({tiles, unsigned(c.nkv), unsigned(c.b)}, tc::kThreads, tc::Geo<HD>::dkdv_smem, [&] {
      tc::tc_dkdv_kernel<HD, T>(dk, dv, dout.data(), lse.data(), D.data(), q(), k(), v(), c.s,
                                int(c.nq), int(group), qkv_stride, out_stride, scale);
    });
    emu::launch({tiles, unsigned(c.nq), unsigned(c.b)}, tc::kThreads, tc::Geo<HD>::dq_smem, [&] {
      tc::tc_dq_kernel<HD, T>(dq, dout.data(), lse.data(), D.data(), q(), k(), v(), c.s, int(c.nq),
                              int(group), qkv_stride, out_stride, scale);
    });
  }
};

class WmmaAttention : public ::testing::TestWithParam<attention_test::Shape> {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
  }
};

TEST_P(WmmaAttention, MatchesFloat64ReferenceUnderTheEmulator) {
  // check() asserts out, lse, dq, dk, dv, the untouched padding and inputs, and the schedule.
  ASSERT_TRUE(attention_test::check_shape<WmmaKernels>(GetParam()))
      << "no kernels for hd " << GetParam().hd << ": the shape checks nothing";
}

INSTANTIATE_TEST_SUITE_P(Shapes, WmmaAttention,
                         ::testing::ValuesIn(attention_test::kTensorCoreShapes),
                         [](const auto& info) { return attention_test::shape_name(info.param); });

}  // namespace
