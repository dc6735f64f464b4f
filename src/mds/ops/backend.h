// Where a model's buffers live and its kernels run: the CPU (OpenBLAS + OpenMP, the reference)
// or a CUDA GPU (ops/cuda, kernels enqueued in order on one compute stream). The layers call
// the kernels of ops.h through this interface, with the same names, arguments and semantics
// (ops.h documents each), on pointers into the backend's memory (core/buffer.h); so one model
// code runs on either device.
//
// Memory calls move bytes within the device, or between it and the host (upload, download:
// these return once the host side may be reused or read). A kernel returns once its work is
// ordered after everything enqueued before it; synchronize() waits for all of it. Functions
// returning a host value (sum, sum_squares, any_non_finite) synchronise.
//
// Every kernel comes in fp32 and, for mixed precision, on bf16 and fp16 storage (ops/kernels.h;
// the CPU runs the 16-bit ones as a reference: ops/cpu/half_reference.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mds/ops/kernels.h"

namespace mds::ops {

enum class Device { cpu, cuda };
const char* device_name(Device d);  // "cpu", "cuda"

class Backend : public KernelSet<float, bf16, fp16>, public MixedKernelSet<bf16, fp16> {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- Memory of this device ------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;  // never null for bytes > 0; throws when full
  virtual void release(void* p) = 0;         // null is ignored
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // `rows` pieces of `width` bytes, read every src_pitch bytes, written every dst_pitch bytes.
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                       size_t rows) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Bytes allocated through this backend and not yet released, and the most at any time (the
  // CUDA backend counts its caching allocator's size classes).
  struct MemoryStats {
    int64_t current = 0, peak = 0;
  };
  virtual MemoryStats memory_stats() const = 0;

  // ---- fp32-only kernels (ops.h); the rest come from KernelSet and MixedKernelSet -------
  // Cross entropy pass 2 keeping the exponentials (exps, may be null), and the finish that
  // turns them into dlogits.
  virtual void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                           const float* row_max, int64_t n, int64_t cols,
                                           int64_t col_begin, int64_t vocab) = 0;
  virtual void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                                    const double* sum_exp, const float* target_logit,
                                    const int32_t* targets, int64_t n, int64_t cols,
                                    int64_t col_begin, float dscale) = 0;
  virtual double sum(const float* x, int64_t n) = 0;  // in double, in index order on the CPU
  virtual double sum_squares(const float* x, int64_t n) = 0;
  virtual void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, int64_t step,
                          float grad_scale) = 0;
  virtual bool any_non_finite(const float* x, int64_t n) = 0;  // any inf or NaN (ops.h)
  using MixedKernelSet::adamw_step;
  using MixedKernelSet::cross_entropy_finish;
  using MixedKernelSet::cross_entropy_local_sum_exp;
};

// The CPU backend (always there).
Backend& cpu_backend();

// The backend of `device`. For cuda: a UserError when this build has no CUDA backend or no
// GPU is visible.
Backend& backend_for(Device device);
// Whether backend_for(cuda) would succeed: built with CUDA and a GPU visible.
bool cuda_available();

}  // namespace mds::ops
