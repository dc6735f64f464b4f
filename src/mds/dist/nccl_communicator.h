// The Communicator of the CUDA backend: NCCL collectives on DEVICE buffers, behind the same
// interface as MPI's (dist/communicator.h), so a parallel layer does not know which one moves
// its bytes. Bootstrapped over the MPI world (rank 0's ncclUniqueId is broadcast over it); one
// NCCL communicator per group, made by ncclCommSplit (Communicator::split).
//
// Streams: every operation is enqueued on the communicator's own communication stream, after
// the work already enqueued on the legacy default stream (where the CUDA kernels run: an event
// recorded there is waited on), and the call synchronises the communication stream before it
// returns: a collective is blocking, like MPI's. start_all_reduce (the gradient buckets,
// parallel/grad_sync.h) enqueues the same way without the synchronisation, so the reduction
// runs while backward's kernels continue on the compute stream; wait_all synchronises.
//
// The trainer makes one over its MPI world when it runs several GPU processes, and splits the
// device groups from it (train/parallel_context.h). NCCL and CUDA headers stay inside
// nccl_communicator.cpp: the handles here are forward-declared.
#pragma once

#include <memory>

#include "mds/dist/communicator.h"

struct ncclComm;     // ncclComm_t is ncclComm*
struct CUstream_st;  // cudaStream_t is CUstream_st*
struct CUevent_st;   // cudaEvent_t is CUevent_st*

namespace mds::dist {

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of comm (ncclCommDestroy in the destructor). bootstrap is the MPI world the
  // communicator was made from: abort() ends the job through it, so it must outlive this object
  // and every group split from it. The calling thread's current device must be `device`.
  NcclCommunicator(ncclComm* comm, int device, Communicator& bootstrap);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }
  CUstream_st* stream() const { return stream_; }  // the communication stream

  // ncclCommSplit: collective over this communicator, every rank must call it. color >= 0.
  std::unique_ptr<Communicator> split(int color, int key) override;
  // ncclCommAbort on this communicator, then the bootstrap (MPI) world's abort: ends every rank.
  [[noreturn]] void abort(const std::string& message) override;

 protected:
  void do_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) override;
  void do_reduce_scatter(const void* in, void* out, int64_t n, ElemType t, ReduceOp op) override;
  void do_all_gather(const void* in, void* out, int64_t n, ElemType t) override;
  void do_all_to_all(const void* in, void* out, int64_t n, ElemType t) override;
  void do_broadcast(void* data, int64_t n, ElemType t, int root) override;
  // NCCL has no tags: point-to-point messages between two ranks match in the order they are
  // posted; tag is ignored.
  void do_send(const void* data, int64_t n, ElemType t, int dest, int tag) override;
  void do_recv(void* data, int64_t n, ElemType t, int src, int tag) override;
  void do_send_recv(const void* send, int64_t n_send, int dest, void* recv, int64_t n_recv, int src,
                    ElemType t, int tag) override;
  // An all-reduce of one int32 in a device scratch word, then the stream synchronisation: no
  // rank returns before every rank has entered (the all-reduce cannot complete earlier), and
  // it orders against NCCL traffic, which an MPI barrier would not.
  void do_barrier() override;
  // Enqueued on the communication stream after the compute stream's work so far, without the
  // synchronisation; wait_all synchronises the communication stream.
  void do_start_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) override;
  void do_wait_all() override;

 private:
  void begin();  // the communication stream waits for the legacy default stream
  void end();    // waits for the communication stream (and for NCCL's asynchronous errors)
  template <typename Body>
  void grouped(Body&& body);  // body's NCCL calls in one group, closed even when body throws

  ncclComm* comm_;
  int device_;
  Communicator* bootstrap_;
  int rank_ = 0, size_ = 1;
  CUstream_st* stream_ = nullptr;
  CUevent_st* ready_ = nullptr;
  int32_t* scratch_ = nullptr;  // one device int32 for barrier()
  bool pending_ = false;        // an all-reduce was started and not yet waited for
};

// The NCCL world over the ranks of mpi_world (an MPI world, or a world of one without MPI:
// make_self_communicator()): rank 0 calls ncclGetUniqueId and broadcasts it over mpi_world,
// every rank selects `device` (cudaSetDevice, its local GPU) and calls ncclCommInitRank.
// Collective over mpi_world; each rank needs its own GPU (NCCL refuses two ranks on one).
std::unique_ptr<Communicator> make_nccl_world(Communicator& mpi_world, int device);

}  // namespace mds::dist
