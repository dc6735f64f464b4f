// NcclCommunicator (see nccl_communicator.h): each collective is one NCCL call, all-to-all and
// send_recv are grouped point-to-point calls, all on the communication stream.
#include "mds/dist/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "mds/core/cuda_check.h"
#include "mds/core/error.h"
#include "mds/core/nccl_check.h"
#include "mds/dist/nccl_library.h"

namespace mds::dist {
namespace {

ncclDataType_t nccl_type(ElemType t) {
  switch (t) {
    case ElemType::bf16:
      return ncclBfloat16;
    case ElemType::fp16:
      return ncclFloat16;
    case ElemType::f32:
      return ncclFloat32;
    case ElemType::f64:
      return ncclFloat64;
    case ElemType::i32:
      return ncclInt32;
    case ElemType::i64:
      return ncclInt64;
  }
  MDS_ASSERT(false, "unknown element type");
}

// avg is NCCL's own (ncclAvg, NCCL >= 2.10): for integer types its rounding need not match
// MpiCommunicator's truncating division; the framework averages floating-point gradients only.
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::avg:
      return ncclAvg;
  }
  MDS_ASSERT(false, "unknown reduce op");
}

size_t count(int64_t n) {
  MDS_ASSERT(n >= 0, "collective of {} elements", n);
  return size_t(n);
}

const char* bytes_at(const void* p, int64_t elems, ElemType t) {
  return static_cast<const char*>(p) + elems * elem_size(t);
}
char* bytes_at(void* p, int64_t elems, ElemType t) {
  return static_cast<char*>(p) + elems * elem_size(t);
}

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm* comm, int device, Communicator& bootstrap)
    : comm_(comm), device_(device), bootstrap_(&bootstrap) {
  MDS_NCCL_CHECK(nccl().CommUserRank(comm_, &rank_));
  MDS_NCCL_CHECK(nccl().CommCount(comm_, &size_));
  MDS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MDS_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  MDS_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(int32_t)));
}

NcclCommunicator::~NcclCommunicator() {
  // No throwing here: errors at teardown are ignored (the job is ending or already failed).
  // ncclCommDestroy waits for the communicator's queued work; when some may never complete (an
  // all-reduce started and not waited for, or unwinding from an error, where a peer may be gone)
  // it could wait forever, so abort the communicator instead.
  const bool unsafe = pending_ || std::uncaught_exceptions() > 0;
  if (comm_) (void)(unsafe ? nccl().CommAbort(comm_) : nccl().CommDestroy(comm_));
  if (scratch_) (void)cudaFree(scratch_);
  if (ready_) (void)cudaEventDestroy(ready_);
  if (stream_) (void)cudaStreamDestroy(stream_);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  MDS_ASSERT(color >= 0, "split colour {} must be >= 0", color);
  ncclComm* sub = nullptr;
  MDS_NCCL_CHECK(nccl().CommSplit(comm_, color, key, &sub, nullptr));
  return std::make_unique<NcclCommunicator>(sub, device_, *bootstrap_);
}

void NcclCommunicator::abort(const std::string& message) {
  if (comm_) (void)nccl().CommAbort(comm_);
  comm_ = nullptr;
  bootstrap_->abort(message);
  std::_Exit(2);  // not reached: abort() is [[noreturn]], which GCC does not see through a virtual
}

void NcclCommunicator::begin() {
  MDS_CUDA_CHECK(cudaEventRecord(ready_, cudaStreamLegacy));
  MDS_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
}

// Polls rather than cudaStreamSynchronize: a peer that died or a network error never completes
// the stream, and only ncclCommGetAsyncError says so; then the communicator is aborted (its
// kernels return) and the error thrown, which ends the job through the trainer's abort.
void NcclCommunicator::end() {
  for (;;) {
    const cudaError_t done = cudaStreamQuery(stream_);
    if (done == cudaSuccess) break;
    if (done != cudaErrorNotReady) MDS_CUDA_CHECK(done);
    ncclResult_t async = ncclSuccess;
    MDS_NCCL_CHECK(nccl().CommGetAsyncError(comm_, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      (void)nccl().CommAbort(comm_);
      comm_ = nullptr;
      MDS_NCCL_CHECK(async);
    }
    std::this_thread::yield();
  }
  pending_ = false;
}

// NCCL calls between GroupStart and GroupEnd; the group is closed even when one of them throws,
// or every later NCCL call on this thread would silently join the open group.
template <typename Body>
void NcclCommunicator::grouped(Body&& body) {
  MDS_NCCL_CHECK(nccl().GroupStart());
  try {
    body();
  } catch (...) {
    (void)nccl().GroupEnd();
    throw;
  }
  MDS_NCCL_CHECK(nccl().GroupEnd());
}

void NcclCommunicator::do_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) {
  begin();
  MDS_NCCL_CHECK(nccl().AllReduce(data, data, count(n), nccl_type(t), nccl_op(op), comm_, stream_));
  end();
}

void NcclCommunicator::do_start_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) {
  begin();
  MDS_NCCL_CHECK(nccl().AllReduce(data, data, count(n), nccl_type(t), nccl_op(op), comm_, stream_));
  pending_ = true;
}

void NcclCommunicator::do_wait_all() {
  end();
}

void NcclCommunicator::do_reduce_scatter(const void* in, void* out, int64_t n, ElemType t,
                                         ReduceOp op) {
  begin();
  MDS_NCCL_CHECK(
      nccl().ReduceScatter(in, out, count(n), nccl_type(t), nccl_op(op), comm_, stream_));
  end();
}

void NcclCommunicator::do_all_gather(const void* in, void* out, int64_t n, ElemType t) {
  begin();
  MDS_NCCL_CHECK(nccl().AllGather(in, out, count(n), nccl_type(t), comm_, stream_));
  end();
}

// One send and one receive per peer (itself included), grouped so NCCL schedules them together
// without deadlock.
void NcclCommunicator::do_all_to_all(const void* in, void* out, int64_t n, ElemType t) {
  begin();
  grouped([&] {
    for (int peer = 0; peer < size_; ++peer) {
      MDS_NCCL_CHECK(
          nccl().Send(bytes_at(in, peer * n, t), count(n), nccl_type(t), peer, comm_, stream_));
      MDS_NCCL_CHECK(
          nccl().Recv(bytes_at(out, peer * n, t), count(n), nccl_type(t), peer, comm_, stream_));
    }
  });
  end();
}

void NcclCommunicator::do_broadcast(void* data, int64_t n, ElemType t, int root) {
  begin();
  MDS_NCCL_CHECK(nccl().Broadcast(data, data, count(n), nccl_type(t), root, comm_, stream_));
  end();
}

void NcclCommunicator::do_send(const void* data, int64_t n, ElemType t, int dest, int) {
  begin();
  MDS_NCCL_CHECK(nccl().Send(data, count(n), nccl_type(t), dest, comm_, stream_));
  end();
}

void NcclCommunicator::do_recv(void* data, int64_t n, ElemType t, int src, int) {
  begin();
  MDS_NCCL_CHECK(nccl().Recv(data, count(n), nccl_type(t), src, comm_, stream_));
  end();
}

void NcclCommunicator::do_send_recv(const void* send, int64_t n_send, int dest, void* recv,
                                    int64_t n_recv, int src, ElemType t, int) {
  begin();
  grouped([&] {
    MDS_NCCL_CHECK(nccl().Send(send, count(n_send), nccl_type(t), dest, comm_, stream_));
    MDS_NCCL_CHECK(nccl().Recv(recv, count(n_recv), nccl_type(t), src, comm_, stream_));
  });
  end();
}

void NcclCommunicator::do_barrier() {
  begin();
  MDS_NCCL_CHECK(nccl().AllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_));
  end();
}

std::unique_ptr<Communicator> make_nccl_world(Communicator& mpi_world, int device) {
  MDS_CUDA_CHECK(cudaSetDevice(device));
  // The id travels as int32 words over the existing byte-agnostic broadcast.
  static_assert(sizeof(ncclUniqueId) % sizeof(int32_t) == 0);
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (mpi_world.rank() == 0) MDS_NCCL_CHECK(nccl().GetUniqueId(&id));
  int32_t words[sizeof(ncclUniqueId) / sizeof(int32_t)];
  std::memcpy(words, &id, sizeof id);
  mpi_world.broadcast(words, int64_t(sizeof words / sizeof(int32_t)), 0);
  std::memcpy(&id, words, sizeof id);
  ncclComm* comm = nullptr;
  MDS_NCCL_CHECK(nccl().CommInitRank(&comm, mpi_world.size(), id, mpi_world.rank()));
  return std::make_unique<NcclCommunicator>(comm, device, mpi_world);
}

}  // namespace mds::dist
