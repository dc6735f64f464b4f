// The emulated device's NCCL: libnccl-emu.so, the entry points dist/nccl_library.h loads
// (MDS_NCCL_LIBRARY=.../libnccl-emu.so), over MPI. The emulated GPU's memory is host memory, so
// MPI moves the "device" buffers directly; the stream argument is ignored, as every emulated
// stream runs its work when it is enqueued: a collective completes inside its call.
//
// As NCCL: an NCCL world is ncclCommInitRank over the ranks that share an id (here:
// MPI_Comm_split of MPI_COMM_WORLD, so every MPI rank must call it, as mds does), ncclCommSplit
// is collective over its parent (NCCL_SPLIT_NOCOLOR: no communicator), the calls between
// ncclGroupStart and ncclGroupEnd run at ncclGroupEnd (point-to-point ones posted together, so
// a group of sends and receives never deadlocks), and 16-bit sums add two values in fp32 and
// round once per step. A world of one (ncclCommInitRank with nranks 1, as a process without a
// launcher makes) needs no MPI: its collectives are copies and its messages to itself a queue.
// Not emulated: timing, asynchronous errors (there are none), ncclAvg's
// exact rounding (sum, then one division).
#include <mpi.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;  // null: a world of one, without MPI
  int rank = 0, size = 1;
};

namespace {

constexpr int kTag = 0x6e63;  // each NCCL communicator is its own MPI communicator

int group_depth = 0;
std::vector<std::function<void()>> group_collectives;  // in call order
std::vector<MPI_Request> group_requests;
std::vector<std::function<void()>> group_posts;       // Isend/Irecv, posted first
std::vector<std::function<void()>> group_self_recvs;  // a world of one's, after its sends
std::vector<std::vector<char>> self_messages;         // sent by a world of one to itself

ncclResult_t run(std::function<void()> op, bool point_to_point = false) {
  if (group_depth == 0) {
    op();
    return ncclSuccess;
  }
  (point_to_point ? group_posts : group_collectives).push_back(std::move(op));
  return ncclSuccess;
}

size_t type_bytes(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
    case ncclFloat8e4m3:
    case ncclFloat8e5m2:
      return 1;
    case ncclFloat16:
    case ncclBfloat16:
      return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4;
    default:
      return 8;
  }
}

MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
      return MPI_INT8_T;
    case ncclUint8:
      return MPI_UINT8_T;
    case ncclInt32:
      return MPI_INT32_T;
    case ncclUint32:
      return MPI_UINT32_T;
    case ncclInt64:
      return MPI_INT64_T;
    case ncclUint64:
      return MPI_UINT64_T;
    case ncclFloat32:
      return MPI_FLOAT;
    case ncclFloat64:
      return MPI_DOUBLE;
    default:
      return MPI_UINT16_T;  // fp16, bf16: the user ops below
  }
}

template <typename H, bool kMax>
void half_op(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const H*>(in);
  auto* b = static_cast<H*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = float(a[i]), y = float(b[i]);
    b[i] = kMax ? (x > y ? a[i] : b[i]) : H(x + y);
  }
}

MPI_Op mpi_op(ncclRedOp_t op, ncclDataType_t t) {
  const bool max = op == ncclMax;
  if (t == ncclBfloat16 || t == ncclFloat16) {
    static MPI_Op made[2][2] = {{MPI_OP_NULL, MPI_OP_NULL}, {MPI_OP_NULL, MPI_OP_NULL}};
    MPI_Op& m = made[t == ncclBfloat16][max];
    if (m == MPI_OP_NULL) {
      MPI_User_function* f = t == ncclBfloat16
                                 ? (max ? half_op<mds::bf16, true> : half_op<mds::bf16, false>)
                                 : (max ? half_op<mds::fp16, true> : half_op<mds::fp16, false>);
      MPI_Op_create(f, 1, &m);
    }
    return m;
  }
  switch (op) {
    case ncclProd:
      return MPI_PROD;
    case ncclMax:
      return MPI_MAX;
    case ncclMin:
      return MPI_MIN;
    default:
      return MPI_SUM;  // sum, and avg before its division
  }
}

bool supported(ncclRedOp_t op, ncclDataType_t t) {
  const bool half = t == ncclBfloat16 || t == ncclFloat16;
  return t < ncclFloat8e4m3 && (op == ncclSum || op == ncclMax || op == ncclAvg ||
                                (!half && (op == ncclProd || op == ncclMin)));
}

// ncclAvg: the sum divided by the ranks, rounded once.
template <typename T>
void divide(void* data, size_t n, int by) {
  auto* p = static_cast<T*>(data);
  for (size_t i = 0; i < n; ++i) p[i] = T(static_cast<double>(p[i]) / by);
}
template <typename H>
void divide_half(void* data, size_t n, int by) {
  auto* p = static_cast<H*>(data);
  for (size_t i = 0; i < n; ++i) p[i] = H(float(p[i]) / float(by));
}
void average(void* data, size_t n, ncclDataType_t t, int by) {
  switch (t) {
    case ncclFloat32:
      return divide<float>(data, n, by);
    case ncclFloat64:
      return divide<double>(data, n, by);
    case ncclInt32:
      return divide<int32_t>(data, n, by);
    case ncclInt64:
      return divide<int64_t>(data, n, by);
    case ncclBfloat16:
      return divide_half<mds::bf16>(data, n, by);
    case ncclFloat16:
      return divide_half<mds::fp16>(data, n, by);
    default:
      return;
  }
}

void copy(void* dst, const void* src, size_t bytes) {
  if (dst != src) std::memmove(dst, src, bytes);
}

int count_of(size_t n) {
  return static_cast<int>(n);  // the tests' and mds's buffers stay far below 2^31 elements
}

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  *version = 22800;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "no error";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage";
    case ncclInternalError:
      return "internal error";
    default:
      return "unhandled error";
  }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id, 0, sizeof *id);
  std::random_device rd;
  const unsigned words[2] = {rd(), static_cast<unsigned>(getpid())};
  std::memcpy(id->internal, words, sizeof words);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (nranks == 1 && rank == 0) {
    *comm = new ncclComm();
    return ncclSuccess;
  }
  int mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (!mpi_up || rank < 0 || rank >= nranks) return ncclInvalidUsage;
  unsigned color = 0;  // the id's first 4 bytes, made non-negative
  std::memcpy(&color, id.internal, sizeof color);
  auto* c = new ncclComm();
  MPI_Comm_split(MPI_COMM_WORLD, static_cast<int>(color & 0x7fffffffu), rank, &c->mpi);
  MPI_Comm_rank(c->mpi, &c->rank);
  MPI_Comm_size(c->mpi, &c->size);
  if (c->size != nranks || c->rank != rank) {
    MPI_Comm_free(&c->mpi);
    delete c;
    return ncclInvalidUsage;
  }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                           ncclConfig_t*) {
  *newcomm = nullptr;
  if (comm->mpi == MPI_COMM_NULL) {
    if (color != NCCL_SPLIT_NOCOLOR) *newcomm = new ncclComm();
    return ncclSuccess;
  }
  MPI_Comm sub = MPI_COMM_NULL;
  MPI_Comm_split(comm->mpi, color == NCCL_SPLIT_NOCOLOR ? MPI_UNDEFINED : color, key, &sub);
  *newcomm = nullptr;
  if (sub == MPI_COMM_NULL) return ncclSuccess;
  auto* c = new ncclComm();
  c->mpi = sub;
  MPI_Comm_rank(sub, &c->rank);
  MPI_Comm_size(sub, &c->size);
  *newcomm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  if (comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  return comm ? ncclCommDestroy(comm) : ncclSuccess;
}
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* error) {
  *error = ncclSuccess;
  return comm ? ncclSuccess : ncclInvalidArgument;
}
ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  *count = comm->size;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  if (!supported(op, t)) return ncclInvalidArgument;
  return run([=] {
    if (comm->mpi == MPI_COMM_NULL) return copy(recv, send, count * type_bytes(t));
    MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, count_of(count), mpi_type(t),
                  mpi_op(op, t), comm->mpi);
    if (op == ncclAvg) average(recv, count, t, comm->size);
  });
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  if (!supported(op, t)) return ncclInvalidArgument;
  return run([=] {
    if (comm->mpi == MPI_COMM_NULL) return copy(recv, send, recv_count * type_bytes(t));
    // NCCL's in place (recv inside send) is not MPI's (the input in recv): reduce a copy.
    const auto* p = static_cast<const char*>(send);
    const std::vector<char> input(p, p + comm->size * recv_count * type_bytes(t));
    MPI_Reduce_scatter_block(input.data(), recv, count_of(recv_count), mpi_type(t), mpi_op(op, t),
                             comm->mpi);
    if (op == ncclAvg) average(recv, recv_count, t, comm->size);
  });
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t t,
                           ncclComm_t comm, cudaStream_t) {
  return run([=] {
    if (comm->mpi == MPI_COMM_NULL) return copy(recv, send, send_count * type_bytes(t));
    const bool in_place =
        static_cast<const char*>(recv) + comm->rank * send_count * type_bytes(t) == send;
    MPI_Allgather(in_place ? MPI_IN_PLACE : send, count_of(send_count), mpi_type(t), recv,
                  count_of(send_count), mpi_type(t), comm->mpi);
  });
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root,
                           ncclComm_t comm, cudaStream_t) {
  if (root < 0 || root >= comm->size) return ncclInvalidArgument;
  return run([=] {
    if (comm->rank == root) copy(recv, send, count * type_bytes(t));
    if (comm->mpi == MPI_COMM_NULL) return;
    MPI_Bcast(recv, count_of(count), mpi_type(t), root, comm->mpi);
  });
}

ncclResult_t ncclSend(const void* send, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t) {
  if (peer < 0 || peer >= comm->size) return ncclInvalidArgument;
  if (comm->mpi == MPI_COMM_NULL)  // to itself: queued for its receive
    return run(
        [=] {
          const auto* p = static_cast<const char*>(send);
          self_messages.emplace_back(p, p + count * type_bytes(t));
        },
        true);
  if (group_depth == 0) {
    MPI_Send(send, count_of(count), mpi_type(t), peer, kTag, comm->mpi);
    return ncclSuccess;
  }
  return run(
      [=] {
        group_requests.emplace_back();
        MPI_Isend(send, count_of(count), mpi_type(t), peer, kTag, comm->mpi,
                  &group_requests.back());
      },
      true);
}

ncclResult_t ncclRecv(void* recv, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t) {
  if (peer < 0 || peer >= comm->size) return ncclInvalidArgument;
  if (comm->mpi == MPI_COMM_NULL) {
    auto receive = [=] {
      if (self_messages.empty()) return;  // NCCL would hang: nothing was sent
      const std::vector<char> m = std::move(self_messages.front());
      self_messages.erase(self_messages.begin());
      std::memcpy(recv, m.data(), std::min(m.size(), count * type_bytes(t)));
    };
    if (group_depth == 0) return receive(), ncclSuccess;
    group_self_recvs.push_back(receive);
    return ncclSuccess;
  }
  if (group_depth == 0) {
    MPI_Recv(recv, count_of(count), mpi_type(t), peer, kTag, comm->mpi, MPI_STATUS_IGNORE);
    return ncclSuccess;
  }
  return run(
      [=] {
        group_requests.emplace_back();
        MPI_Irecv(recv, count_of(count), mpi_type(t), peer, kTag, comm->mpi,
                  &group_requests.back());
      },
      true);
}

ncclResult_t ncclGroupStart() {
  ++group_depth;
  return ncclSuccess;
}

// The outermost end runs the group: its sends and receives posted together, then its
// collectives in call order, then the wait for the point-to-point traffic.
ncclResult_t ncclGroupEnd() {
  if (group_depth == 0) return ncclInvalidUsage;
  if (--group_depth > 0) return ncclSuccess;
  for (auto& post : group_posts) post();
  for (auto& receive : group_self_recvs) receive();
  for (auto& collective : group_collectives) collective();
  if (!group_requests.empty())
    MPI_Waitall(static_cast<int>(group_requests.size()), group_requests.data(),
                MPI_STATUSES_IGNORE);
  group_posts.clear();
  group_self_recvs.clear();
  group_collectives.clear();
  group_requests.clear();
  return ncclSuccess;
}

}  // extern "C"
