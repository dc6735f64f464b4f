// The caching allocator (see allocator.h): size-class free lists over cudaMalloc.
#include <cstdlib>
#include <cstring>

#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/allocator.h"

namespace mds::ops::cuda {

CachingAllocator& CachingAllocator::instance() {
  // Never destroyed: buffers in static objects may be freed after main() returns, and the CUDA
  // runtime may be torn down by then, so the cached blocks are left to the driver at exit.
  static auto* a = new CachingAllocator();
  return *a;
}

CachingAllocator::CachingAllocator() {
  const char* off = std::getenv("MDS_NO_CUDA_MEMORY_CACHING");
  caching_ = !(off && std::strcmp(off, "1") == 0);
}

size_t CachingAllocator::size_class(size_t bytes) {
  constexpr size_t kMin = 512, kLarge = size_t{2} << 20;
  if (bytes <= kMin) return kMin;
  if (bytes > kLarge) return (bytes + kLarge - 1) / kLarge * kLarge;
  size_t c = kMin;
  while (c < bytes) c <<= 1;
  return c;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  auto it = free_.find(cls);
  if (caching_ && it != free_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    const size_t asked = caching_ ? cls : bytes;
    cudaError_t err = cudaMalloc(&ptr, asked);
    if (err == cudaErrorMemoryAllocation) {  // give the cache back to the driver and retry once
      (void)cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&ptr, asked);
    }
    if (err != cudaSuccess)
      throw InternalError(strfmt("cudaMalloc of {} bytes failed: {} (in use {}, reserved {})",
                                 asked, cudaGetErrorString(err), stats_.current, stats_.reserved));
    stats_.reserved += cls;
  }
  live_[ptr] = cls;
  stats_.current += cls;
  if (stats_.current > stats_.peak) stats_.peak = stats_.current;
  return ptr;
}

void CachingAllocator::free(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  MDS_ASSERT(it != live_.end(), "CachingAllocator::free of a pointer it did not allocate");
  stats_.current -= it->second;
  if (caching_) {
    free_[it->second].push_back(ptr);
  } else {
    // cudaFree waits for the kernels that may still use the block. A failure is not thrown
    // (Buffer's destructor calls this): the context is broken, and the next checked call says so.
    stats_.reserved -= it->second;
    (void)cudaFree(ptr);
  }
  live_.erase(it);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

// Each block leaves its list before cudaFree, so a failing call (a broken context) leaves no
// freed pointer behind to be handed out or freed again.
void CachingAllocator::release_cached_locked() {
  for (auto& [cls, blocks] : free_)
    while (!blocks.empty()) {
      void* p = blocks.back();
      blocks.pop_back();
      stats_.reserved -= cls;
      MDS_CUDA_CHECK(cudaFree(p));
    }
  free_.clear();
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.current;
}

CachingAllocator::~CachingAllocator() = default;

}  // namespace mds::ops::cuda
