// Every tensor- and sequence-parallel piece of the model against the unsplit one, on whatever
// number of ranks the test runs with (CTest: 2 and 4): the Ulysses all-to-all against a naive
// construction from the full tensor, the TP slices of the parameter table against index
// arithmetic, one block (forward and backward) under every T x S layout, the vocab-parallel
// head, the whole model shard, and the sharded gradient norm. Every rank builds the full
// inputs and weights from fixed seeds, runs the unsplit computation locally, and checks that
// its own shard's results are exactly its part of the unsplit ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "../ops_test_util.h"
#include "mds/dist/topology.h"
#include "mds/model/block.h"
#include "mds/model/llama.h"
#include "mds/model/lm_head.h"
#include "mds/model/params.h"
#include "mds/optim/adamw.h"
#include "mds/parallel/grad_sync.h"
#include "mds/parallel/model_comm.h"
#include "mds/parallel/ulysses.h"
#include "mpi_world.h"

namespace mds {
namespace {

using mds::testing::world;
using model::BatchShape;
using model::LlamaConfig;
using model::ParamInfo;
using model::ParamTable;
using model::TPSplit;

// Heads 8 / kv heads 4 / ffn 96 split over 1, 2 or 4 ranks in any T x S; the vocabulary (100)
// pads to a multiple of 8 T, so the padded rows are masked on the last TP rank.
LlamaConfig small_config(int64_t tp, int64_t layers, int64_t seq) {
  LlamaConfig c;
  c.num_layers = layers;
  c.hidden_size = 64;
  c.ffn_hidden_size = 96;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.seq_length = seq;
  c.vocab_size = 100;
  c.init_method_std = 0.1f;
  c.rope_theta = 500.0;  // fast rotation: a wrong global position changes the result
  c.finalize(8, tp);
  return c;
}

// The T x S factorisations of the world (T S = world), as dist::ParallelSizes.
std::vector<dist::ParallelSizes> tp_sp_layouts(int world_size) {
  std::vector<dist::ParallelSizes> out;
  for (int tp = 1; tp <= world_size; ++tp)
    if (world_size % tp == 0) out.push_back({tp, world_size / tp, 1, 1});
  return out;
}

std::string layout_name(const dist::ParallelSizes& s) {
  return "T" + std::to_string(s.tp) + " S" + std::to_string(s.sp) + " P" + std::to_string(s.pp);
}

// All the model shapes above need: heads, kv heads, ffn and vocab padding divide.
bool fits(int64_t ranks) {
  return ranks > 0 && 4 % ranks == 0;
}

::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want,
                                 double rtol = 1e-5) {
  return test::all_close(got, test::to_double(want), rtol, 1e-5);
}

std::vector<int32_t> random_ids(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = int32_t(gen() % uint32_t(vocab));
  return ids;
}

// Tokens [s0, s0 + len) of each of the b sequences of a [b, s, width] tensor.
template <typename T>
std::vector<T> token_rows(const std::vector<T>& full, int64_t b, int64_t s, int64_t s0, int64_t len,
                          int64_t width) {
  std::vector<T> out;
  out.reserve(b * len * width);
  for (int64_t bi = 0; bi < b; ++bi)
    out.insert(out.end(), full.begin() + (bi * s + s0) * width,
               full.begin() + (bi * s + s0 + len) * width);
  return out;
}

// Random weights for every tensor of the table: N(0, 0.1^2) matrices, 1 + N(0, 0.1^2) norms.
std::vector<float> random_weights(const ParamTable& t, uint32_t seed) {
  std::vector<float> w = test::randn(t.total(), seed, 0.1f);
  for (const ParamInfo& p : t.params())
    if (p.init_std == 0.0f)
      for (int64_t i = 0; i < p.numel; ++i) w[p.offset + i] += 1.0f;
  return w;
}

// The shard's buffer cut out of the unsplit model's buffer, parameter by parameter.
std::vector<float> shard_of(const ParamTable& full, const std::vector<float>& full_buf,
                            const ParamTable& shard) {
  std::vector<float> out(shard.total());
  for (const ParamInfo& p : shard.params())
    model::copy_slice_from_full(p, full_buf.data() + full.at(p.name).offset, out.data() + p.offset);
  return out;
}

// One parameter's values out of a buffer.
std::vector<float> param_values(const ParamInfo& p, const std::vector<float>& buf) {
  return {buf.begin() + p.offset, buf.begin() + p.offset + p.numel};
}

// ---- Ulysses ---------------------------------------------------------------------------------

// q | k | v sections of 8, 4, 4 heads of head dim 2 (the GQA layout, every section divisible
// by 1, 2 and 4 ranks), b = 3 sequences of 5 tokens per rank.
TEST(UlyssesExchange, SeqToHeadsMatchesNaiveAndHeadsToSeqInvertsIt) {
  const std::vector<int64_t> sections = {16, 8, 8};
  const int64_t C = 32, b = 3, s_local = 5;
  if (!fits(world().size())) GTEST_SKIP() << "the sections do not split over " << world().size();
  // The world, and groups of two inside a larger world (a split communicator).
  std::vector<int> group_sizes = {world().size()};
  if (world().size() > 2 && world().size() % 2 == 0) group_sizes.push_back(2);
  for (int S : group_sizes) {
    if (!fits(S)) continue;
    SCOPED_TRACE(::testing::Message() << "S" << S);
    auto sp = world().split(world().rank() / S, world().rank());
    ASSERT_EQ(sp->size(), S);
    const int r = sp->rank();
    const int64_t s = s_local * S, piece = C / S;
    // The whole [b, s, C] tensor (the same on every group), and this rank's tokens of it.
    const std::vector<float> full = test::randn(b * s * C, 11);
    const std::vector<float> mine = token_rows(full, b, s, r * s_local, s_local, C);

    // Naive: every token of every sequence, piece r of each section, sections in order.
    std::vector<float> want;
    for (int64_t row = 0; row < b * s; ++row) {
      int64_t col0 = 0;
      for (int64_t w : sections) {
        for (int64_t j = 0; j < w / S; ++j) want.push_back(full[row * C + col0 + r * (w / S) + j]);
        col0 += w;
      }
    }
    ASSERT_EQ(int64_t(want.size()), b * s * piece);

    parallel::UlyssesExchange ex;
    std::vector<float> heads(b * s * piece, -1.0f), back(b * s_local * C, -1.0f);
    ex.seq_to_heads(*sp, heads.data(), mine.data(), b, s_local, sections);
    EXPECT_TRUE(test::same_bits(heads, want));
    ex.heads_to_seq(*sp, back.data(), heads.data(), b, s_local, sections);
    EXPECT_TRUE(test::same_bits(back, mine)) << "heads_to_seq(seq_to_heads(x)) != x";
    // heads_to_seq on the naive input alone, with a fresh exchange (no staging left over).
    parallel::UlyssesExchange fresh;
    std::vector<float> from_naive(b * s_local * C, -1.0f);
    fresh.heads_to_seq(*sp, from_naive.data(), want.data(), b, s_local, sections);
    EXPECT_TRUE(test::same_bits(from_naive, mine));

    // One section (the attention output), and a second shape through the same exchange.
    const std::vector<int64_t> one = {C};
    const int64_t b2 = 2, s2 = 3;
    const std::vector<float> full2 = test::randn(b2 * s2 * S * C, 12);
    const std::vector<float> mine2 = token_rows(full2, b2, s2 * S, r * s2, s2, C);
    std::vector<float> want2;
    for (int64_t row = 0; row < b2 * s2 * S; ++row)
      for (int64_t j = 0; j < piece; ++j) want2.push_back(full2[row * C + r * piece + j]);
    std::vector<float> heads2(want2.size(), -1.0f), back2(mine2.size(), -1.0f);
    ex.seq_to_heads(*sp, heads2.data(), mine2.data(), b2, s2, one);
    EXPECT_TRUE(test::same_bits(heads2, want2));
    ex.heads_to_seq(*sp, back2.data(), heads2.data(), b2, s2, one);
    EXPECT_TRUE(test::same_bits(back2, mine2));
  }
}

// ---- Parameter slices ------------------------------------------------------------------------

// Each TP rank's slice against index arithmetic on the logical tensor, and the ranks' slices
// together tile every split tensor exactly once.
TEST(ParamTableSlices, MatchIndexArithmeticAndTileTheTensor) {
  const int T = world().size(), r = world().rank();
  if (!fits(T)) GTEST_SKIP() << "the test model does not split over " << T << " ranks";
  const LlamaConfig c = small_config(T, 2, 8);
  const ParamTable full(c), shard(c, model::ModelShard::of(c, r, T, 0, 1));
  ASSERT_EQ(shard.params().size(), full.params().size());
  std::vector<float> full_buf(full.total());
  for (int64_t i = 0; i < full.total(); ++i) full_buf[i] = float(i);  // value = full index
  std::vector<float> local = shard_of(full, full_buf, shard);

  std::vector<float> cover(full.total(), 0.0f);
  for (const ParamInfo& p : shard.params()) {
    SCOPED_TRACE(p.name);
    const ParamInfo& f = full.at(p.name);
    EXPECT_EQ(p.full_shape, f.shape);
    EXPECT_EQ(p.split, f.split);
    const int64_t rows = p.shape[0], cols = p.shape.size() > 1 ? p.shape[1] : 1;
    const int64_t full_cols = p.full_shape.size() > 1 ? p.full_shape[1] : 1;
    int64_t row0 = 0, col0 = 0;
    switch (p.split) {
      case TPSplit::replicated:
        EXPECT_EQ(p.shape, p.full_shape);
        break;
      case TPSplit::rows:
        EXPECT_EQ(rows * T, p.full_shape[0]);
        row0 = r * rows;
        break;
      case TPSplit::cols:
        EXPECT_EQ(cols * T, full_cols);
        col0 = r * cols;
        break;
    }
    int64_t wrong = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        wrong +=
            local[p.offset + i * cols + j] != float(f.offset + (row0 + i) * full_cols + col0 + j);
    EXPECT_EQ(wrong, 0) << "elements of the slice taken from the wrong place";
    std::vector<float> ones(p.numel, 1.0f);
    model::copy_slice_to_full(p, ones.data(), cover.data() + f.offset);
  }
  world().all_reduce(cover.data(), full.total(), dist::ReduceOp::sum);
  for (const ParamInfo& f : full.params()) {
    const float want = f.split == TPSplit::replicated ? float(T) : 1.0f;
    int64_t wrong = 0;
    for (int64_t i = 0; i < f.numel; ++i) wrong += cover[f.offset + i] != want;
    EXPECT_EQ(wrong, 0) << f.name << ": slices do not tile the tensor";
  }
}

// ---- One transformer block -------------------------------------------------------------------

struct BlockResult {
  std::vector<float> y, dx, grads;
};

// block_forward then block_backward of layer 0 with weights w (laid out by `table`).
BlockResult run_block(const LlamaConfig& c, const ParamTable& table, std::vector<float> w,
                      const parallel::ModelComm& comm, const BatchShape& shape,
                      const std::vector<float>& x, const std::vector<float>& dy) {
  const model::BlockDims dims = model::BlockDims::of(c, comm.tp_size(), comm.sp_size());
  const model::RopeTables rope(c);
  model::BlockScratch<float> scratch;
  scratch.resize(dims, shape);
  parallel::UlyssesExchange ulysses;
  model::BlockEnv<float> env{ops::cpu_backend(), c, dims, rope, comm, scratch, ulysses};
  model::BlockActs<float> acts;
  acts.resize(dims, shape);
  BlockResult out;
  out.grads.assign(table.total(), 0.0f);
  const auto bw = model::BlockWeights<float>::in(w.data(), table, 0);
  const auto bg = model::BlockWeights<float>::in(out.grads.data(), table, 0);
  out.y.assign(shape.n() * c.hidden_size, 0.0f);
  model::block_forward(out.y.data(), x.data(), bw, acts, env, shape);
  out.dx = dy;
  model::block_backward(out.dx.data(), x.data(), bw, bg, acts, env, shape);
  return out;
}

// The block on T x S ranks against the unsplit block: this rank's token rows of y and dx, and
// its weight-gradient slices summed over the SP group (each SP rank's tokens contribute).
void check_block_layout(const dist::ParallelSizes& sizes) {
  SCOPED_TRACE(layout_name(sizes));
  const int64_t T = sizes.tp, S = sizes.sp, b = 2, s = 16, s_local = s / S;
  const dist::Topology topo(sizes, world().rank());
  dist::ProcessGroups groups = dist::make_groups(world(), topo);
  const int64_t tp_rank = topo.coords().tp, sp_rank = topo.coords().sp;
  const LlamaConfig c = small_config(T, 1, s);
  const int64_t h = c.hidden_size;
  const ParamTable full(c), shard(c, model::ModelShard::of(c, tp_rank, T, 0, 1));
  const std::vector<float> w = random_weights(full, 21);
  const std::vector<float> x = test::randn(b * s * h, 22), dy = test::randn(b * s * h, 23);

  const BlockResult want = run_block(c, full, w, parallel::ModelComm{}, {b, s, 0}, x, dy);

  const parallel::ModelComm comm{groups.tp.get(), groups.sp.get()};
  const int64_t t0 = sp_rank * s_local;
  BlockResult got =
      run_block(c, shard, shard_of(full, w, shard), comm, {b, s_local, t0},
                token_rows(x, b, s, t0, s_local, h), token_rows(dy, b, s, t0, s_local, h));
  EXPECT_TRUE(close(got.y, token_rows(want.y, b, s, t0, s_local, h))) << "y";
  EXPECT_TRUE(close(got.dx, token_rows(want.dx, b, s, t0, s_local, h))) << "dx";
  groups.sp->all_reduce(got.grads.data(), shard.total(), dist::ReduceOp::sum);
  const std::vector<float> want_grads = shard_of(full, want.grads, shard);
  for (const ParamInfo& p : shard.params())
    EXPECT_TRUE(close(param_values(p, got.grads), param_values(p, want_grads))) << p.name;
}

TEST(ParallelBlock, TensorParallelMatchesUnsplitBlock) {
  if (!fits(world().size())) GTEST_SKIP() << "heads do not split over " << world().size();
  check_block_layout({world().size(), 1, 1, 1});
}

TEST(ParallelBlock, SequenceParallelMatchesUnsplitBlock) {
  if (!fits(world().size())) GTEST_SKIP() << "heads do not split over " << world().size();
  check_block_layout({1, world().size(), 1, 1});
}

TEST(ParallelBlock, TensorTimesSequenceParallelMatchesUnsplitBlock) {
  int checked = 0;
  for (const dist::ParallelSizes& sizes : tp_sp_layouts(world().size()))
    if (sizes.tp > 1 && sizes.sp > 1 && fits(sizes.tp * sizes.sp)) {
      check_block_layout(sizes);
      ++checked;
    }
  if (checked == 0) GTEST_SKIP() << "no T > 1, S > 1 layout of " << world().size() << " ranks";
}

// ---- Vocab-parallel head ---------------------------------------------------------------------

// The final norm, vocab-parallel logits and cross entropy on T = world ranks against one rank.
// n = 300 tokens spans two row chunks; targets cover every rank's vocabulary range.
TEST(VocabParallelHead, LossAndGradientsMatchUnsplitHead) {
  const int T = world().size(), r = world().rank();
  if (!fits(T)) GTEST_SKIP() << "the vocabulary padding does not split over " << T;
  const LlamaConfig c = small_config(T, 1, 8);
  const int64_t n = 300, h = c.hidden_size, vpad = c.padded_vocab_size, rows = vpad / T;
  ASSERT_GT(n, model::LMHead<float>::kChunk);
  ASSERT_LT(c.vocab_size, vpad) << "the test wants masked padding rows";
  const std::vector<float> x = test::randn(n * h, 31), head_w = test::randn(vpad * h, 32, 0.2f);
  std::vector<float> norm_w = test::randn(h, 33, 0.1f);
  for (float& v : norm_w) v += 1.0f;
  const std::vector<int32_t> targets = random_ids(n, c.vocab_size, 34);
  const float loss_weight = 1.0f / float(n);
  // Gradients accumulate: start both from the same nonzero values.
  const std::vector<float> d_norm0 = test::randn(h, 35), d_head0 = test::randn(vpad * h, 36);

  model::LMHead<float> one;
  std::vector<float> dx(n * h), d_norm = d_norm0, d_head = d_head0;
  const double loss =
      one.forward_backward(dx.data(), d_norm.data(), d_head.data(), x.data(), targets.data(), n,
                           norm_w.data(), head_w.data(), loss_weight, c, parallel::ModelComm{});
  const double loss_fwd = one.forward(x.data(), targets.data(), n, norm_w.data(), head_w.data(), c,
                                      parallel::ModelComm{});
  EXPECT_NEAR(loss_fwd, loss, 1e-9 * std::fabs(loss));
  EXPECT_GT(loss, 0.0);

  auto tp = world().split(0, r);
  const parallel::ModelComm comm{tp.get(), nullptr};
  const std::vector<float> my_head(head_w.begin() + r * rows * h,
                                   head_w.begin() + (r + 1) * rows * h);
  model::LMHead<float> split;
  std::vector<float> sdx(n * h, -1.0f), sd_norm = d_norm0;
  std::vector<float> sd_head(d_head0.begin() + r * rows * h, d_head0.begin() + (r + 1) * rows * h);
  const double sloss =
      split.forward_backward(sdx.data(), sd_norm.data(), sd_head.data(), x.data(), targets.data(),
                             n, norm_w.data(), my_head.data(), loss_weight, c, comm);
  EXPECT_NEAR(sloss, loss, 1e-5 * std::fabs(loss));
  EXPECT_TRUE(close(sdx, dx)) << "dx";
  EXPECT_TRUE(close(sd_norm, d_norm)) << "d_norm_w";
  EXPECT_TRUE(close(sd_head, std::vector<float>(d_head.begin() + r * rows * h,
                                                d_head.begin() + (r + 1) * rows * h)))
      << "d_head_w rows " << r * rows << ".." << (r + 1) * rows;
  const double sloss_fwd =
      split.forward(x.data(), targets.data(), n, norm_w.data(), my_head.data(), c, comm);
  EXPECT_NEAR(sloss_fwd, loss, 1e-5 * std::fabs(loss));
}

// ---- The whole model as a TP x SP shard ------------------------------------------------------

// LlamaModel on every T x S layout of the world against LlamaModel(cfg) on one rank: the same
// init_weights gives the unsplit weights' slices bit for bit; the loss (mean over the SP
// group of the ranks' token means) and the gradients (averaged over SP) match.
TEST(LlamaShard, EveryTensorSequenceLayoutMatchesWholeModel) {
  const int64_t b = 2, s = 16;
  for (const dist::ParallelSizes& sizes : tp_sp_layouts(world().size())) {
    if (!fits(sizes.tp) || !fits(sizes.sp)) continue;
    SCOPED_TRACE(layout_name(sizes));
    const int64_t T = sizes.tp, S = sizes.sp, s_local = s / S;
    const dist::Topology topo(sizes, world().rank());
    dist::ProcessGroups groups = dist::make_groups(world(), topo);
    const LlamaConfig c = small_config(T, 2, s);
    const std::vector<int32_t> tokens = random_ids(b * s, c.vocab_size, 41),
                               targets = random_ids(b * s, c.vocab_size, 42);

    model::LlamaModel whole(c);
    whole.init_weights(5);
    whole.zero_grads();
    const double loss = whole.forward_backward(tokens.data(), targets.data(), b, s, 0.5f);
    const double eval = whole.forward_loss(tokens.data(), targets.data(), b, s);

    model::LlamaModel shard(c, model::ModelShard::of(c, topo.coords().tp, T, 0, 1),
                            parallel::ModelComm{groups.tp.get(), groups.sp.get()});
    shard.init_weights(5);
    EXPECT_TRUE(test::same_bits(shard.params().to_host(),
                                shard_of(whole.table(), whole.params().to_host(), shard.table())))
        << "init_weights: the shard's weights are not the whole model's slices";
    shard.zero_grads();
    const int64_t t0 = topo.coords().sp * s_local;
    const auto my_tokens = token_rows(tokens, b, s, t0, s_local, 1),
               my_targets = token_rows(targets, b, s, t0, s_local, 1);
    double sloss = shard.forward_backward(my_tokens.data(), my_targets.data(), b, s_local, 0.5f);
    double seval = shard.forward_loss(my_tokens.data(), my_targets.data(), b, s_local);
    groups.sp->all_reduce(&sloss, 1, dist::ReduceOp::avg);
    groups.sp->all_reduce(&seval, 1, dist::ReduceOp::avg);
    EXPECT_NEAR(sloss, loss, 1e-5 * loss);
    EXPECT_NEAR(seval, eval, 1e-5 * eval);
    groups.sp->all_reduce(shard.grads().data(), shard.table().total(), dist::ReduceOp::avg);
    const std::vector<float> want = shard_of(whole.table(), whole.grads().to_host(), shard.table());
    for (const ParamInfo& p : shard.table().params())
      EXPECT_TRUE(close(param_values(p, shard.grads().to_host()), param_values(p, want))) << p.name;
  }
}

// ---- Gradient norm over TP x PP shards -------------------------------------------------------

// The shards of one random gradient on every T x P layout of the world: the sharded norm
// equals the norm of the unsplit buffer (replicated norms counted once, not T times).
TEST(ShardedGradNorm, EveryTensorPipelineLayoutMatchesUnsplitNorm) {
  const int p = world().size();
  int checked = 0;
  for (int T = 1; T <= p; ++T) {
    if (p % T != 0 || !fits(T)) continue;
    const dist::ParallelSizes sizes{T, 1, 1, p / T};
    SCOPED_TRACE(layout_name(sizes));
    const dist::Topology topo(sizes, world().rank());
    dist::ProcessGroups groups = dist::make_groups(world(), topo);
    const LlamaConfig c = small_config(T, 5, 8);  // 5 layers: uneven stages
    const ParamTable full(c);
    // Replicated norms get large gradients, so counting them T times would show.
    std::vector<float> g = test::randn(full.total(), 51);
    for (const ParamInfo& q : full.params())
      if (q.split == TPSplit::replicated)
        for (int64_t i = 0; i < q.numel; ++i) g[q.offset + i] *= 30.0f;
    const double want = optim::global_grad_norm(g.data(), full.total());
    const ParamTable shard(
        c, model::ModelShard::of(c, topo.coords().tp, T, topo.coords().pp, sizes.pp));
    const std::vector<float> local = shard_of(full, g, shard);
    const double got =
        parallel::sharded_grad_norm(shard, local.data(), topo.coords().tp, *groups.tp, *groups.pp);
    EXPECT_NEAR(got, want, 1e-9 * want);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace mds
