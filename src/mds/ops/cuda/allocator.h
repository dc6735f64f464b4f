// Device memory for the CUDA backend: a caching allocator and an owning buffer.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, far too much
// per tensor per step. The allocator rounds each request up to a size class (powers of two from
// 512 B, then multiples of 2 MiB above 2 MiB so large tensors waste little), keeps freed blocks
// on a free list per class and hands them out again; cudaFree happens only in release_cached().
// It counts the bytes handed out (current, peak) and the bytes held from the driver (reserved).
//
// MDS_NO_CUDA_MEMORY_CACHING=1 (as PyTorch's PYTORCH_NO_CUDA_MEMORY_CACHING) turns the cache
// off: each allocation is its own cudaMalloc of exactly the bytes asked for, and free is
// cudaFree, so that compute-sanitizer's memcheck (and the CPU emulator's guard pages,
// tests/cuda_emu) see an access past a buffer's end rather than into the rest of its block. The
// counters still count size classes, so memory reports read the same either way.
//
// Stream semantics: a freed block may be reused at once. That is safe when every use of it was
// enqueued on one stream that the next user also uses (the stream orders the accesses), which
// is how the backend runs today (one compute stream). A block used on a second stream must be
// synchronised before it is freed; per-stream pools come with the communication stream.
// Thread-safe (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace mds::ops::cuda {

struct MemoryStats {
  size_t current = 0;   // bytes handed out and not yet freed (rounded to size classes)
  size_t peak = 0;      // the largest `current` seen since the last reset_peak()
  size_t reserved = 0;  // bytes held from cudaMalloc: in use plus cached
};

class CachingAllocator {
 public:
  static CachingAllocator& instance();  // the process-wide allocator

  void* allocate(size_t bytes);  // never null; throws mds::InternalError when the device is full
  void free(void* ptr);          // returns the block to its free list (null is ignored)
  void release_cached();         // cudaFree every cached block (e.g. before a big allocation)
  MemoryStats stats() const;
  void reset_peak();

  static size_t size_class(size_t bytes);
  bool caching() const { return caching_; }  // false under MDS_NO_CUDA_MEMORY_CACHING=1

  ~CachingAllocator();

 private:
  CachingAllocator();
  void release_cached_locked();  // mu_ held
  bool caching_ = true;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::unordered_map<void*, size_t> live_;               // handed-out block -> size class
  MemoryStats stats_;
};

// An owning, move-only array of T in device memory from the caching allocator.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count)
      : ptr_(count ? static_cast<T*>(CachingAllocator::instance().allocate(count * sizeof(T)))
                   : nullptr),
        count_(count) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_) {
    o.ptr_ = nullptr, o.count_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = o.ptr_, count_ = o.count_;
      o.ptr_ = nullptr, o.count_ = 0;
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  void reset() {
    CachingAllocator::instance().free(ptr_);
    ptr_ = nullptr, count_ = 0;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace mds::ops::cuda
