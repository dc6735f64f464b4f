// The CUDA flash attention on 16-bit storage (bf16 and fp16, typed tests) against the fp32 CPU
// kernel run on the same H-rounded q/k/v/dout: the shapes and layout of attention_test.cpp (GQA,
// odd s, b > 1, fused qkv rows with padding, hd 32..128). out, dq, dk, dv are each one rounding
// of an fp32 result (tolerance: the fp32 kernel's plus one unit roundoff of H), lse is fp32.
// Nothing outside the head entries may be written, and the backward gives the same bits twice.
//
// These go through the dispatch of ops_cuda.h, and the padded rows (strides not multiples of 8)
// keep every shape, hd 64 and 128 included, on the CUDA-core kernels: each test asserts it.
// cuda_tc_attention_test.cpp tests the tensor-core kernels, directly and against these.
#include <gtest/gtest.h>

#include <vector>

#include "attention_test_util.h"
#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds {
namespace {

using test::AttnShape;
using test::Layout;

constexpr AttnShape kShapes[] = {
    {1, 1, 1, 1, 32},     // one token
    {2, 33, 4, 2, 32},    // b > 1, one row past a tile, GQA 2
    {1, 64, 2, 2, 64},    // exact tiles, no GQA
    {2, 77, 8, 2, 64},    // GQA 4, odd s
    {1, 45, 6, 3, 48},    // hd not a multiple of 32
    {1, 50, 4, 1, 80},    // multi-query, hd 80
    {2, 100, 4, 2, 128},  // hd 128, several tiles
    {1, 257, 4, 4, 128},  // many tiles, one row past
};

// Rows padded by 3 and 5 elements: never multiples of 8, so never the tensor cores.
template <typename H>
test::HalfAttention<H> attention_case(const AttnShape& a) {
  test::HalfAttention<H> t(Layout{a, 3, 5}, 21);
  EXPECT_FALSE(ops::cuda::attention_tc_supported(a.hd, t.L.stride(), t.L.out_stride(), {}));
  return t;
}

template <typename H>
class CudaAttentionHalf : public test::CudaTest {};
TYPED_TEST_SUITE(CudaAttentionHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaAttentionHalf, ForwardAndLseMatchCpu) {
  using H = TypeParam;
  for (const AttnShape& a : kShapes) {
    SCOPED_TRACE(a);
    attention_case<H>(a).expect_forward_matches_cpu(&ops::cuda::attention_forward,
                                                    test::after_roundings<H>(test::kAttnForward, 1),
                                                    test::kAttnForward);
  }
}

TYPED_TEST(CudaAttentionHalf, BackwardMatchesCpuAndIsDeterministic) {
  using H = TypeParam;
  for (const AttnShape& a : kShapes) {
    SCOPED_TRACE(a);
    attention_case<H>(a).expect_backward_matches_cpu(
        &ops::cuda::attention_backward, test::after_roundings<H>(test::kAttnBackward, 1));
  }
}

}  // namespace
}  // namespace mds
