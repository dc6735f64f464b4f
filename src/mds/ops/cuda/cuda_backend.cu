// The CUDA backend: device memory from the caching allocator (ops/cuda/allocator.h), copies
// with cudaMemcpy*Async on the legacy default stream (cudaMemcpyDefault within the device: with
// unified addressing a host source, such as a pipeline's receive buffer, works too), and the
// kernels of ops/cuda/ops_cuda.h enqueued on that stream. Host-valued results synchronise: sum
// downloads the n values and adds them in index order, as the CPU does, so both devices sum a loss
// the same way. The bf16 methods hand mds::bf16 buffers (core/bf16.h, the same 16 bits) to the
// __nv_bfloat16 kernels by a reinterpret_cast.
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

// mds::bf16 (the Backend's storage type) and __nv_bfloat16 (the kernels') are both the 16 bits
// of a bfloat16: the same size and alignment, and no conversion at the boundary.
static_assert(sizeof(mds::bf16) == sizeof(__nv_bfloat16) &&
              alignof(mds::bf16) == alignof(__nv_bfloat16));
inline bf16* dev(mds::bf16* p) {
  return reinterpret_cast<bf16*>(p);
}
inline const bf16* dev(const mds::bf16* p) {
  return reinterpret_cast<const bf16*>(p);
}

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda; }

  void* allocate(size_t bytes) override {
    return bytes ? CachingAllocator::instance().allocate(bytes) : nullptr;
  }
  // The caching allocator reuses a block at once: wait for the kernels that may still use it.
  void release(void* p) override {
    if (!p) return;
    MDS_CUDA_CHECK(cudaStreamSynchronize(kStream));
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

  void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k,
                      int64_t n) override {
    cuda::linear_forward(y, x, w, m, k, n, kStream);
  }
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                       int64_t m, int64_t k, int64_t n, bool accumulate_dx) override {
    cuda::linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx, kStream);
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                       float eps) override {
    cuda::rmsnorm_forward(y, rstd, x, w, n, h, eps, kStream);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                        const float* rstd, int64_t n, int64_t h) override {
    cuda::rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h, kStream);
  }
  void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                                const float* r, const float* w, int64_t n, int64_t h,
                                float eps) override {
    cuda::rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps, kStream);
  }
  void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                                 const float* resid_out, const float* w, const float* rstd,
                                 int64_t n, int64_t h) override {
    cuda::rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h, kStream);
  }
  void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                         int64_t qkv_stride, int64_t out_stride) override {
    cuda::attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, kStream);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                          const float* lse, const float* q, const float* k, const float* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride) override {
    cuda::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                             out_stride, kStream);
  }
  void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f) override {
    cuda::swiglu_forward(h, gu, n, f, kStream);
  }
  void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n,
                       int64_t f) override {
    cuda::swiglu_backward(dgu, dh, gu, n, f, kStream);
  }
  void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_forward(x, ids, table, n, h, vocab_begin, rows, kStream);
  }
  void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows, kStream);
  }
  void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    cuda::cross_entropy_forward(losses, logits, targets, n, vpad, vocab, kStream);
  }
  void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    cuda::cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab, dscale,
                                         kStream);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    cuda::cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab,
                                  kStream);
  }
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
  void add_inplace(float* y, const float* x, int64_t n) override {
    cuda::add_inplace(y, x, n, kStream);
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

  // ---- bf16 (ops_cuda.h's overloads) ---------------------------------------------------------
  void linear_forward(mds::bf16* y, const mds::bf16* x, const mds::bf16* w, int64_t m, int64_t k,
                      int64_t n) override {
    cuda::linear_forward(dev(y), dev(x), dev(w), m, k, n, kStream);
  }
  void linear_backward(mds::bf16* dx, float* dw, const mds::bf16* dy, const mds::bf16* x,
                       const mds::bf16* w, int64_t m, int64_t k, int64_t n,
                       bool accumulate_dx) override {
    cuda::linear_backward(dev(dx), dw, dev(dy), dev(x), dev(w), m, k, n, accumulate_dx, kStream);
  }
  void rmsnorm_forward(mds::bf16* y, float* rstd, const mds::bf16* x, const mds::bf16* w, int64_t n,
                       int64_t h, float eps) override {
    cuda::rmsnorm_forward(dev(y), rstd, dev(x), dev(w), n, h, eps, kStream);
  }
  void rmsnorm_backward(mds::bf16* dx, float* dw, const mds::bf16* dy, const mds::bf16* x,
                        const mds::bf16* w, const float* rstd, int64_t n, int64_t h) override {
    cuda::rmsnorm_backward(dev(dx), dw, dev(dy), dev(x), dev(w), rstd, n, h, kStream);
  }
  void rmsnorm_residual_forward(mds::bf16* y, mds::bf16* resid_out, float* rstd, const mds::bf16* x,
                                const mds::bf16* r, const mds::bf16* w, int64_t n, int64_t h,
                                float eps) override {
    cuda::rmsnorm_residual_forward(dev(y), dev(resid_out), rstd, dev(x), dev(r), dev(w), n, h, eps,
                                   kStream);
  }
  void rmsnorm_residual_backward(mds::bf16* dsum, float* dw, const mds::bf16* dy,
                                 const mds::bf16* dresid, const mds::bf16* resid_out,
                                 const mds::bf16* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    cuda::rmsnorm_residual_backward(dev(dsum), dw, dev(dy), dev(dresid), dev(resid_out), dev(w),
                                    rstd, n, h, kStream);
  }
  void rope_forward(mds::bf16* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_forward(dev(x), cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void rope_backward(mds::bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    cuda::rope_backward(dev(dx), cos, sin, b, s, heads, hd, row_stride, pos0, kStream);
  }
  void attention_forward(mds::bf16* out, float* lse, const mds::bf16* q, const mds::bf16* k,
                         const mds::bf16* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                         int64_t hd, int64_t qkv_stride, int64_t out_stride) override {
    cuda::attention_forward(dev(out), lse, dev(q), dev(k), dev(v), b, s, nq, nkv, hd, qkv_stride,
                            out_stride, kStream);
  }
  void attention_backward(mds::bf16* dq, mds::bf16* dk, mds::bf16* dv, const mds::bf16* dout,
                          const mds::bf16* out, const float* lse, const mds::bf16* q,
                          const mds::bf16* k, const mds::bf16* v, int64_t b, int64_t s, int64_t nq,
                          int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    cuda::attention_backward(dev(dq), dev(dk), dev(dv), dev(dout), dev(out), lse, dev(q), dev(k),
                             dev(v), b, s, nq, nkv, hd, qkv_stride, out_stride, kStream);
  }
  void swiglu_forward(mds::bf16* h, const mds::bf16* gu, int64_t n, int64_t f) override {
    cuda::swiglu_forward(dev(h), dev(gu), n, f, kStream);
  }
  void swiglu_backward(mds::bf16* dgu, const mds::bf16* dh, const mds::bf16* gu, int64_t n,
                       int64_t f) override {
    cuda::swiglu_backward(dev(dgu), dev(dh), dev(gu), n, f, kStream);
  }
  void embedding_forward(mds::bf16* x, const int32_t* ids, const mds::bf16* table, int64_t n,
                         int64_t h, int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_forward(dev(x), ids, dev(table), n, h, vocab_begin, rows, kStream);
  }
  void embedding_backward(float* dtable, const mds::bf16* dx, const int32_t* ids, int64_t n,
                          int64_t h, int64_t vocab_begin, int64_t rows) override {
    cuda::embedding_backward(dtable, dev(dx), ids, n, h, vocab_begin, rows, kStream);
  }
  void cross_entropy_forward(float* losses, const mds::bf16* logits, const int32_t* targets,
                             int64_t n, int64_t vpad, int64_t vocab) override {
    cuda::cross_entropy_forward(losses, dev(logits), targets, n, vpad, vocab, kStream);
  }
  void cross_entropy_forward_backward(float* losses, mds::bf16* dlogits, const mds::bf16* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    cuda::cross_entropy_forward_backward(losses, dev(dlogits), dev(logits), targets, n, vpad, vocab,
                                         dscale, kStream);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const mds::bf16* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    cuda::cross_entropy_local_max(row_max, target_logit, dev(logits), targets, n, cols, col_begin,
                                  vocab, kStream);
  }
  void cross_entropy_local_sum_exp(double* sum_exp, const mds::bf16* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    cuda::cross_entropy_local_sum_exp(sum_exp, dev(logits), row_max, n, cols, col_begin, vocab,
                                      kStream);
  }
  void cross_entropy_finish(float* losses, mds::bf16* dlogits, const mds::bf16* logits,
                            const float* row_max, const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    cuda::cross_entropy_finish(losses, dev(dlogits), dev(logits), row_max, sum_exp, target_logit,
                               targets, n, cols, col_begin, vocab, dscale, kStream);
  }
  void add_inplace(mds::bf16* y, const mds::bf16* x, int64_t n) override {
    cuda::add_inplace(dev(y), dev(x), n, kStream);
  }
  void to_bf16(mds::bf16* y, const float* x, int64_t n) override {
    cuda::to_bf16(dev(y), x, n, kStream);
  }
  void to_fp32(float* y, const mds::bf16* x, int64_t n) override {
    cuda::to_fp32(y, dev(x), n, kStream);
  }
  void adamw_step(float* p, mds::bf16* p_bf16, const float* g, float* m, float* v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    cuda::adamw_step(p, dev(p_bf16), g, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                     grad_scale, kStream);
  }
};

}  // namespace

Backend& backend() {
  static CudaBackend b;
  return b;
}

}  // namespace mds::ops::cuda
