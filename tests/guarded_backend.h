// A CPU backend that behaves like device memory: every buffer it allocates is mapped PROT_NONE
// and opened (read-write) only for the duration of the backend's own calls. Model code that
// reads or writes a buffer from the host, which would crash on a GPU, crashes here too (SIGSEGV),
// so the CPU tests check that the model, the head, the optimizer and the gradient norm touch
// their memory only through the backend.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <new>

#include "mds/ops/cpu/cpu_backend.h"

namespace mds::test {

class GuardedBackend final : public ops::CpuBackend {
 public:
  GuardedBackend() = default;
  GuardedBackend(const GuardedBackend&) = delete;
  GuardedBackend& operator=(const GuardedBackend&) = delete;
  ~GuardedBackend() override {
    for (const auto& [p, len] : live_) munmap(p, len);
  }

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t page = size_t(sysconf(_SC_PAGESIZE)), len = (bytes + page - 1) / page * page;
    void* p = mmap(nullptr, len, open_ ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    live_[p] = len;
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    munmap(p, live_.at(p));
    live_.erase(p);
  }
  int64_t live_allocations() const { return int64_t(live_.size()); }
  MemoryStats memory_stats() const override {
    MemoryStats m;
    for (const auto& [p, len] : live_) m.current += int64_t(len);  // whole pages
    m.peak = m.current;
    return m;
  }

 protected:
  void enter() override { protect(PROT_READ | PROT_WRITE, true); }
  void leave() override { protect(PROT_NONE, false); }

 private:
  std::map<void*, size_t> live_;
  bool open_ = false;
  void protect(int prot, bool open) {
    for (const auto& [p, len] : live_) mprotect(p, len, prot);
    open_ = open;
  }
};

}  // namespace mds::test
