// The pipeline's point-to-point moves and the 1F1B schedule over P = world stages (CTest: 2
// and 4): send_recv around a ring and across pairs; the schedule driving fake stages whose
// forwards and backwards are affine maps, so each value received says which micro-batch went
// through which stages in which order; and a real LlamaModel cut into stages (and, where the
// world allows, TP slices) against the whole model on one rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../ops_test_util.h"
#include "mds/dist/topology.h"
#include "mds/model/llama.h"
#include "mds/model/params.h"
#include "mds/parallel/model_comm.h"
#include "mds/parallel/pipeline_schedule.h"
#include "mpi_world.h"

namespace mds {
namespace {

using mds::testing::world;

// ---- send_recv -------------------------------------------------------------------------------

// Each rank sends 3 + 2r elements to r + 1 and receives 3 + 2(r - 1) from r - 1, all at once:
// a blocking send/recv pair would deadlock here for messages past the eager limit, so one
// size is large (1 MB).
TEST(SendRecv, RingExchangeWithDistinctPayloadsAndSizes) {
  const int p = world().size(), r = world().rank();
  const int next = (r + 1) % p, prev = (r + p - 1) % p;
  for (int64_t big : {int64_t(0), int64_t(1) << 18}) {
    auto ring = world().split(0, r);  // fresh counters
    const int64_t n_out = 3 + 2 * r + big, n_in = 3 + 2 * prev + big;
    std::vector<float> out(n_out), in(n_in, -1.0f);
    for (int64_t i = 0; i < n_out; ++i) out[i] = float(1000 * r + i % 1000);
    ring->send_recv(out.data(), n_out, next, in.data(), n_in, prev, 3);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n_in; ++i) wrong += in[i] != float(1000 * prev + i % 1000);
    EXPECT_EQ(wrong, 0) << "from rank " << prev << ", " << n_in << " elements";
    EXPECT_EQ(ring->stats().calls[int(dist::CommKind::send_recv)], 1);
    EXPECT_EQ(ring->stats().bytes[int(dist::CommKind::send_recv)], (n_out + n_in) * 4);

    // The other way round, in 64-bit integers.
    std::vector<int64_t> out64(n_in), in64(n_out, -1);
    for (int64_t i = 0; i < n_in; ++i) out64[i] = (int64_t(r) << 40) + i;
    ring->send_recv(out64.data(), n_in, prev, in64.data(), n_out, next, 4);
    wrong = 0;
    for (int64_t i = 0; i < n_out; ++i) wrong += in64[i] != (int64_t(next) << 40) + i;
    EXPECT_EQ(wrong, 0) << "from rank " << next;
  }
}

// The pipeline's crossing exchange: stage 2j sends an activation to 2j + 1 while 2j + 1 sends
// a gradient of another size back, each with one send_recv to the other.
TEST(SendRecv, PairsCrossWithoutDeadlock) {
  const int p = world().size(), r = world().rank();
  if (p % 2 != 0) GTEST_SKIP() << "pairs need an even world, not " << p;
  const int peer = r ^ 1;
  for (int64_t n : {int64_t(5), int64_t(1) << 18}) {
    const int64_t n_out = n + r, n_in = n + peer;
    std::vector<float> out(n_out), in(n_in, -1.0f);
    for (int64_t i = 0; i < n_out; ++i) out[i] = float(r) + float(i % 4096) * 0.5f;
    world().send_recv(out.data(), n_out, peer, in.data(), n_in, peer);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n_in; ++i) wrong += in[i] != float(peer) + float(i % 4096) * 0.5f;
    EXPECT_EQ(wrong, 0) << "from rank " << peer << ", " << n_in << " elements";
  }
}

// ---- The schedule with fake stages -----------------------------------------------------------

// Stage p's forward is x -> 3x + (p + 1), its backward d -> 2d + (p + 1): affine maps that do
// not commute, so a value that skipped, repeated or reordered a stage comes out wrong. Micro-
// batch k enters the first stage as x_i = k + (i mod 7); the last stage's gradient is
// 10 k + (i mod 5). All values stay small integers, exact in float.
float fake_input(int64_t k, int64_t i) {
  return float(k + i % 7);
}
float fake_d_output(int64_t k, int64_t i) {
  return float(10 * k + i % 5);
}
// What stage `stage` receives as input of micro-batch k: the forwards of stages 0..stage-1.
float expected_input(int64_t k, int64_t i, int64_t stage) {
  float x = fake_input(k, i);
  for (int64_t q = 0; q < stage; ++q) x = 3 * x + float(q + 1);
  return x;
}
// What stage `stage` receives as d_output of micro-batch k: the backwards of stages
// P-1..stage+1 (the last stage's seed itself when stage = P - 1).
float expected_d_output(int64_t k, int64_t i, int64_t stage, int64_t stages) {
  float d = fake_d_output(k, i);
  for (int64_t q = stages - 1; q > stage; --q) d = 2 * d + float(q + 1);
  return d;
}

// The 1F1B order of stage p, written out from the schedule's definition: w = min(P - p - 1, M)
// forwards, then (forward w + i, backward i) pairs, then the remaining backwards.
// 'F'/'B' events as (kind, micro-batch).
std::vector<std::pair<char, int64_t>> one_f_one_b_order(int64_t p, int64_t P, int64_t M) {
  std::vector<std::pair<char, int64_t>> ev;
  const int64_t w = std::min(P - p - 1, M);
  for (int64_t k = 0; k < w; ++k) ev.push_back({'F', k});
  for (int64_t i = 0; i < M - w; ++i) {
    ev.push_back({'F', w + i});
    ev.push_back({'B', i});
  }
  for (int64_t k = M - w; k < M; ++k) ev.push_back({'B', k});
  return ev;
}

struct FakeStage {
  int64_t stage, stages, n;
  std::vector<float> out, d_in;  // one buffer each: the schedule must send before the next call
  std::vector<std::pair<char, int64_t>> events;
  std::vector<int64_t> in_flight;  // forwarded, not yet backwarded
  int64_t max_in_flight = 0, bad_inputs = 0, bad_d_outputs = 0, slot_clashes = 0;
  int64_t slots;

  FakeStage(int64_t p, int64_t P, int64_t n_, int64_t M)
      : stage(p), stages(P), n(n_), out(n_), d_in(n_), slots(parallel::pipeline_slots(p, P, M)) {}

  const float* forward(int64_t k, const float* input) {
    events.push_back({'F', k});
    if ((stage == 0) != (input == nullptr)) ++bad_inputs;  // null exactly on the first stage
    for (int64_t j : in_flight) slot_clashes += j % slots == k % slots;
    in_flight.push_back(k);
    max_in_flight = std::max<int64_t>(max_in_flight, int64_t(in_flight.size()));
    for (int64_t i = 0; i < n; ++i) {
      const float x = input ? input[i] : fake_input(k, i);
      if (input && x != expected_input(k, i, stage)) ++bad_inputs;
      out[i] = 3 * x + float(stage + 1);
    }
    return out.data();
  }
  const float* backward(int64_t k, const float* d_output) {
    events.push_back({'B', k});
    if ((stage == stages - 1) != (d_output == nullptr)) ++bad_d_outputs;
    in_flight.erase(std::remove(in_flight.begin(), in_flight.end(), k), in_flight.end());
    for (int64_t i = 0; i < n; ++i) {
      const float d = d_output ? d_output[i] : fake_d_output(k, i);
      if (d != expected_d_output(k, i, stage, stages)) ++bad_d_outputs;
      d_in[i] = 2 * d + float(stage + 1);
    }
    return d_in.data();
  }
};

// Every stage sees exactly its composed inputs and gradients, in the 1F1B order, with at most
// pipeline_slots micro-batches in flight and no two of them in the same slot (k mod slots).
// n = 3 (eager messages) and n = 40000 (past the eager limit: blocking sends must pair up).
TEST(OneFOneB, FakeStagesSeeComposedValuesInScheduleOrder) {
  const int64_t P = world().size(), p = world().rank();
  auto pp = world().split(0, int(p));
  for (int64_t n : {int64_t(3), int64_t(40000)})
    for (int64_t M : {int64_t(1), P - 1, P, 2 * P + 1}) {
      SCOPED_TRACE(::testing::Message()
                   << "stage " << p << " of " << P << ", M " << M << ", n " << n);
      FakeStage fake(p, P, n, M);
      parallel::StageWork work;
      work.forward = [&](int64_t k, const float* in) { return fake.forward(k, in); };
      work.backward = [&](int64_t k, const float* d) { return fake.backward(k, d); };
      std::vector<float> input(static_cast<size_t>(n)), d_output(static_cast<size_t>(n));
      work.input_buffer = input.data();
      work.d_output_buffer = d_output.data();
      parallel::run_one_f_one_b(*pp, M, n, work);
      EXPECT_EQ(fake.bad_inputs, 0);
      EXPECT_EQ(fake.bad_d_outputs, 0);
      EXPECT_EQ(fake.events, one_f_one_b_order(p, P, M));
      std::vector<int64_t> backwards;
      for (auto [kind, k] : fake.events)
        if (kind == 'B') backwards.push_back(k);
      std::vector<int64_t> in_order(M);
      for (int64_t k = 0; k < M; ++k) in_order[k] = k;
      EXPECT_EQ(backwards, in_order) << "backwards out of micro-batch order";
      EXPECT_TRUE(fake.in_flight.empty());
      EXPECT_LE(fake.max_in_flight, parallel::pipeline_slots(p, P, M));
      EXPECT_EQ(fake.max_in_flight, std::min(P - p, M)) << "not 1F1B's activation memory";
      EXPECT_EQ(fake.slot_clashes, 0);
    }
}

TEST(OneFOneB, PipelineSlots) {
  EXPECT_EQ(parallel::pipeline_slots(0, 4, 8), 4);
  EXPECT_EQ(parallel::pipeline_slots(3, 4, 8), 1);
  EXPECT_EQ(parallel::pipeline_slots(1, 4, 2), 2);
  EXPECT_EQ(parallel::pipeline_slots(0, 1, 5), 1);
  EXPECT_EQ(parallel::pipeline_slots(0, 4, 0), 1);
}

TEST(ForwardOnly, EveryStageSeesEachMicroBatchInOrder) {
  const int64_t P = world().size(), p = world().rank(), n = 40000;
  auto pp = world().split(0, int(p));
  for (int64_t M : {int64_t(1), 2 * P + 1}) {
    SCOPED_TRACE(::testing::Message() << "stage " << p << ", M " << M);
    FakeStage fake(p, P, n, M);
    std::vector<float> input(static_cast<size_t>(n));
    parallel::run_forward_only<float>(
        *pp, M, n, [&](int64_t k, const float* in) { return fake.forward(k, in); }, input.data());
    EXPECT_EQ(fake.bad_inputs, 0);
    std::vector<std::pair<char, int64_t>> want;
    for (int64_t k = 0; k < M; ++k) want.push_back({'F', k});
    EXPECT_EQ(fake.events, want);
  }
}

// ---- A real model through the schedule -------------------------------------------------------

model::LlamaConfig pipeline_config(int64_t tp) {
  model::LlamaConfig c;
  c.num_layers = 5;  // uneven stages on 2 and 4 ranks
  c.hidden_size = 32;
  c.ffn_hidden_size = 64;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 8;
  c.vocab_size = 60;
  c.init_method_std = 0.1f;
  c.rope_theta = 500.0;
  c.finalize(8, tp);
  return c;
}

std::vector<int32_t> random_ids(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = int32_t(gen() % uint32_t(vocab));
  return ids;
}

// M micro-batches through LlamaModel on T x P ranks, driven by run_one_f_one_b as the trainer
// does (slot k mod pipeline_slots), against the whole model's forward_backward on each micro-
// batch in turn: the last stage's loss, and every stage's gradients against the whole model's
// same-name gradients (their TP slices). With T = 1 the arithmetic is the same, bit for bit.
void check_pipeline_layout(int64_t T, int64_t P, int64_t M) {
  SCOPED_TRACE(::testing::Message() << "T" << T << " P" << P << " M" << M);
  const dist::ParallelSizes sizes{int(T), 1, 1, int(P)};
  const dist::Topology topo(sizes, world().rank());
  dist::ProcessGroups groups = dist::make_groups(world(), topo);
  const int64_t stage = topo.coords().pp, tp_rank = topo.coords().tp;
  const model::LlamaConfig c = pipeline_config(T);
  const int64_t b = 2, s = c.seq_length, n = b * s, h = c.hidden_size;
  std::vector<std::vector<int32_t>> tokens, targets;
  for (int64_t k = 0; k < M; ++k) {
    tokens.push_back(random_ids(n, c.vocab_size, uint32_t(100 + k)));
    targets.push_back(random_ids(n, c.vocab_size, uint32_t(200 + k)));
  }

  model::LlamaModel whole(c);
  whole.init_weights(9);
  whole.zero_grads();
  double want_loss = 0;
  for (int64_t k = 0; k < M; ++k)
    want_loss +=
        whole.forward_backward(tokens[k].data(), targets[k].data(), b, s, 1.0f / float(M)) /
        double(M);

  model::LlamaModel part(c, model::ModelShard::of(c, tp_rank, T, stage, P),
                         parallel::ModelComm{groups.tp.get(), nullptr});
  part.init_weights(9);
  part.zero_grads();
  const int64_t slots = parallel::pipeline_slots(stage, P, M);
  part.prepare({b, s, 0}, int(slots));
  const bool last = stage == P - 1;
  double loss = 0;
  parallel::StageWork work;
  work.forward = [&](int64_t k, const float* input) {
    const float* out = part.forward(int(k % slots), tokens[k].data(), input);
    if (last)
      loss += part.loss_and_grad(int(k % slots), targets[k].data(), 1.0f / float(M)) / double(M);
    return out;
  };
  work.backward = [&](int64_t k, const float* d_output) {
    return part.backward(int(k % slots), d_output);
  };
  work.input_buffer = part.stage_input();
  work.d_output_buffer = part.stage_d_output();
  parallel::run_one_f_one_b(*groups.pp, M, n * h, work);

  if (last) {
    EXPECT_NEAR(loss, want_loss, 1e-6 * want_loss);
  }
  for (const model::ParamInfo& q : part.table().params()) {
    const model::ParamInfo& f = whole.table().at(q.name);
    std::vector<float> want(q.numel),
        got(part.grads().begin() + q.offset, part.grads().begin() + q.offset + q.numel);
    model::copy_slice_from_full(q, whole.grads().data() + f.offset, want.data());
    if (T == 1) {
      EXPECT_TRUE(test::same_bits(got, want)) << q.name << " (not bitwise)";
    }
    EXPECT_TRUE(test::all_close(got, test::to_double(want), 1e-5, 1e-5)) << q.name;
  }
}

TEST(PipelineModel, StagesMatchWholeModel) {
  const int64_t P = world().size();
  if (P > 5) GTEST_SKIP() << "5 layers do not make " << P << " stages";
  for (int64_t M : {int64_t(1), P, 2 * P + 1}) check_pipeline_layout(1, P, M);
}

TEST(PipelineModel, TensorTimesPipelineMatchesWholeModel) {
  const int64_t p = world().size();
  if (p % 2 != 0 || p / 2 < 2) GTEST_SKIP() << "no T2 x P>=2 layout of " << p << " ranks";
  check_pipeline_layout(2, p / 2, p + 1);
}

}  // namespace
}  // namespace mds
