// The tolerances of the CUDA kernel tests against the CPU kernels (tests/cuda/*_test.cpp), in a
// header of their own without the CUDA runtime, so that the CPU emulation of the kernels
// (tests/cuda_emu) holds them to the very same numbers.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../half_test_util.h"
#include "../ops_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

namespace mds::test {

// Tolerances of a GPU fp32 kernel against the CPU fp32 kernel: both round the same
// mathematical result, in different orders (rtol), with an absolute floor relative to the
// largest |value| for elements that cancel to near zero (atol_rel), and one in absolute terms
// (atol: the 16-bit types' subnormal steps, below).
struct Tol {
  double rtol, atol_rel, atol = 0.0;
};
// Not yet calibrated on a GPU (none was at hand): a few ulp of FMA contraction, expf against
// the CPU's fast_exp, and cancellation (silu' crosses zero, rotations of opposite-signed pairs)
// are what they must absorb; a wrong index or formula misses them by orders of magnitude.
constexpr Tol kFp32Elementwise{5e-6, 1e-6};  // same formula, FMA contraction / expf vs fast_exp
constexpr Tol kFp32Reduction{1e-5, 1e-6};    // row sums / dots in a different order
constexpr Tol kFp32Gemm{1e-5, 1e-5};         // k-term sums, cuBLASLt's order vs OpenBLAS's

// The flash attention kernels (attention_test.cpp; not yet calibrated on a GPU either). Both
// kernels sum the same terms in different orders (the GPU in 32-key tiles with fmaf, the CPU in
// 64-key tiles), and the GPU uses expf where the CPU uses its polynomial fast_exp (a few ulp
// apart), so out/lse differ by ~1e-6 relative; the gradients add the cancellation of dP - D. A
// wrong index, mask or head mapping misses these by orders of magnitude.
constexpr Tol kAttnForward{2e-5, 2e-5};
// The backward's absolute floor is for one token (s = 1): P = 1 and out = v, so dS = dP - D is
// exactly 0 and dq, dk are pure rounding noise (~1e-7) on both devices, in different orders; the
// tests' real gradients are 1e-2 to 1, so the floor hides no index error.
constexpr Tol kAttnBackward{1e-4, 1e-4, 1e-5};

// One rounding to a 16-bit type H moves a value a by at most u |a| + eta: u its unit roundoff,
// eta half its smallest subnormal (what a rounding below the normal range can move a value).
template <typename H>
struct Rounding {
  static constexpr double u = unit_roundoff<H>();
  static constexpr double eta = std::is_same_v<H, bf16> ? 0x1p-134 : 0x1p-25;
};

// A 16-bit kernel is compared with the fp32 CPU kernel run on the same H-rounded inputs (as fp32
// values, exact), so the inputs contribute no error; what differs is the fp32 arithmetic (the
// fp32 tolerance of that kernel, `base`) and each rounding of a result to H that the CPU does
// not do. One round-to-nearest moves a value a by at most u |a| + eta (bf16 u = 2^-8, fp16
// u = 2^-11; eta, for the subnormals, matters for fp16's small gradients only), so if
// |a - c| <= atol + rtol |c| before, then after
//   |H(a) - c| <= u |a| + eta + |a - c| <= (1 + u) atol + eta + (rtol (1 + u) + u) |c|,
// applied once per rounding on the path from the fp32 values to the stored result. The values
// compared under these tolerances stay far below fp16's overflow (65504).
// (fp32 storage, T = float: no rounding, the base itself.)
template <typename T>
constexpr Tol after_roundings(Tol base, int roundings) {
  if constexpr (!std::is_same_v<T, float>) {
    constexpr double u = Rounding<T>::u;
    for (int i = 0; i < roundings; ++i) {
      base.rtol = base.rtol * (1 + u) + u;
      base.atol_rel = base.atol_rel * (1 + u);
      base.atol = base.atol * (1 + u) + Rounding<T>::eta;
    }
  }
  return base;
}

// 16-bit GEMMs on the tensor cores: products of bf16 or fp16 values are exact in fp32 (16 or 22
// significant bits), so only the k-term fp32 sums differ from OpenBLAS's. Tensor-core fp32
// accumulation aligns and truncates rather than rounds (Fasi et al., "Numerical behavior of
// NVIDIA tensor cores", PeerJ CS 2021): up to an ulp of the accumulator per MMA step (16 terms),
// ~k/16 * 2^-23 of the partial sums' size; for k = 768 that is ~6e-6 of a typical output and
// ~1e-6 of the largest. 5e-5 leaves a margin of ~10 for the order of the sums (split-k) without
// hiding an index error (O(1)).
constexpr Tol kHalfGemmFp32Sums{5e-5, 5e-5};

// The tensor-core attention (cuda_tc_attention_test.cpp), not yet calibrated on a GPU. Beyond the
// CUDA-core kernels' error (the fp32 tolerance plus the rounding of the output), the tensor cores
// take P (forward, dV) and dS (dK, dQ) rounded to H: each term of a k-sum moves by at most u |term|
// (bf16 u = 2^-8, fp16 u = 2^-11), so a sum moves by u times the sum of |terms|, bounded here by a
// few times the largest |result| (rows see few keys, or weights summing to 1). A wrong index, mask
// or head mapping misses these by O(1).
template <typename H>
struct TcTol {
  static constexpr double u = Rounding<H>::u;
  static constexpr Tol core_out = after_roundings<H>(kAttnForward, 1);
  static constexpr Tol core_grad = after_roundings<H>(kAttnBackward, 1);
  static constexpr Tol out{core_out.rtol + u, core_out.atol_rel + 2 * u, core_out.atol};
  static constexpr Tol grad{core_grad.rtol + 2 * u, core_grad.atol_rel + 4 * u, core_grad.atol};
  // lse is fp32 from fp32 tensor-core sums of exact products (kHalfGemmFp32Sums' argument).
  static constexpr Tol lse{kAttnForward.rtol + kHalfGemmFp32Sums.rtol,
                           kAttnForward.atol_rel + kHalfGemmFp32Sums.atol_rel};
  // The two GPU kernels each within their tolerance of the CPU's: within the sum of each other.
  static constexpr Tol agree_out{out.rtol + core_out.rtol, out.atol_rel + core_out.atol_rel,
                                 out.atol + core_out.atol};
  static constexpr Tol agree_grad{grad.rtol + core_grad.rtol, grad.atol_rel + core_grad.atol_rel,
                                  grad.atol + core_grad.atol};
  static constexpr Tol agree_lse{lse.rtol + kAttnForward.rtol,
                                 lse.atol_rel + kAttnForward.atol_rel};
};

// A GPU result against the CPU's: all_close with tol.atol folded into its floor relative to
// the largest |cpu value| (all_close takes that as at least 1e-30, so the floor is tol.atol even
// where every expected value is 0: the backward at one token, whose dk is rounding noise).
inline ::testing::AssertionResult close_to_cpu(const std::vector<float>& gpu,
                                               const std::vector<float>& cpu, Tol tol) {
  double scale = 0.0;
  for (float c : cpu) scale = std::max(scale, std::fabs(static_cast<double>(c)));
  const double atol_rel = tol.atol_rel + tol.atol / std::max(scale, 1e-30);
  return all_close(gpu, to_double(cpu), tol.rtol, atol_rel);
}

}  // namespace mds::test
