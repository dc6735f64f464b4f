// The collective interface every parallel dimension talks through: a group of ranks that can
// all-reduce, reduce-scatter, all-gather, all-to-all, broadcast, send/recv and synchronise.
// Implementations (MPI here, NCCL later) only move bytes; this base class counts, per kind of
// collective, the calls, the payload bytes and the wall time, so that every group reports what
// it moved (the timers line and the bytes-per-step table read these counters).
//
// Payload bytes are the size of the buffer a call works on at this rank: all-reduce and
// broadcast n elements, reduce-scatter its full input (size x n), all-gather its full output
// (size x n), all-to-all its input (size x n), send/recv n, send_recv both directions.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "mds/core/fp16.h"

namespace mds::dist {

enum class ReduceOp { sum, max, avg };
enum class ElemType { f32, f64, i32, i64, bf16, fp16 };
enum class CommKind {
  all_reduce,
  reduce_scatter,
  all_gather,
  all_to_all,
  broadcast,
  send_recv,
  barrier
};
inline constexpr int kNumCommKinds = 7;
inline const char* comm_kind_name(CommKind kind) {
  constexpr const char* names[kNumCommKinds] = {"all-reduce", "reduce-scatter", "all-gather",
                                                "all-to-all", "broadcast",      "send-recv",
                                                "barrier"};
  return names[int(kind)];
}

template <typename T>
constexpr ElemType elem_type_of() {
  if constexpr (std::is_same_v<T, float>)
    return ElemType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return ElemType::f64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return ElemType::i32;
  else if constexpr (std::is_same_v<T, bf16>)
    return ElemType::bf16;  // mixed precision's activations (tensor and sequence parallelism)
  else if constexpr (std::is_same_v<T, fp16>)
    return ElemType::fp16;
  else {
    static_assert(std::is_same_v<T, int64_t>,
                  "collectives carry float, double, int32, int64, bf16 or fp16");
    return ElemType::i64;
  }
}
constexpr int64_t elem_size(ElemType t) {
  return t == ElemType::bf16 || t == ElemType::fp16 ? 2
         : t == ElemType::f32 || t == ElemType::i32 ? 4
                                                    : 8;
}

// Counters of one group, per kind of collective.
struct CommStats {
  std::array<int64_t, kNumCommKinds> calls{}, bytes{};
  std::array<double, kNumCommKinds> seconds{};

  int64_t total_bytes() const {
    int64_t t = 0;
    for (int64_t b : bytes) t += b;
    return t;
  }
  double total_seconds() const {
    double t = 0;
    for (double x : seconds) t += x;
    return t;
  }
  void reset() { *this = CommStats{}; }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // A sub-group: ranks with the same colour form one group, ordered by key (MPI_Comm_split).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Ends the whole job (every rank of every group) with this message: no peer is left hanging.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // In place over n elements; avg divides the sum by size().
  template <typename T>
  void all_reduce(T* data, int64_t n, ReduceOp op) {
    timed(CommKind::all_reduce, n * int64_t(sizeof(T)),
          [&] { do_all_reduce(data, n, elem_type_of<T>(), op); });
  }
  // in: [size, n] -> out: [n], this rank's block of the reduction.
  template <typename T>
  void reduce_scatter(const T* in, T* out, int64_t n, ReduceOp op) {
    timed(CommKind::reduce_scatter, size() * n * int64_t(sizeof(T)),
          [&] { do_reduce_scatter(in, out, n, elem_type_of<T>(), op); });
  }
  // in: [n] -> out: [size, n], block r from rank r.
  template <typename T>
  void all_gather(const T* in, T* out, int64_t n) {
    timed(CommKind::all_gather, size() * n * int64_t(sizeof(T)),
          [&] { do_all_gather(in, out, n, elem_type_of<T>()); });
  }
  // in: [size, n] (block r goes to rank r) -> out: [size, n] (block r came from rank r).
  template <typename T>
  void all_to_all(const T* in, T* out, int64_t n) {
    timed(CommKind::all_to_all, size() * n * int64_t(sizeof(T)),
          [&] { do_all_to_all(in, out, n, elem_type_of<T>()); });
  }
  template <typename T>
  void broadcast(T* data, int64_t n, int root) {
    timed(CommKind::broadcast, n * int64_t(sizeof(T)),
          [&] { do_broadcast(data, n, elem_type_of<T>(), root); });
  }
  template <typename T>
  void send(const T* data, int64_t n, int dest, int tag = 0) {
    timed(CommKind::send_recv, n * int64_t(sizeof(T)),
          [&] { do_send(data, n, elem_type_of<T>(), dest, tag); });
  }
  template <typename T>
  void recv(T* data, int64_t n, int src, int tag = 0) {
    timed(CommKind::send_recv, n * int64_t(sizeof(T)),
          [&] { do_recv(data, n, elem_type_of<T>(), src, tag); });
  }
  // Sends n_send elements to dest while receiving n_recv from src, without deadlock when
  // the two peers do the same to each other (MPI_Sendrecv): the pipeline's paired exchanges.
  template <typename T>
  void send_recv(const T* send, int64_t n_send, int dest, T* recv, int64_t n_recv, int src,
                 int tag = 0) {
    timed(CommKind::send_recv, (n_send + n_recv) * int64_t(sizeof(T)),
          [&] { do_send_recv(send, n_send, dest, recv, n_recv, src, elem_type_of<T>(), tag); });
  }
  void barrier() {
    timed(CommKind::barrier, 0, [&] { do_barrier(); });
  }
  // All-reduces that overlap with the caller's work: start returns at once (the data must be
  // left alone until wait_all), wait_all completes every one started, in order. Counted as
  // all-reduces. A communicator without a non-blocking path runs each at its start.
  template <typename T>
  void start_all_reduce(T* data, int64_t n, ReduceOp op) {
    timed(CommKind::all_reduce, n * int64_t(sizeof(T)),
          [&] { do_start_all_reduce(data, n, elem_type_of<T>(), op); });
  }
  void wait_all() {
    timed(
        CommKind::all_reduce, 0, [&] { do_wait_all(); }, /*calls=*/0);
  }

  CommStats& stats() { return stats_; }
  const CommStats& stats() const { return stats_; }

 protected:
  virtual void do_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) = 0;
  virtual void do_reduce_scatter(const void* in, void* out, int64_t n, ElemType t, ReduceOp op) = 0;
  virtual void do_all_gather(const void* in, void* out, int64_t n, ElemType t) = 0;
  virtual void do_all_to_all(const void* in, void* out, int64_t n, ElemType t) = 0;
  virtual void do_broadcast(void* data, int64_t n, ElemType t, int root) = 0;
  virtual void do_send(const void* data, int64_t n, ElemType t, int dest, int tag) = 0;
  virtual void do_recv(void* data, int64_t n, ElemType t, int src, int tag) = 0;
  virtual void do_send_recv(const void* send, int64_t n_send, int dest, void* recv, int64_t n_recv,
                            int src, ElemType t, int tag) = 0;
  virtual void do_barrier() = 0;
  virtual void do_start_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) {
    do_all_reduce(data, n, t, op);
  }
  virtual void do_wait_all() {}

 private:
  CommStats stats_;

  template <typename F>
  void timed(CommKind kind, int64_t bytes, F&& f, int64_t calls = 1) {
    const auto start = std::chrono::steady_clock::now();
    f();
    const int k = int(kind);
    stats_.calls[k] += calls;
    stats_.bytes[k] += bytes;
    stats_.seconds[k] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

}  // namespace mds::dist
