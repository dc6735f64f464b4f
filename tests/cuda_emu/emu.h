// A CPU emulator of the CUDA execution model the kernels in headers rely on (the attention ones:
// attention_mma*.cuh, attention_tc.cuh, attention_core.cuh, attention_d.cuh,
// attention_unfused_kernels.cuh; the small ones: rmsnorm.cuh, cross_entropy.cuh, swiglu.cuh, ...),
// so that their unmodified source (src/mds/ops/cuda/*.cuh) runs under g++ in CI, without nvcc or a
// GPU. shim/ maps the repo's common.cuh (conversions, dynamic shared memory, warp and block
// reductions) and mma.cuh (the PTX wrappers), and CUDA's <mma.h> (WMMA), onto it.
//
// What it emulates, and checks:
//   - a block as one fiber per thread, run by a scheduler on one OS thread, in thread order or
//     shuffled (Options::shuffle_seed); blocks of a grid run one after another. On x86-64 a switch
//     saves and restores only what the System V ABI has a call preserve (rbx, rbp, r12-r15, rsp,
//     the x87 control word and MXCSR), with no system call (glibc's swapcontext also saves the
//     signal mask: a sigprocmask per switch, which dominated); elsewhere the fibers are ucontext's;
//   - __syncthreads as a real barrier: every thread of the block must arrive; a kernel that ends
//     with threads still waiting, or where no thread can go on, is reported (deadlock);
//   - warp collectives (__shfl_xor_sync on float and double, __shfl_sync, __any_sync, __syncwarp,
//     ldmatrix, mma.sync, and shim/mma.h's WMMA operations): all 32 lanes must arrive, in the same
//     collective; the last to arrive computes the result for all of them;
//   - cp.async as per-thread commit groups whose data lands at the issue or, with
//     Options::deferred_copies, only at the cp.async.wait_group that retires the group;
//   - dynamic shared memory filled with 0xFF bytes (NaN in bf16 and fp16), and a per-byte race
//     detector over the barrier epochs: a read of a byte never written, or whose copy is not yet
//     waited for, or that another thread wrote since the last barrier; a write of a byte another
//     thread read or wrote since the last barrier. ldmatrix delivers each row to other lanes, so
//     its reads race even with the reading lane's own copies of the epoch.
//   - cp.async sources must lie in buffers registered with map() (a GPU would fault).
//
// What it does NOT emulate: the tensor cores' rounding (shim/mma.cuh sums with fp32 fmaf in k
// order; the hardware aligns and truncates), the GPU's exp2f / expf / logf (libm's are used),
// nvcc's FMA contraction (g++ decides its own), timing and occupancy, bank conflicts, global-memory
// races between blocks (blocks run one at a time), the memory model beyond the barrier and
// cp.async rules above, warp divergence inside a collective other than "a lane is missing", and
// plain shared-memory stores and loads, which the detector does not see: the mma kernels write
// shared memory only with cp.async (a plainly stored byte read through lds reads as
// uninitialised); the CUDA-core attention's tiles are plain, so there only the results show a
// missing barrier (the poisoned memory, a shuffled order). Statically declared __shared__ arrays
// (the block reductions' scratch) are function statics, below: neither poisoned nor checked.
#pragma once

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace emu {

struct Options {
  bool deferred_copies = false;  // cp.async data lands at the wait that retires its group
  uint32_t shuffle_seed = 0;     // 0: threads run in order; else a random order on every pass
};
inline Options options;

// Every violation the emulator found; the first few messages are kept.
struct Errors {
  long count = 0;
  std::vector<std::string> first;
};
inline Errors errors;

__attribute__((format(printf, 1, 2))) inline void report(const char* fmt, ...) {
  if (errors.count++ >= 8) return;
  char line[320];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  errors.first.emplace_back(line);
}

// Global buffers that cp.async may read: start -> bytes. A device allocation is mapped when made
// and unmapped when freed; mapping a start again keeps the larger size.
inline std::map<const unsigned char*, size_t> mapped;
inline void map(const void* p, size_t bytes) {
  size_t& n = mapped[static_cast<const unsigned char*>(p)];
  n = std::max(n, bytes);
}
template <typename T>
void map(const std::vector<T>& v) {
  map(v.data(), v.size() * sizeof(T));
}
// Removes the range that starts at p; false if none does.
inline bool unmap(const void* p) {
  return mapped.erase(static_cast<const unsigned char*>(p)) > 0;
}
inline bool is_mapped(const void* p, size_t n) {
  const auto c = static_cast<const unsigned char*>(p);
  const auto holds = [&](const auto& r) { return c >= r.first && c + n <= r.first + r.second; };
  const auto after = mapped.upper_bound(c);
  // The range starting last at or before c holds it, unless ranges overlap (a buffer and a part of
  // it, mapped both): then any range starting before may, looked for on this error path only.
  if (after != mapped.begin() && holds(*std::prev(after))) return true;
  return std::any_of(mapped.begin(), after, holds);
}

// ---- Fibers -------------------------------------------------------------------------------------

#if defined(__x86_64__)
// A fiber's context is its stack pointer: emu_fiber_switch pushes the callee-saved registers and
// the x87 control word and MXCSR on the stack it leaves (storing that stack pointer in *save_sp),
// and pops them off the one it enters. A new fiber's first switch returns into emu_fiber_start,
// which calls the function in r12; that function never returns (it switches away for good). Both
// sit in one COMDAT group, so every translation unit including this header may define them and the
// linker keeps one copy.
extern "C" __attribute__((visibility("hidden"))) void emu_fiber_switch(void** save_sp,
                                                                       void* load_sp) noexcept;
extern "C" __attribute__((visibility("hidden"))) void emu_fiber_start() noexcept;
asm(R"(
  .pushsection .text.emu_fiber_switch,"axG",@progbits,emu_fiber_switch,comdat
  .globl emu_fiber_switch
  .hidden emu_fiber_switch
  .type emu_fiber_switch, @function
  .p2align 4
emu_fiber_switch:
  .cfi_startproc
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbp, 0
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  pushq %r12
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r12, 0
  pushq %r13
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r13, 0
  pushq %r14
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r14, 0
  pushq %r15
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %r15, 0
  subq $16, %rsp
  .cfi_adjust_cfa_offset 16
  fnstcw (%rsp)
  stmxcsr 8(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  .cfi_adjust_cfa_offset -16
  popq %r15
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r15
  popq %r14
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r14
  popq %r13
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r13
  popq %r12
  .cfi_adjust_cfa_offset -8
  .cfi_restore %r12
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  popq %rbp
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbp
  ret
  .cfi_endproc
  .size emu_fiber_switch, .-emu_fiber_switch

  .globl emu_fiber_start
  .hidden emu_fiber_start
  .type emu_fiber_start, @function
  .p2align 4
emu_fiber_start:
  .cfi_startproc
  .cfi_undefined %rip
  callq *%r12
  ud2
  .cfi_endproc
  .size emu_fiber_start, .-emu_fiber_start
  .popsection
)");

struct Context {
  void* sp = nullptr;
};
inline void switch_to(Context& from, const Context& to) {
  emu_fiber_switch(&from.sp, to.sp);
}
// Makes the first switch to c run fn() on [stack, stack + size), by laying out the frame the switch
// pops: this thread's floating-point control words, six registers (fn in r12) and the return
// address emu_fiber_start, placed so that the stack is 16-byte aligned at its call of fn, as the
// ABI requires.
inline void make(Context& c, char* stack, size_t size, void (*fn)()) {
  auto* sp =
      reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t{15});
  *--sp = 0, *--sp = 0;  // 16 bytes above emu_fiber_start's frame: a null return address
  *--sp = reinterpret_cast<uint64_t>(&emu_fiber_start);
  *--sp = 0;                               // rbp
  *--sp = 0;                               // rbx
  *--sp = reinterpret_cast<uint64_t>(fn);  // r12
  *--sp = 0, *--sp = 0, *--sp = 0;         // r13, r14, r15
  uint16_t x87;
  asm volatile("fnstcw %0" : "=m"(x87));
  *--sp = __builtin_ia32_stmxcsr();
  *--sp = x87;
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_to(Context& from, const Context& to) {
  swapcontext(&from.uc, &to.uc);
}
inline void make(Context& c, char* stack, size_t size, void (*fn)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;  // fn never returns
  makecontext(&c.uc, fn, 0);
}
#endif

// ---- The block ----------------------------------------------------------------------------------

enum class Op {
  none,
  shfl,
  shfl64,
  shfl_idx,
  vote,
  syncwarp,
  ldmatrix,
  ldmatrix_trans,
  mma_bf16,
  mma_fp16,
  wmma_fill,
  wmma_load,
  wmma_store,
  wmma_mma
};
inline const char* name(Op op) {
  static const char* names[] = {"none",
                                "shfl",
                                "shfl.b64",
                                "shfl.idx",
                                "vote",
                                "syncwarp",
                                "ldmatrix",
                                "ldmatrix.trans",
                                "mma.bf16",
                                "mma.f16",
                                "wmma::fill_fragment",
                                "wmma::load_matrix_sync",
                                "wmma::store_matrix_sync",
                                "wmma::mma_sync"};
  return names[static_cast<int>(op)];
}

// A warp collective in progress: each lane's operands, then each lane's results.
struct Warp {
  int arrived = 0;
  Op op = Op::none;
  uint32_t in[32][6];
  float f_in[32][4];
  const unsigned char* ptr[32];
  void* frag[32][4];  // each lane's WMMA fragments (shim/mma.h)
  uint32_t out[32][4];
  float f_out[32][4];
};

// The detector's state of one shared-memory byte. Epochs count barriers over all blocks, so that
// what an earlier block recorded (an epoch before the block's first) reads as never written, never
// read, and the state needs no reset from block to block.
constexpr int64_t kNever = -1;
struct ByteState {
  int64_t written = kNever;  // epoch of the last completed write
  int64_t read = kNever;     // epoch of the last read
  int writer = -1;
  int reader = -1;
  bool pending = false;      // a cp.async to it is issued and not yet waited for
  bool shared_read = false;  // read by several threads (or by ldmatrix) in that epoch
};

struct Copy {
  unsigned char* dst;
  const unsigned char* src;
  int bytes;
  bool valid;  // else zeros
};
struct Thread {
  enum class State { ready, at_barrier, in_collective, done } state = State::ready;
  Context ctx;
  // The cp.async copies issued, oldest first: commit group g is [ends[g - 1], ends[g]) (from 0 for
  // g = 0), those from ends.back() on are issued since the last commit, and groups [0, retired)
  // are retired. Kept flat, not a vector per group, so that a block allocates nothing once warm.
  std::vector<Copy> copies;
  std::vector<size_t> ends;
  size_t retired = 0;
  size_t first_unretired() const { return retired ? ends[retired - 1] : 0; }
};

constexpr size_t kMaxSmem = 227 * 1024;  // an H100's opt-in maximum per block
constexpr size_t kStack = 256 * 1024;

struct Block {
  alignas(128) unsigned char smem[kMaxSmem];
  size_t smem_bytes = 0;
  std::vector<ByteState> bytes;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<int> order;  // the scheduler's
  int at_barrier = 0;
  int64_t epoch = 0;        // barriers passed, over all blocks
  int64_t first_epoch = 0;  // this block's first
  bool abandoned = false;   // deadlocked: the rest of the grid is skipped
};
inline Block& block() {
  static auto* b = new Block;  // 227 KiB of shared memory: not on a stack
  return *b;
}
inline int cur = 0;  // the running thread
inline unsigned block_idx[3], grid_dim[3];
inline Context scheduler;
inline const std::function<void()>* body = nullptr;

inline void yield(Thread::State s) {
  Block& b = block();
  b.threads[cur].state = s;
  switch_to(b.threads[cur].ctx, scheduler);
}

// ---- Race detector
// --------------------------------------------------------------------------------

inline ByteState* bytes_of(const void* p, size_t n, const char* what) {
  Block& b = block();
  const auto c = static_cast<const unsigned char*>(p);
  if (c < b.smem || c + n > b.smem + b.smem_bytes) {
    report("thread %d: %s outside the %zu bytes of shared memory", cur, what, b.smem_bytes);
    return nullptr;
  }
  return &b.bytes[c - b.smem];
}

// to_others: the bytes go to other lanes (ldmatrix), so even this thread's own write races. The
// read is recorded even when it is reported, so that a later write of the byte reports as well.
inline void on_read(const void* p, size_t n, bool to_others) {
  Block& b = block();
  ByteState* m = bytes_of(p, n, "read");
  if (!m) return;
  const size_t off = m - b.bytes.data();
  bool reported = false;
  const auto problem = [&](auto... args) {
    if (!std::exchange(reported, true)) report(args...);
  };
  for (size_t i = 0; i < n; ++i, ++m) {
    if (m->pending)
      problem("thread %d reads smem+%zu before waiting for thread %d's cp.async to it", cur,
              off + i, m->writer);
    else if (m->written < b.first_epoch)
      problem("thread %d reads smem+%zu, not written before", cur, off + i);
    else if (m->written == b.epoch && (to_others || m->writer != cur))
      problem("thread %d reads smem+%zu written by thread %d with no barrier between", cur, off + i,
              m->writer);
    if (m->read == b.epoch) {
      m->shared_read |= to_others || m->reader != cur;
    } else {
      m->read = b.epoch, m->reader = cur, m->shared_read = to_others;
    }
  }
}
inline void on_issue(const void* p, size_t n) {
  Block& b = block();
  ByteState* m = bytes_of(p, n, "cp.async");
  if (!m) return;
  const size_t off = m - b.bytes.data();
  for (size_t i = 0; i < n; ++i, ++m) {
    if (m->read == b.epoch && (m->shared_read || m->reader != cur))
      return report("thread %d overwrites smem+%zu that thread %d read with no barrier between",
                    cur, off + i, m->reader);
    if ((m->pending || m->written == b.epoch) && m->writer != cur)
      return report("threads %d and %d write smem+%zu with no barrier between", m->writer, cur,
                    off + i);
    m->pending = true, m->writer = cur;
  }
}
// The detector's state of a copy's destination; null if outside (on_issue reported it).
inline ByteState* dst_bytes(const Copy& c) {
  Block& b = block();
  if (c.dst < b.smem || c.dst + c.bytes > b.smem + b.smem_bytes) return nullptr;
  return &b.bytes[c.dst - b.smem];
}
inline void on_complete(const Copy& c) {
  ByteState* m = dst_bytes(c);
  if (!m) return;
  for (int i = 0; i < c.bytes; ++i, ++m) m->pending = false, m->written = block().epoch;
}

// ---- Barriers, collectives, cp.async ------------------------------------------------------------

inline void syncthreads() {
  Block& b = block();
  if (++b.at_barrier < static_cast<int>(b.threads.size())) return yield(Thread::State::at_barrier);
  b.at_barrier = 0;
  ++b.epoch;
  for (Thread& t : b.threads)
    if (t.state == Thread::State::at_barrier) t.state = Thread::State::ready;
}

// The calling lane has put its operands in its row of the warp's stage; the last lane to arrive
// runs compute(warp) for all 32, whose results each lane then reads from its row.
template <typename F>
void collective(Op op, F compute) {
  Block& b = block();
  Warp& w = b.warps[cur / 32];
  if (w.arrived == 0) w.op = op;
  if (w.op != op)
    report("warp %d: lane %d in %s while other lanes are in %s", cur / 32, cur % 32, name(op),
           name(w.op));
  if (++w.arrived < 32) return yield(Thread::State::in_collective);
  w.arrived = 0;
  compute(w);
  for (int t = cur & ~31; t < (cur & ~31) + 32; ++t)
    if (b.threads[t].state == Thread::State::in_collective)
      b.threads[t].state = Thread::State::ready;
}

inline void land(const Copy& c) {
  if (c.valid)
    std::copy(c.src, c.src + c.bytes, c.dst);
  else
    std::fill(c.dst, c.dst + c.bytes, 0);
}
inline void cp_async(void* dst, const void* src, bool valid, int bytes) {
  if (reinterpret_cast<uintptr_t>(dst) % bytes || reinterpret_cast<uintptr_t>(src) % bytes)
    report("thread %d: cp.async of %d bytes misaligned", cur, bytes);
  if (!is_mapped(src, bytes)) report("thread %d: cp.async source %p not mapped", cur, src);
  on_issue(dst, bytes);
  const Copy c{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes,
               valid};
  if (!options.deferred_copies) land(c);
  block().threads[cur].copies.push_back(c);
}
inline void cp_async_commit() {
  Thread& t = block().threads[cur];
  t.ends.push_back(t.copies.size());
}
inline void cp_async_wait(size_t in_flight) {
  Thread& t = block().threads[cur];
  for (; t.ends.size() - t.retired > in_flight; ++t.retired)
    for (size_t i = t.first_unretired(); i < t.ends[t.retired]; ++i) {
      if (options.deferred_copies) land(t.copies[i]);
      on_complete(t.copies[i]);
    }
  if (t.retired && t.retired == t.ends.size()) {  // keep only the copies since the last commit
    t.copies.erase(t.copies.begin(), t.copies.begin() + t.ends.back());
    t.ends.clear();
    t.retired = 0;
  }
}

// ---- Launch
// ---------------------------------------------------------------------------------------

// A fiber's body: the kernel, then back to the scheduler for good.
[[noreturn]] inline void entry() {
  (*body)();
  Thread& t = block().threads[cur];
  t.state = Thread::State::done;
  switch_to(t.ctx, scheduler);
  __builtin_unreachable();
}

inline void report_deadlock() {
  Block& b = block();
  std::string who;
  for (size_t w = 0; w < b.warps.size(); ++w)
    if (b.warps[w].arrived)
      who += " warp " + std::to_string(w) + ": " + std::to_string(b.warps[w].arrived) +
             " of 32 lanes in " + name(b.warps[w].op) + ";";
  report("block (%u, %u, %u) deadlocks: %d threads at a barrier;%s", block_idx[0], block_idx[1],
         block_idx[2], b.at_barrier, who.c_str());
  b.abandoned = true;
}

// Resets only what a block must start without: its shared memory's contents, the previous
// block's copies in flight (one that deadlocked or never waited), and the barrier, the warps'
// collectives and the threads' states. The detector's state needs a new epoch only.
inline void start_block(int threads, size_t smem_bytes) {
  Block& b = block();
  for (Thread& t : b.threads) {
    for (size_t i = t.first_unretired(); i < t.copies.size(); ++i)
      if (ByteState* m = dst_bytes(t.copies[i]))
        for (int j = 0; j < t.copies[i].bytes; ++j) m[j].pending = false;
    t.copies.clear();
    t.ends.clear();
    t.retired = 0;
  }
  b.smem_bytes = smem_bytes;
  std::fill(b.smem, b.smem + smem_bytes, 0xFF);
  if (b.bytes.size() < smem_bytes) b.bytes.resize(smem_bytes);
  b.first_epoch = ++b.epoch;
  b.at_barrier = 0;
  b.threads.resize(threads);
  b.warps.resize(threads / 32);
  for (Warp& w : b.warps) w.arrived = 0, w.op = Op::none;
  while (b.stacks.size() < b.threads.size()) b.stacks.emplace_back(new char[kStack]);
  for (int t = 0; t < threads; ++t) {
    make(b.threads[t].ctx, b.stacks[t].get(), kStack, entry);
    b.threads[t].state = Thread::State::ready;
  }
  b.order.resize(threads);
  for (int t = 0; t < threads; ++t) b.order[t] = t;
}

inline void run_block(int threads, size_t smem_bytes) {
  start_block(threads, smem_bytes);
  Block& b = block();
  std::mt19937 rng(options.shuffle_seed + block_idx[0] + 977 * block_idx[1] + 7919 * block_idx[2]);
  for (int done = 0; done < threads;) {
    if (options.shuffle_seed) std::shuffle(b.order.begin(), b.order.end(), rng);
    bool ran = false;
    for (int t : b.order) {
      if (b.threads[t].state != Thread::State::ready) continue;
      cur = t;
      switch_to(scheduler, b.threads[t].ctx);
      ran = true;
      done += b.threads[t].state == Thread::State::done;
    }
    if (!ran) return report_deadlock();
  }
  for (int t = 0; t < threads; ++t) {  // empty groups are fine: a loop's last commit
    const Thread& th = b.threads[t];
    if (const size_t copies = th.copies.size() - th.first_unretired())
      return report("thread %d ends with %zu cp.async never waited for", t, copies);
  }
}

// Runs kernel over grid (x, y, z) with `threads` per block (a multiple of 32), one block after
// another, x fastest.
inline void launch(std::array<unsigned, 3> grid, int threads, size_t smem_bytes,
                   const std::function<void()>& kernel) {
  if (threads % 32 || smem_bytes > kMaxSmem)
    return report("launch of %d threads, %zu bytes of shared memory", threads, smem_bytes);
  body = &kernel;
  block().abandoned = false;
  std::copy(grid.begin(), grid.end(), grid_dim);
  for (unsigned z = 0; z < grid[2]; ++z)
    for (unsigned y = 0; y < grid[1]; ++y)
      for (unsigned x = 0; x < grid[0] && !block().abandoned; ++x) {
        block_idx[0] = x, block_idx[1] = y, block_idx[2] = z;
        run_block(threads, smem_bytes);
      }
}

}  // namespace emu

// ---- The CUDA language the kernels use ----------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x)
// A statically declared __shared__ array (the block reductions' scratch) is a function-local
// static: one per kernel instantiation, shared by the block's fibers, kept from block to block
// (blocks run one at a time). It is not poisoned and not seen by the race detector.
#define __shared__ static

struct EmuDim3 {
  unsigned x, y, z;
};
#define threadIdx (EmuDim3{static_cast<unsigned>(emu::cur), 0u, 0u})
#define blockIdx (EmuDim3{emu::block_idx[0], emu::block_idx[1], emu::block_idx[2]})
#define gridDim (EmuDim3{emu::grid_dim[0], emu::grid_dim[1], emu::grid_dim[2]})
#define blockDim (EmuDim3{static_cast<unsigned>(emu::block().threads.size()), 1u, 1u})

// CUDA's 16-byte vector type, as the kernels move rows.
struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return {x, y, z, w};
}

// CUDA's device min for 64-bit integers (the host's std::min takes one type by reference).
inline int64_t min(int64_t a, int64_t b) {
  return a < b ? a : b;
}

inline void __syncthreads() {
  emu::syncthreads();
}

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
  if (mask != 0xffffffffu)
    emu::report("thread %d: shuffle mask %#x is not the full warp", emu::cur, mask);
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  w.f_in[lane][0] = v;
  w.in[lane][0] = static_cast<uint32_t>(lane_mask);
  emu::collective(emu::Op::shfl, [](emu::Warp& s) {
    for (int l = 0; l < 32; ++l) s.f_out[l][0] = s.f_in[l ^ static_cast<int>(s.in[l][0] & 31)][0];
  });
  return w.f_out[lane][0];
}

// The indexed shuffle: every lane reads src_lane's value.
inline float __shfl_sync(unsigned mask, float v, int src_lane) {
  if (mask != 0xffffffffu)
    emu::report("thread %d: shuffle mask %#x is not the full warp", emu::cur, mask);
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  w.f_in[lane][0] = v;
  w.in[lane][0] = static_cast<uint32_t>(src_lane);
  emu::collective(emu::Op::shfl_idx, [](emu::Warp& s) {
    for (int l = 0; l < 32; ++l) s.f_out[l][0] = s.f_in[s.in[l][0] & 31][0];
  });
  return w.f_out[lane][0];
}

// The double shuffle (two 32-bit words on the hardware): the bits travel in in[lane][1..2].
inline double __shfl_xor_sync(unsigned mask, double v, int lane_mask) {
  if (mask != 0xffffffffu)
    emu::report("thread %d: shuffle mask %#x is not the full warp", emu::cur, mask);
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  w.in[lane][0] = static_cast<uint32_t>(lane_mask);
  w.in[lane][1] = static_cast<uint32_t>(bits), w.in[lane][2] = static_cast<uint32_t>(bits >> 32);
  emu::collective(emu::Op::shfl64, [](emu::Warp& s) {
    for (int l = 0; l < 32; ++l) {
      const int src = l ^ static_cast<int>(s.in[l][0] & 31);
      s.out[l][0] = s.in[src][1], s.out[l][1] = s.in[src][2];
    }
  });
  bits = w.out[lane][0] | uint64_t{w.out[lane][1]} << 32;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// A warp barrier: all 32 lanes must arrive (the race detector's epochs are the block's barriers
// only).
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu)
    emu::report("thread %d: __syncwarp mask %#x is not the full warp", emu::cur, mask);
  emu::collective(emu::Op::syncwarp, [](emu::Warp&) {});
}

// Whether the predicate holds on any of the 32 lanes.
inline bool __any_sync(unsigned mask, int predicate) {
  if (mask != 0xffffffffu)
    emu::report("thread %d: vote mask %#x is not the full warp", emu::cur, mask);
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  w.in[lane][0] = predicate != 0;
  emu::collective(emu::Op::vote, [](emu::Warp& s) {
    uint32_t any = 0;
    for (int l = 0; l < 32; ++l) any |= s.in[l][0];
    for (int l = 0; l < 32; ++l) s.out[l][0] = any;
  });
  return w.out[lane][0] != 0;
}
