#include "mds/dist/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mds/core/error.h"

#define MDS_MPI_CHECK(call)                                                             \
  do {                                                                                  \
    const int mds_mpi_rc = (call);                                                      \
    if (mds_mpi_rc != MPI_SUCCESS) {                                                    \
      char mds_mpi_msg[MPI_MAX_ERROR_STRING];                                           \
      int mds_mpi_len = 0;                                                              \
      MPI_Error_string(mds_mpi_rc, mds_mpi_msg, &mds_mpi_len);                          \
      MDS_ASSERT(false, "{} failed: {}", #call, std::string(mds_mpi_msg, mds_mpi_len)); \
    }                                                                                   \
  } while (0)

namespace mds::dist {
namespace {

MPI_Datatype mpi_type(ElemType t) {
  switch (t) {
    case ElemType::bf16:
    case ElemType::fp16:
      return MPI_UINT16_T;  // reduced by the 16-bit operations below
    case ElemType::f32:
      return MPI_FLOAT;
    case ElemType::f64:
      return MPI_DOUBLE;
    case ElemType::i32:
      return MPI_INT32_T;
    case ElemType::i64:
      return MPI_INT64_T;
  }
  MDS_ASSERT(false, "unknown element type");
}

// MPI has no bf16 or fp16: sum and max of H are user operations that combine two values in
// fp32 and round once, as NCCL's 16-bit reductions do at each step.
template <typename H>
void half_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const H*>(in);
  auto* b = static_cast<H*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = H(float(a[i]) + float(b[i]));
}
template <typename H>
void half_max(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const H*>(in);
  auto* b = static_cast<H*>(inout);
  for (int i = 0; i < *len; ++i)
    if (float(a[i]) > float(b[i])) b[i] = a[i];
}
template <typename H>
MPI_Op half_op(ReduceOp op) {
  static MPI_Op sum = MPI_OP_NULL, max = MPI_OP_NULL;  // created on first use, after MPI_Init
  MPI_Op& made = op == ReduceOp::max ? max : sum;
  if (made == MPI_OP_NULL)
    MDS_MPI_CHECK(MPI_Op_create(op == ReduceOp::max ? half_max<H> : half_sum<H>, 1, &made));
  return made;
}

template <typename H>
void divide_half(void* data, int64_t n, int by) {
  auto* p = static_cast<H*>(data);
  for (int64_t i = 0; i < n; ++i) p[i] = H(float(p[i]) / float(by));
}

// avg is a sum followed by a division (MPI has no average).
MPI_Op mpi_op(ReduceOp op, ElemType t) {
  if (t == ElemType::bf16) return half_op<bf16>(op);
  if (t == ElemType::fp16) return half_op<fp16>(op);
  return op == ReduceOp::max ? MPI_MAX : MPI_SUM;
}

int count(int64_t n) {
  MDS_ASSERT(n >= 0 && n <= INT_MAX, "collective of {} elements exceeds MPI's int count", n);
  return int(n);
}

void divide(void* data, int64_t n, ElemType t, int by) {
  switch (t) {
    case ElemType::bf16:
      divide_half<bf16>(data, n, by);
      break;
    case ElemType::fp16:
      divide_half<fp16>(data, n, by);
      break;
    case ElemType::f32: {
      auto* p = static_cast<float*>(data);
      const float inv = 1.0f / float(by);
      for (int64_t i = 0; i < n; ++i) p[i] *= inv;
      break;
    }
    case ElemType::f64: {
      auto* p = static_cast<double*>(data);
      for (int64_t i = 0; i < n; ++i) p[i] /= by;
      break;
    }
    case ElemType::i32: {
      auto* p = static_cast<int32_t*>(data);
      for (int64_t i = 0; i < n; ++i) p[i] /= by;
      break;
    }
    case ElemType::i64: {
      auto* p = static_cast<int64_t*>(data);
      for (int64_t i = 0; i < n; ++i) p[i] /= by;
      break;
    }
  }
}

class MpiCommunicator final : public Communicator {
 public:
  // owns_world: this is COMM_WORLD and finalises MPI when destroyed.
  MpiCommunicator(MPI_Comm comm, bool owns_world) : comm_(comm), owns_world_(owns_world) {
    MDS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MDS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override {
    if (owns_world_) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    } else {
      MPI_Comm_free(&comm_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    MDS_MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
    return std::make_unique<MpiCommunicator>(sub, false);
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    std::_Exit(2);
  }

 protected:
  void do_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) override {
    MDS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, count(n), mpi_type(t), mpi_op(op, t), comm_));
    if (op == ReduceOp::avg) divide(data, n, t, size_);
  }
  void do_start_all_reduce(void* data, int64_t n, ElemType t, ReduceOp op) override {
    Pending& p = pending_.emplace_back(Pending{MPI_REQUEST_NULL, data, n, t, op});
    MDS_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, count(n), mpi_type(t), mpi_op(op, t), comm_,
                                 &p.request));
  }
  void do_wait_all() override {
    for (Pending& p : pending_) {
      MDS_MPI_CHECK(MPI_Wait(&p.request, MPI_STATUS_IGNORE));
      if (p.op == ReduceOp::avg) divide(p.data, p.n, p.t, size_);
    }
    pending_.clear();
  }
  void do_reduce_scatter(const void* in, void* out, int64_t n, ElemType t, ReduceOp op) override {
    MDS_MPI_CHECK(MPI_Reduce_scatter_block(in, out, count(n), mpi_type(t), mpi_op(op, t), comm_));
    if (op == ReduceOp::avg) divide(out, n, t, size_);
  }
  void do_all_gather(const void* in, void* out, int64_t n, ElemType t) override {
    MDS_MPI_CHECK(MPI_Allgather(in, count(n), mpi_type(t), out, count(n), mpi_type(t), comm_));
  }
  void do_all_to_all(const void* in, void* out, int64_t n, ElemType t) override {
    MDS_MPI_CHECK(MPI_Alltoall(in, count(n), mpi_type(t), out, count(n), mpi_type(t), comm_));
  }
  void do_broadcast(void* data, int64_t n, ElemType t, int root) override {
    MDS_MPI_CHECK(MPI_Bcast(data, count(n), mpi_type(t), root, comm_));
  }
  void do_send(const void* data, int64_t n, ElemType t, int dest, int tag) override {
    MDS_MPI_CHECK(MPI_Send(data, count(n), mpi_type(t), dest, tag, comm_));
  }
  void do_recv(void* data, int64_t n, ElemType t, int src, int tag) override {
    MDS_MPI_CHECK(MPI_Recv(data, count(n), mpi_type(t), src, tag, comm_, MPI_STATUS_IGNORE));
  }
  void do_send_recv(const void* send, int64_t n_send, int dest, void* recv, int64_t n_recv, int src,
                    ElemType t, int tag) override {
    MDS_MPI_CHECK(MPI_Sendrecv(send, count(n_send), mpi_type(t), dest, tag, recv, count(n_recv),
                               mpi_type(t), src, tag, comm_, MPI_STATUS_IGNORE));
  }
  void do_barrier() override { MDS_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  MPI_Comm comm_;
  bool owns_world_;
  int rank_ = 0, size_ = 1;
  struct Pending {  // a started all-reduce, and what wait_all does after it
    MPI_Request request;
    void* data;
    int64_t n;
    ElemType t;
    ReduceOp op;
  };
  std::vector<Pending> pending_;
};

// A world (or group) of one: every collective is the identity, a copy from in to out.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::unique_ptr<Communicator> split(int, int) override {
    return std::make_unique<SelfCommunicator>();
  }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(2);
  }

 protected:
  void do_all_reduce(void*, int64_t, ElemType, ReduceOp) override {}
  void do_reduce_scatter(const void* in, void* out, int64_t n, ElemType t, ReduceOp) override {
    copy(in, out, n, t);
  }
  void do_all_gather(const void* in, void* out, int64_t n, ElemType t) override {
    copy(in, out, n, t);
  }
  void do_all_to_all(const void* in, void* out, int64_t n, ElemType t) override {
    copy(in, out, n, t);
  }
  void do_broadcast(void*, int64_t, ElemType, int root) override {
    MDS_ASSERT(root == 0, "broadcast from rank {} in a group of one", root);
  }
  void do_send(const void*, int64_t, ElemType, int dest, int) override {
    MDS_ASSERT(false, "send to rank {} in a group of one", dest);
  }
  void do_recv(void*, int64_t, ElemType, int src, int) override {
    MDS_ASSERT(false, "recv from rank {} in a group of one", src);
  }
  void do_send_recv(const void*, int64_t, int dest, void*, int64_t, int src, ElemType,
                    int) override {
    MDS_ASSERT(false, "send to {} / recv from {} in a group of one", dest, src);
  }
  void do_barrier() override {}

 private:
  static void copy(const void* in, void* out, int64_t n, ElemType t) {
    if (in != out) std::memmove(out, in, size_t(n * elem_size(t)));
  }
};

}  // namespace

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                          "MPI_LOCALRANKID", "PALS_RANKID"})
    if (std::getenv(var)) return true;
  return false;
}

std::unique_ptr<Communicator> init_world() {
  if (!launched_by_mpi()) return make_self_communicator();
  int initialized = 0;
  MDS_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    MDS_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  }
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, true);
}

std::unique_ptr<Communicator> make_self_communicator() {
  return std::make_unique<SelfCommunicator>();
}

}  // namespace mds::dist
