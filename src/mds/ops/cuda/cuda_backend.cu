// The CUDA backend: device memory from the caching allocator (ops/cuda/allocator.h), copies
// with cudaMemcpy*Async on the legacy default stream (cudaMemcpyDefault within the device: with
// unified addressing a host source, such as a pipeline's receive buffer, works too), and the
// kernels of ops/cuda/ops_cuda.h enqueued on that stream. Host-valued results synchronise: sum
// downloads the n values and adds them in index order, as the CPU does, so both devices sum a loss
// the same way.
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
};

}  // namespace

Backend& backend() {
  static CudaBackend b;
  return b;
}

}  // namespace mds::ops::cuda
