// The CUDA backend: device memory from the caching allocator (ops/cuda/allocator.h), copies
// with cudaMemcpy*Async on the legacy default stream (cudaMemcpyDefault within the device: with
// unified addressing a host source, such as a pipeline's receive buffer, works too), and the
// kernels of ops/cuda/ops_cuda.h enqueued on that stream. Host-valued results synchronise: sum
// downloads the n values and adds them in index order, as the CPU does, so both devices sum a loss
// the same way. The 16-bit methods hand mds::bf16 and mds::fp16 buffers (the same 16 bits) to the
// __nv_bfloat16 and __half kernels by a reinterpret_cast.
#include <cuda_runtime_api.h>

#include <vector>

#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/cuda_backend.h"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

int device_count(std::string* name) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error for the caller
    return 0;
  }
  if (count > 0 && name) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) *name = prop.name;
  }
  return count;
}

namespace {

constexpr cudaStream_t kStream = 0;  // the legacy default stream

// mds::bf16 and mds::fp16 (the Backend's storage types) are the 16 bits of __nv_bfloat16 and
// __half (the kernels'): the same size and alignment, and no conversion at the boundary.
static_assert(sizeof(mds::bf16) == sizeof(__nv_bfloat16) &&
              alignof(mds::bf16) == alignof(__nv_bfloat16));
static_assert(sizeof(mds::fp16) == sizeof(__half) && alignof(mds::fp16) == alignof(__half));
inline float* dev(float* p) {
  return p;
}
inline const float* dev(const float* p) {
  return p;
}
inline __nv_bfloat16* dev(mds::bf16* p) {
  return reinterpret_cast<__nv_bfloat16*>(p);
}
inline const __nv_bfloat16* dev(const mds::bf16* p) {
  return reinterpret_cast<const __nv_bfloat16*>(p);
}
inline __half* dev(mds::fp16* p) {
  return reinterpret_cast<__half*>(p);
}
inline const __half* dev(const mds::fp16* p) {
  return reinterpret_cast<const __half*>(p);
}

class CudaMemory : public Backend {
 public:
  Device device() const override { return Device::cuda; }

  void* allocate(size_t bytes) override {
    return bytes ? CachingAllocator::instance().allocate(bytes) : nullptr;
  }
  // The caching allocator reuses a block at once: wait for the kernels that may still use it.
  // Never throws (Buffer's destructor is noexcept): a failing sync means the context is already
  // broken, and the call that broke it reports that.
  void release(void* p) override {
    if (!p) return;
    (void)cudaStreamSynchronize(kStream);
    CachingAllocator::instance().free(p);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) MDS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, kStream));
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    if (width && rows)
      MDS_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                       cudaMemcpyDefault, kStream));
  }
  void zero(void* p, size_t bytes) override {
    if (bytes) MDS_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, kStream));
  }
  void upload(void* dst, const void* host, size_t bytes) override {
    if (!bytes) return;
    MDS_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, kStream));
    MDS_CUDA_CHECK(cudaStreamSynchronize(kStream));  // the host buffer may be reused now
  }
  void download(void* host, const void* src, size_t bytes) override {
    if (!bytes) return;
    MDS_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, kStream));
    MDS_CUDA_CHECK(cudaStreamSynchronize(kStream));
  }
  void synchronize() override { MDS_CUDA_CHECK(cudaStreamSynchronize(kStream)); }
  MemoryStats memory_stats() const override {
    const cuda::MemoryStats s = CachingAllocator::instance().stats();
    return {int64_t(s.current), int64_t(s.peak)};
  }
};

// The kernels of Kernels<T> and MixedKernels<H> (ops_cuda.h's overloads), on the one stream. Each
// mixin overrides one storage type's methods; the using-declarations keep the other types'
// overloads (from Base) visible beside them rather than hidden.
template <typename Base, typename T>
class CudaKernels : public Base {
 public:
  using Base::add_inplace;
  using Base::attention_backward;
  using Base::attention_forward;
  using Base::cross_entropy_forward;
  using Base::cross_entropy_forward_backward;
  using Base::cross_entropy_local_max;
  using Base::embedding_backward;
  using Base::embedding_forward;
  using Base::linear_backward;
  using Base::linear_forward;
  using Base::rmsnorm_backward;
  using Base::rmsnorm_forward;
  using Base::rmsnorm_residual_backward;
  using Base::rmsnorm_residual_forward;
  using Base::rope_backward;
  using Base::rope_forward;
  using Base::swiglu_backward;
  using Base::swiglu_forward;

  void linear_forward(T* y, const T* x, const T* w, int64_t m, int64_t k, int64_t n) override {
    cuda::linear_forward(dev(y), dev(x), dev(w), m, k, n, kStream);
  }
  void linear_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx) override {
    cuda::linear_backward(dev(dx), dw, dev(dy), dev(x), dev(w), m, k, n, accumulate_dx, kStream);
  }
  void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t n, int64_t h,
                       float eps) override {
    cuda::rmsnorm_forward(dev(y), rstd, dev(x), dev(w), n, h, eps, kStream);
  }
  void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd,
                        int64_t n, int64_t h) override {
    cuda::rmsnorm_backward(dev(dx), dw, dev(dy), dev(x), dev(w), rstd, n, h, kStream);
  }
  void rmsnorm_residual_forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w,
                                int64_t n, int64_t h, float eps) override {
    cuda::rmsnorm_residual_forward(dev(y), dev(resid_out), rstd, dev(x), dev(r), dev(w), n, h, eps,
                                   kStream);
  }
  void rmsnorm_residual_backward(T* dsum, float* dw, const T* dy, const T* dresid,
                                 const T* resid_out, const T* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    cuda::rmsnorm_residual_backward(dev(dsum), dw, dev(dy), dev(dresid), dev(resid_out), dev(w),
                                    rstd, n, h, kStream);
  }
  void rope_forward(T* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                    int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_forward(dev(x), cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void rope_backward(T* dx, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                     int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_backward(dev(dx), cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                         int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                         int64_t out_stride) override {
    cuda::attention_forward(dev(out), lse, dev(q), dev(k), dev(v), b, s, nq, nkv, hd, qkv_stride,
                            out_stride, kStream);
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse,
                          const T* q, const T* k, const T* v, int64_t b, int64_t s, int64_t nq,
                          int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    cuda::attention_backward(dev(dq), dev(dk), dev(dv), dev(dout), dev(out), lse, dev(q), dev(k),
                             dev(v), b, s, nq, nkv, hd, qkv_stride, out_stride, kStream);
  }
  void swiglu_forward(T* h, const T* gu, int64_t n, int64_t f) override {
    cuda::swiglu_forward(dev(h), dev(gu), n, f, kStream);
  }
  void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) override {
    cuda::swiglu_backward(dev(dgu), dev(dh), dev(gu), n, f, kStream);
  }
  void embedding_forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_forward(dev(x), ids, dev(table), n, h, vocab_begin, rows, kStream);
  }
  void embedding_backward(float* dtable, const T* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_backward(dtable, dev(dx), ids, n, h, vocab_begin, rows, kStream);
  }
  void cross_entropy_forward(float* losses, const T* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    cuda::cross_entropy_forward(losses, dev(logits), targets, n, vpad, vocab, kStream);
  }
  void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    cuda::cross_entropy_forward_backward(losses, dev(dlogits), dev(logits), targets, n, vpad, vocab,
                                         dscale, kStream);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const T* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    cuda::cross_entropy_local_max(row_max, target_logit, dev(logits), targets, n, cols, col_begin,
                                  vocab, kStream);
  }
  void add_inplace(T* y, const T* x, int64_t n) override {
    cuda::add_inplace(dev(y), dev(x), n, kStream);
  }
};

template <typename Base, typename H>
class CudaMixedKernels : public CudaKernels<Base, H> {
 public:
  using Base::adamw_step;
  using Base::cross_entropy_finish;
  using Base::cross_entropy_local_sum_exp;
  using Base::to_fp32;
  using Base::to_half;

  void cross_entropy_local_sum_exp(double* sum_exp, const H* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    cuda::cross_entropy_local_sum_exp(sum_exp, dev(logits), row_max, n, cols, col_begin, vocab,
                                      kStream);
  }
  void cross_entropy_finish(float* losses, H* dlogits, const H* logits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    cuda::cross_entropy_finish(losses, dev(dlogits), dev(logits), row_max, sum_exp, target_logit,
                               targets, n, cols, col_begin, vocab, dscale, kStream);
  }
  void to_half(H* y, const float* x, int64_t n) override { cuda::to_half(dev(y), x, n, kStream); }
  void to_fp32(float* y, const H* x, int64_t n) override { cuda::to_fp32(y, dev(x), n, kStream); }
  void adamw_step(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    cuda::adamw_step(p, dev(p_half), g, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                     grad_scale, kStream);
  }
};

// The fp32 kernels, then bf16's and fp16's, each mixin over the previous.
using CudaAllKernels =
    CudaMixedKernels<CudaMixedKernels<CudaKernels<CudaMemory, float>, mds::bf16>, mds::fp16>;

class CudaBackend final : public CudaAllKernels {
 public:
  using CudaAllKernels::adamw_step;
  using CudaAllKernels::cross_entropy_finish;
  using CudaAllKernels::cross_entropy_local_sum_exp;

  void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                   const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    cuda::cross_entropy_local_sum_exp(sum_exp, exps, logits, row_max, n, cols, col_begin, vocab,
                                      kStream);
  }
  void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            float dscale) override {
    cuda::cross_entropy_finish(losses, dlogits, row_max, sum_exp, target_logit, targets, n, cols,
                               col_begin, dscale, kStream);
  }
  double sum(const float* x, int64_t n) override {
    std::vector<float> host(size_t(n > 0 ? n : 0));
    download(host.data(), x, host.size() * sizeof(float));
    double s = 0;
    for (float v : host) s += v;
    return s;
  }
  double sum_squares(const float* x, int64_t n) override {
    return cuda::sum_squares(x, n, kStream);
  }
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    cuda::adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale, kStream);
  }
  bool any_non_finite(const float* x, int64_t n) override {
    return cuda::any_non_finite(x, n, kStream);
  }
};

}  // namespace

Backend& backend() {
  static CudaBackend b;
  return b;
}

}  // namespace mds::ops::cuda
