// A contiguous array of T in the memory of one backend (ops/backend.h): the model's
// parameters, gradients, activations and scratch. Like std::vector in what the model uses
// (resize keeps the contents, capacity only grows, memory accounting reads capacity), but its
// elements may live on a GPU: resize leaves new elements uninitialised (zero() clears), and
// the element access below is for host memory only (CPU buffers; tests and checkpoints).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "mds/core/error.h"
#include "mds/ops/backend.h"

namespace mds {

template <typename T>
class Buffer {
 public:
  explicit Buffer(ops::Backend& backend = ops::cpu_backend(), int64_t n = 0) : backend_(&backend) {
    resize(n);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept
      : backend_(o.backend_),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      backend_->release(data_);
      backend_ = o.backend_;
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  ~Buffer() { backend_->release(data_); }

  ops::Backend& backend() const { return *backend_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t capacity() const { return capacity_; }
  int64_t bytes() const { return size_ * int64_t(sizeof(T)); }

  // Growing past the capacity reallocates (exactly n) and keeps the first size() elements.
  void resize(int64_t n) {
    MDS_ASSERT(n >= 0, "Buffer::resize({})", n);
    if (n > capacity_) {
      T* fresh = static_cast<T*>(backend_->allocate(size_t(n) * sizeof(T)));
      backend_->copy(fresh, data_, size_t(size_) * sizeof(T));
      backend_->release(data_);
      data_ = fresh;
      capacity_ = n;
    }
    size_ = n;
  }
  void zero() { backend_->zero(data_, size_t(size_) * sizeof(T)); }

  void upload(const T* host, int64_t n, int64_t offset = 0) {
    MDS_ASSERT(offset >= 0 && offset + n <= size_, "upload of {} at {} into {}", n, offset, size_);
    backend_->upload(data_ + offset, host, size_t(n) * sizeof(T));
  }
  std::vector<T> to_host() const {
    std::vector<T> host(static_cast<size_t>(size_));
    backend_->download(host.data(), data_, host.size() * sizeof(T));
    return host;
  }

  // Host memory only.
  T& operator[](int64_t i) { return host_data()[i]; }
  const T& operator[](int64_t i) const { return host_data()[i]; }
  T* begin() { return host_data(); }
  T* end() { return host_data() + size_; }
  const T* begin() const { return host_data(); }
  const T* end() const { return host_data() + size_; }
  bool operator==(const Buffer& o) const { return std::equal(begin(), end(), o.begin(), o.end()); }

 private:
  ops::Backend* backend_;
  T* data_ = nullptr;
  int64_t size_ = 0, capacity_ = 0;

  T* host_data() const {
    MDS_ASSERT(backend_->device() == ops::Device::cpu, "host access to a {} buffer",
               ops::device_name(backend_->device()));
    return data_;
  }
};

}  // namespace mds
