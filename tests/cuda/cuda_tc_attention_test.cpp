// The tensor-core 16-bit flash attention (bf16 and fp16, typed tests), both implementations, called
// directly (not through the dispatch): the WMMA kernels (attention_tc.cu) and the FA2 mma.sync
// kernels (attention_mma.cu), each against the fp32 CPU kernel run on the same H-rounded
// q/k/v/dout, and against the CUDA-core kernels of the same type: hd 64 and 128, GQA (8 query
// heads on 2 kv heads, and 4 on 1), s a multiple of the 64-row tile (and of the mma forward's 128)
// and not, b = 2, fused qkv rows padded to a multiple of 8 elements (the dispatch's condition) or
// unpadded as the model lays them out. Nothing outside the head entries may be written, and the
// backward gives the same bits twice. The dispatch rule itself (attention_tc_supported) is
// checked without a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "attention_test_util.h"
#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds {
namespace {

using test::AttnShape;
using test::close_to_cpu;
using test::Layout;
using test::Tol;

using test::TcTol;  // tolerances.h

struct TcCase {
  AttnShape a;
  int64_t pad;  // elements of padding after each fused qkv row and each output row
};
constexpr TcCase kAllCases[] = {
    {{2, 64, 8, 2, 64}, 8},    // one exact tile
    {{2, 100, 8, 2, 64}, 8},   // a partial second tile
    {{2, 256, 8, 2, 64}, 8},   // four tiles
    {{2, 64, 8, 2, 128}, 8},   // hd 128
    {{2, 100, 8, 2, 128}, 8},  //
    {{2, 256, 8, 2, 128}, 8},  //
    {{2, 1, 8, 2, 64}, 8},     // one token: one row of one warp
    {{1, 65, 4, 4, 128}, 8},   // one row past a tile, no GQA
    {{2, 130, 4, 1, 64}, 0},   // the model's unpadded rows, 4 query heads on 1
    {{1, 300, 4, 1, 128}, 0},  // three mma forward tiles, the last partial
};
#ifdef MDS_CUDA_EMULATOR
// On the CPU emulator (tests/cuda_emu) the kernels' numbers are mds_cuda_emu_tests' job, over
// eight shapes; here the dispatch and the launches are, so three shapes: hd 64 and 128, padded
// and unpadded rows, a partial tile.
constexpr TcCase kCases[] = {kAllCases[1], kAllCases[4], kAllCases[8]};
#else
constexpr auto& kCases = kAllCases;
#endif

// Rows a multiple of 8 elements, so every row is 16-byte aligned: the tensor cores apply.
template <typename H>
test::HalfAttention<H> attention_case(const TcCase& c) {
  return test::HalfAttention<H>(Layout{c.a, c.pad, c.pad}, 31);
}

// The two tensor-core implementations of ops_cuda.h.
template <typename H>
struct TcKernels {
  const char* name;
  typename test::HalfAttention<H>::Forward forward;
  typename test::HalfAttention<H>::Backward backward;
};
template <typename H>
std::vector<TcKernels<H>> tc_kernels() {
  return {{"wmma", &ops::cuda::attention_forward_tc, &ops::cuda::attention_backward_tc},
          {"mma", &ops::cuda::attention_forward_mma, &ops::cuda::attention_backward_mma}};
}

template <typename H>
class CudaAttentionTc : public test::CudaTest {};
TYPED_TEST_SUITE(CudaAttentionTc, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaAttentionTc, ForwardAndLseMatchCpu) {
  using H = TypeParam;
  for (const TcKernels<H>& kernels : tc_kernels<H>())
    for (const TcCase& c : kCases) {
      SCOPED_TRACE(::testing::Message() << kernels.name << " " << c.a << " pad " << c.pad);
      attention_case<H>(c).expect_forward_matches_cpu(kernels.forward, TcTol<H>::out,
                                                      TcTol<H>::lse);
    }
}

TYPED_TEST(CudaAttentionTc, BackwardMatchesCpuAndIsDeterministic) {
  using H = TypeParam;
  for (const TcKernels<H>& kernels : tc_kernels<H>())
    for (const TcCase& c : kCases) {
      SCOPED_TRACE(::testing::Message() << kernels.name << " " << c.a << " pad " << c.pad);
      attention_case<H>(c).expect_backward_matches_cpu(kernels.backward, TcTol<H>::grad);
    }
}

TYPED_TEST(CudaAttentionTc, AgreesWithCudaCoreKernels) {
  using H = TypeParam;
  for (const TcKernels<H>& kernels : tc_kernels<H>())
    for (const TcCase& c : kCases) {
      SCOPED_TRACE(::testing::Message() << kernels.name << " " << c.a << " pad " << c.pad);
      const auto t = attention_case<H>(c);
      std::vector<float> tc_out, tc_lse, core_out, core_lse;
      t.gpu_forward(kernels.forward, tc_out, tc_lse);
      t.gpu_forward(&ops::cuda::attention_forward_cuda_core, core_out, core_lse);
      const auto heads = t.L.out_heads();
      EXPECT_TRUE(close_to_cpu(test::gather(tc_out, heads), test::gather(core_out, heads),
                               TcTol<H>::agree_out));
      EXPECT_TRUE(close_to_cpu(tc_lse, core_lse, TcTol<H>::agree_lse));
      // Both backwards from the CUDA-core forward's out and lse.
      const auto tc = t.gpu_backward(kernels.backward, core_out, core_lse);
      const auto core =
          t.gpu_backward(&ops::cuda::attention_backward_cuda_core, core_out, core_lse);
      for (const auto& p : t.L.parts())
        EXPECT_TRUE(
            close_to_cpu(test::gather(tc, p.idx), test::gather(core, p.idx), TcTol<H>::agree_grad))
            << p.name;
    }
}

// The dispatch takes the tensor cores only where they apply; host logic, no GPU needed.
TEST(AttentionTcSupported, RequiresHeadDim64Or128AndAlignedRows) {
  alignas(16) static const unsigned char buf[64] = {};
  const void* ok = buf;
  const void* odd = buf + 2;  // 16-bit aligned, not 16-byte aligned
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
