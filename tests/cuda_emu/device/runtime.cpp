// The emulated device behind shim/cuda_runtime_api.h: one H100-like GPU whose memory is host
// memory and whose streams run their work at once, on the calling thread, in call order.
//
// What it checks as the runtime would: launch configurations (threads per block, grid limits,
// dynamic shared memory above 48 KiB only after the kernel's opt-in), frees of pointers it did
// not allocate, events without timing asked for their time, and the sticky error: once a kernel
// fails (here: whatever the emulator reports, a race, a deadlock, a cp.async from outside device
// memory), every later call returns cudaErrorLaunchFailure, as a faulted context does.
// New allocations are filled with 0xFF bytes (NaN in fp32, bf16 and fp16), as cudaMalloc's
// memory is garbage, so a kernel that reads what nobody wrote shows NaN. Each allocation sits
// between two inaccessible pages, ending where the second begins (to the 256-byte alignment
// cudaMalloc gives): an access past either end faults, and the fault is reported as the
// out-of-bounds device access it is (compute-sanitizer's memcheck, roughly); the few bytes
// between the end and the guard page must still be 0xFF at cudaFree, or the write past the end
// is reported. With MDS_NO_CUDA_MEMORY_CACHING=1 (ops/cuda/allocator.h) every buffer is its own
// allocation, so this holds per buffer.
//
// The default MDS_NCCL_LIBRARY is the emulated NCCL, libnccl-emu.so (device/nccl.cpp).
// Environment: MDS_EMU_DEVICES=N makes N devices visible (default 1; each process has its own
// memory whichever it selects), so that several processes on one host may each take one, as the
// trainer requires of GPU processes; MDS_EMU_SHUFFLE_SEED=N runs each block's threads in a random
// order (emu.h's Options::shuffle_seed), MDS_EMU_DEFERRED_COPIES=1 lands cp.async data at its wait.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "cuda_runtime_api.h"
#include "emu.h"

struct CUstream_st {
  unsigned flags = 0;
};
struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};

namespace {

constexpr size_t kTotalMemory = size_t{80} << 30;
constexpr size_t kMaxAllocation = size_t{16} << 30;  // host memory: refuse what cannot be meant
constexpr size_t kDefaultSmem = 48 * 1024, kMaxSmem = 227 * 1024;

struct Device {
  std::recursive_mutex mutex;  // the emulator runs one kernel at a time
  cudaError_t last = cudaSuccess;
  cudaError_t sticky = cudaSuccess;
  struct Allocation {
    size_t bytes;
    unsigned char* base;  // the mapping: guard page, data pages, guard page
    size_t mapped;
  };
  std::map<const void*, Allocation> allocations;
  size_t allocated = 0;
  std::map<const void*, int> smem_opt_in;  // kernel -> cudaFuncAttributeMaxDynamicSharedMemorySize

  Device() {
    if (const char* s = std::getenv("MDS_EMU_SHUFFLE_SEED"))
      emu::options.shuffle_seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
    if (const char* s = std::getenv("MDS_EMU_DEFERRED_COPIES"))
      emu::options.deferred_copies = std::strcmp(s, "0") != 0;
  }
};

Device& device() {
  static auto* d = new Device();  // never destroyed: buffers in statics are freed after main
  return *d;
}

// A call's result: a sticky error wins; a new error is also the last error.
cudaError_t result(cudaError_t err = cudaSuccess) {
  Device& d = device();
  if (d.sticky != cudaSuccess) return d.sticky;
  if (err != cudaSuccess) d.last = err;
  return err;
}

bool is_device(const void* p, size_t bytes) {
  Device& d = device();
  auto it = d.allocations.upper_bound(p);
  if (it == d.allocations.begin()) return false;
  --it;
  const auto* base = static_cast<const unsigned char*>(it->first);
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= base && c + bytes <= base + it->second.bytes;
}

constexpr size_t kPage = 4096;

// A fault in a guard page is an out-of-bounds device access: say so, then die as a fault does.
void on_fault(int sig, siginfo_t* info, void*) {
  static const char msg[] =
      "CUDA emulator: an access outside device memory (a guard page beside an allocation): an "
      "out-of-bounds read or write by a kernel or a copy\n";
  (void)!write(2, msg, sizeof msg - 1);
  (void)info;
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_fault_report() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

}  // namespace

namespace {

int visible_devices() {
  static const int n = [] {
    const char* s = std::getenv("MDS_EMU_DEVICES");
    const int v = s ? std::atoi(s) : 1;
    return v > 0 ? v : 1;
  }();
  return n;
}
int current_device = 0;

#ifdef MDS_EMU_NCCL_LIBRARY
// Several processes on emulated devices talk through the emulated NCCL (device/nccl.cpp).
const bool nccl_is_the_emulators = [] {
  setenv("MDS_NCCL_LIBRARY", MDS_EMU_NCCL_LIBRARY, 0);
  return true;
}();
#endif

}  // namespace

cudaError_t cudaGetDeviceCount(int* count) {
  *count = visible_devices();
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
  if (dev < 0 || dev >= visible_devices()) return result(cudaErrorInvalidDevice);
  current_device = dev;
  return result();
}
cudaError_t cudaGetDevice(int* dev) {
  *dev = current_device;
  return result();
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev) {
  if (dev < 0 || dev >= visible_devices()) return result(cudaErrorInvalidDevice);
  *prop = {};
  std::snprintf(prop->name, sizeof prop->name, "NVIDIA H100 80GB HBM3 (CPU emulator)");
  prop->totalGlobalMem = kTotalMemory;
  prop->sharedMemPerBlock = kDefaultSmem;
  prop->sharedMemPerBlockOptin = kMaxSmem;
  prop->multiProcessorCount = 132;
  prop->major = 9, prop->minor = 0;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->l2CacheSize = 50 << 20;
  return result();
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::recursive_mutex> lock(device().mutex);
  *total_bytes = kTotalMemory;
  *free_bytes = kTotalMemory - device().allocated;
  return result();
}
cudaError_t cudaDeviceSynchronize() {
  return result();
}
cudaError_t cudaGetLastError() {
  Device& d = device();
  if (d.sticky != cudaSuccess) return d.sticky;
  const cudaError_t e = d.last;
  d.last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  Device& d = device();
  return d.sticky != cudaSuccess ? d.sticky : d.last;
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
  }
  return "unknown error";
}

// ---- Memory
// --------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  Device& d = device();
  std::lock_guard<std::recursive_mutex> lock(d.mutex);
  if (d.sticky != cudaSuccess) return d.sticky;
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  if (bytes > kMaxAllocation || d.allocated + bytes > kTotalMemory)
    return result(cudaErrorMemoryAllocation);
  install_fault_report();
  const size_t rounded = (bytes + 255) / 256 * 256;
  const size_t data = (rounded + kPage - 1) / kPage * kPage, mapped = data + 2 * kPage;
  void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return result(cudaErrorMemoryAllocation);
  auto* base = static_cast<unsigned char*>(m);
  mprotect(base, kPage, PROT_NONE);
  mprotect(base + kPage + data, kPage, PROT_NONE);
  std::memset(base + kPage, 0xFF, data);
  unsigned char* p = base + kPage + data - rounded;
  d.allocations[p] = {bytes, base, mapped};
  d.allocated += bytes;
  emu::map(p, bytes);
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  Device& d = device();
  std::lock_guard<std::recursive_mutex> lock(d.mutex);
  if (!ptr) return result();
  auto it = d.allocations.find(ptr);
  if (it == d.allocations.end()) return result(cudaErrorInvalidValue);
  const Device::Allocation a = it->second;
  d.allocated -= a.bytes;
  d.allocations.erase(it);
  emu::unmap(ptr);
  // The bytes of the data pages outside the allocation: untouched, or something wrote there.
  const auto* p = static_cast<const unsigned char*>(ptr);
  const unsigned char* data_end = a.base + a.mapped - kPage;
  const unsigned char* data_begin = a.base + kPage;
  const bool before = std::all_of(data_begin, p, [](unsigned char c) { return c == 0xFF; });
  const bool after = std::all_of(p + a.bytes, data_end, [](unsigned char c) { return c == 0xFF; });
  munmap(a.base, a.mapped);
  if (!before || !after) {
    std::fprintf(stderr, "CUDA emulator: a write %s the %zu bytes allocated at %p\n",
                 before ? "past the end of" : "before the start of", a.bytes, ptr);
    d.sticky = cudaErrorIllegalAddress;
  }
  return result();
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

// The kinds say which side is the device's: a device pointer that is not one is an error.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  Device& d = device();
  std::lock_guard<std::recursive_mutex> lock(d.mutex);
  if (d.sticky != cudaSuccess) return d.sticky;
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if ((dst_dev && !is_device(dst, bytes)) || (src_dev && !is_device(src, bytes)))
    return result(cudaErrorInvalidValue);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t height, cudaMemcpyKind kind, cudaStream_t s) {
  if (width > dst_pitch || width > src_pitch) return result(cudaErrorInvalidValue);
  for (size_t r = 0; r < height; ++r) {
    const cudaError_t e =
        cudaMemcpyAsync(static_cast<unsigned char*>(dst) + r * dst_pitch,
                        static_cast<const unsigned char*>(src) + r * src_pitch, width, kind, s);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  return cudaMemsetAsync(ptr, value, bytes, nullptr);
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  Device& d = device();
  std::lock_guard<std::recursive_mutex> lock(d.mutex);
  if (d.sticky != cudaSuccess) return d.sticky;
  if (bytes == 0) return cudaSuccess;
  if (!is_device(ptr, bytes)) return result(cudaErrorInvalidValue);
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

// ---- Streams and events -----------------------------------------------------------------------

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  *stream = new CUstream_st{flags};
  return result();
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
    return result(cudaErrorInvalidResourceHandle);
  delete stream;
  return result();
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return result();
}
cudaError_t cudaStreamQuery(cudaStream_t) {
  return result();  // the stream's work is done: it ran when it was enqueued
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned) {
  return result(event ? cudaSuccess : cudaErrorInvalidResourceHandle);
}
cudaError_t cudaLaunchHostFunc(cudaStream_t, cudaHostFn_t fn, void* user_data) {
  if (const cudaError_t e = result(); e != cudaSuccess) return e;
  fn(user_data);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  *event = new CUevent_st();
  (*event)->flags = flags;
  return result();
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return result(cudaErrorInvalidResourceHandle);
  delete event;
  return result();
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return result(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->at = std::chrono::steady_clock::now();
  return result();
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return result(event ? cudaSuccess : cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  return result(event ? cudaSuccess : cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start || !end || (start->flags & cudaEventDisableTiming) ||
      (end->flags & cudaEventDisableTiming))
    return result(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return result(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return result();
}

// ---- Kernels
// -------------------------------------------------------------------------------------

cudaError_t emu_func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  std::lock_guard<std::recursive_mutex> lock(device().mutex);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > kMaxSmem)
    return result(cudaErrorInvalidValue);
  device().smem_opt_in[kernel] = value;
  return result();
}

namespace emu_runtime {

void clear_sticky_error() {
  device().sticky = cudaSuccess;
  device().last = cudaSuccess;
}

cudaError_t run_kernel(const void* kernel, dim3 grid, unsigned threads, size_t smem_bytes,
                       void (*body)(void*), void* closure) {
  Device& d = device();
  std::lock_guard<std::recursive_mutex> lock(d.mutex);
  if (d.sticky != cudaSuccess) return d.sticky;
  size_t smem_limit = kDefaultSmem;
  if (auto it = d.smem_opt_in.find(kernel); it != d.smem_opt_in.end())
    smem_limit = std::max(smem_limit, static_cast<size_t>(it->second));
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return result(cudaErrorInvalidConfiguration);
  if (smem_bytes > smem_limit) return result(cudaErrorInvalidValue);
  if (threads % 32) {
    std::fprintf(stderr, "CUDA emulator: a block of %u threads (it runs whole warps only)\n",
                 threads);
    return result(cudaErrorInvalidConfiguration);
  }
  emu::errors = {};
  const std::function<void()> run = [&] { body(closure); };
  emu::launch({grid.x, grid.y, grid.z}, static_cast<int>(threads), smem_bytes, run);
  if (emu::errors.count == 0) return cudaSuccess;
  std::fprintf(stderr,
               "CUDA emulator: a kernel of grid (%u, %u, %u) x %u threads failed, %ld "
               "problem(s):\n",
               grid.x, grid.y, grid.z, threads, emu::errors.count);
  for (const std::string& line : emu::errors.first) std::fprintf(stderr, "  %s\n", line.c_str());
  d.sticky = cudaErrorLaunchFailure;
  return d.sticky;
}

}  // namespace emu_runtime
