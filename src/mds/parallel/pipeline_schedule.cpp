#include "mds/parallel/pipeline_schedule.h"

#include <algorithm>

#include "mds/core/error.h"

namespace mds::parallel {
namespace {

// The point-to-point moves of one stage; a move to a stage that does not exist is nothing.
template <typename Elem>
class StageLinks {
 public:
  // The caller's receive buffers (StageWork), needed only where something arrives.
  StageLinks(dist::Communicator& pp, int64_t n, Elem* input, Elem* d_output)
      : pp_(pp), n_(n), input_(input), d_output_(d_output) {}
  bool first() const { return pp_.rank() == 0; }
  bool last() const { return pp_.rank() == pp_.size() - 1; }

  const Elem* recv_forward() {
    if (first()) return nullptr;
    pp_.recv(need(input_), n_, pp_.rank() - 1);
    return input_;
  }
  void send_forward(const Elem* output) {
    if (!last()) pp_.send(output, n_, pp_.rank() + 1);
  }
  const Elem* recv_backward() {
    if (last()) return nullptr;
    pp_.recv(need(d_output_), n_, pp_.rank() + 1);
    return d_output_;
  }
  void send_backward(const Elem* d_input) {
    if (!first()) pp_.send(d_input, n_, pp_.rank() - 1);
  }
  const Elem* send_forward_recv_backward(const Elem* output) {
    if (last()) return nullptr;
    pp_.send_recv(output, n_, pp_.rank() + 1, need(d_output_), n_, pp_.rank() + 1);
    return d_output_;
  }
  const Elem* send_backward_recv_forward(const Elem* d_input) {
    if (first()) return nullptr;
    pp_.send_recv(d_input, n_, pp_.rank() - 1, need(input_), n_, pp_.rank() - 1);
    return input_;
  }

 private:
  Elem* need(Elem* buffer) const {
    MDS_ASSERT(buffer, "pipeline stage {} of {} receives without a buffer (StageWork)", pp_.rank(),
               pp_.size());
    return buffer;
  }
  dist::Communicator& pp_;
  int64_t n_;
  Elem* input_;
  Elem* d_output_;
};

}  // namespace

int64_t pipeline_slots(int64_t stage, int64_t stages, int64_t micro_batches) {
  return std::max<int64_t>(1, std::min(stages - stage, micro_batches));
}

template <typename Elem>
void run_one_f_one_b(dist::Communicator& pp, int64_t micro_batches, int64_t n,
                     const StageWork<Elem>& work) {
  StageLinks<Elem> links(pp, n, work.input_buffer, work.d_output_buffer);
  const int64_t M = micro_batches;
  const int64_t warmup = std::min<int64_t>(pp.size() - pp.rank() - 1, M);
  const int64_t steady = M - warmup;

  for (int64_t k = 0; k < warmup; ++k) links.send_forward(work.forward(k, links.recv_forward()));
  const Elem* input = steady > 0 ? links.recv_forward() : nullptr;
  for (int64_t i = 0; i < steady; ++i) {
    const Elem* d_output = links.send_forward_recv_backward(work.forward(warmup + i, input));
    const Elem* d_input = work.backward(i, d_output);
    if (i == steady - 1)
      links.send_backward(d_input);
    else
      input = links.send_backward_recv_forward(d_input);
  }
  for (int64_t k = steady; k < M; ++k) links.send_backward(work.backward(k, links.recv_backward()));
}

template <typename Elem>
void run_forward_only(dist::Communicator& pp, int64_t micro_batches, int64_t n,
                      const std::function<const Elem*(int64_t k, const Elem* input)>& forward,
                      Elem* input_buffer) {
  StageLinks<Elem> links(pp, n, input_buffer, nullptr);
  for (int64_t k = 0; k < micro_batches; ++k) links.send_forward(forward(k, links.recv_forward()));
}

template void run_one_f_one_b(dist::Communicator&, int64_t, int64_t, const StageWork<float>&);
template void run_one_f_one_b(dist::Communicator&, int64_t, int64_t, const StageWork<bf16>&);
template void run_forward_only(dist::Communicator&, int64_t, int64_t,
                               const std::function<const float*(int64_t, const float*)>&, float*);
template void run_forward_only(dist::Communicator&, int64_t, int64_t,
                               const std::function<const bf16*(int64_t, const bf16*)>&, bf16*);
template void run_one_f_one_b(dist::Communicator&, int64_t, int64_t, const StageWork<fp16>&);
template void run_forward_only(dist::Communicator&, int64_t, int64_t,
                               const std::function<const fp16*(int64_t, const fp16*)>&, fp16*);

}  // namespace mds::parallel
