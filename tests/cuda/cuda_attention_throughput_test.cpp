// Throughput of the 16-bit causal attention implementations (FA2 mma.sync, WMMA, CUDA cores) at a
// training shape: b 4, s 2048, 16 query heads on 8 kv heads, hd 128, the model's fused qkv rows.
// Prints forward and backward TFLOP/s (causal: forward 2 s^2 hd b nq flops for S and P V, halved;
// backward 2.5 times that, FlashAttention's convention, though the deterministic backward
// recomputes S and dP in its dq kernel) and asserts nothing: a measurement for the GPU session,
// disabled by default (tests/cuda/gpu_check.sh runs it with --gtest_also_run_disabled_tests).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds {
namespace {

// Mean milliseconds of run() over `iters` launches after two warm-up runs.
double time_ms(const std::function<void()>& run, int iters) {
  run();
  run();
  cudaEvent_t start, stop;
  MDS_CUDA_CHECK(cudaEventCreate(&start));
  MDS_CUDA_CHECK(cudaEventCreate(&stop));
  MDS_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < iters; ++i) run();
  MDS_CUDA_CHECK(cudaEventRecord(stop));
  MDS_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  MDS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  MDS_CUDA_CHECK(cudaEventDestroy(start));
  MDS_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / iters;
}

template <typename D>
void print_throughput(const char* type) {
  constexpr int64_t b = 4, s = 2048, nq = 16, nkv = 8, hd = 128;
  constexpr int64_t stride = (nq + 2 * nkv) * hd, out_stride = nq * hd;
  const size_t n = static_cast<size_t>(b * s * stride),
               n_out = static_cast<size_t>(b * s * out_stride);
  // Random 16-bit inputs (the values do not matter for the timing, only that they are finite).
  std::vector<float> host = test::randn(n, 7, 0.5f);
  auto qkv = test::to_device_half<test::HostHalf<D>>(host);
  auto dqkv = test::to_device_half<test::HostHalf<D>>(host);
  auto dout = test::to_device_half<test::HostHalf<D>>(test::randn(n_out, 8, 0.5f));
  ops::cuda::DeviceBuffer<D> out(n_out);
  ops::cuda::DeviceBuffer<float> lse(static_cast<size_t>(b * nq * s));
  const D* q = qkv.data();
  const D* k = q + nq * hd;
  const D* v = k + nkv * hd;
  D* dq = dqkv.data();
  D* dk = dq + nq * hd;
  D* dv = dk + nkv * hd;
  const double fwd_flops = 4.0 * b * nq * s * s * hd / 2;
  struct Impl {
    const char* name;
    int iters;  // timed launches (the CUDA-core kernels are slow)
    void (*fwd)(D*, float*, const D*, const D*, const D*, int64_t, int64_t, int64_t, int64_t,
                int64_t, int64_t, int64_t, cudaStream_t);
    void (*bwd)(D*, D*, D*, const D*, const D*, const float*, const D*, const D*, const D*, int64_t,
                int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
  };
  const Impl impls[] = {
      {"mma", 10, &ops::cuda::attention_forward_mma, &ops::cuda::attention_backward_mma},
      {"wmma", 10, &ops::cuda::attention_forward_tc, &ops::cuda::attention_backward_tc},
      {"cuda-core", 2, &ops::cuda::attention_forward_cuda_core,
       &ops::cuda::attention_backward_cuda_core},
  };
  for (const Impl& impl : impls) {
    const int iters = impl.iters;
    const double f_ms = time_ms(
        [&] {
          impl.fwd(out.data(), lse.data(), q, k, v, b, s, nq, nkv, hd, stride, out_stride, 0);
        },
        iters);
    const double b_ms = time_ms(
        [&] {
          impl.bwd(dq, dk, dv, dout.data(), out.data(), lse.data(), q, k, v, b, s, nq, nkv, hd,
                   stride, out_stride, 0);
        },
        iters);
    std::printf(
        "attention %s %-9s b%ld s%ld nq%ld nkv%ld hd%ld: forward %7.3f ms %6.1f TFLOP/s, "
        "backward %7.3f ms %6.1f TFLOP/s\n",
        type, impl.name, b, s, nq, nkv, hd, f_ms, fwd_flops / f_ms * 1e-9, b_ms,
        2.5 * fwd_flops / b_ms * 1e-9);
  }
  MDS_CUDA_CHECK(cudaDeviceSynchronize());
}

class AttentionThroughput : public test::CudaTest {};

TEST_F(AttentionThroughput, DISABLED_PrintsTflops) {
  print_throughput<__nv_bfloat16>("bf16");
  print_throughput<__half>("fp16");
}

}  // namespace
}  // namespace mds
