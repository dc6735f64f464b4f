// A transformer block in bf16 (Megatron's mixed precision: bf16 weights and activations, fp32
// weight gradients, rstd and lse) against the same block in fp32 on the same bf16-rounded
// weights and input, through the CPU backend's bf16 reference kernels (each bf16 output the
// fp32 result rounded once). The bf16 block stays within a few bf16 roundings per op of fp32:
// the tolerance is what ~10 chained ops of relative error 2^-8 allow, and a wrong index,
// overload or buffer type misses it by far.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "guarded_backend.h"
#include "mds/model/block.h"
#include "mds/ops/backend.h"
#include "model_test_util.h"

namespace mds {
namespace {

using model::BatchShape;
using model::LlamaConfig;

constexpr double kBf16BlockRelL2 = 2e-2;  // measured ~3.5e-3 on y and dx

LlamaConfig config() {
  LlamaConfig c;
  c.num_layers = 1;
  c.hidden_size = 64;
  c.ffn_hidden_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 24;
  c.vocab_size = 128;
  c.init_method_std = 0.1f;
  c.finalize(128);
  return c;
}

std::vector<float> randn_bf16(size_t n, uint32_t seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = round_to_bf16(normal(gen));
  return v;
}

template <typename Elem>
Buffer<Elem> on(ops::Backend& k, const std::vector<float>& host) {
  std::vector<Elem> cast(host.size());
  for (size_t i = 0; i < host.size(); ++i) cast[i] = Elem(host[i]);
  Buffer<Elem> b(k, int64_t(host.size()));
  b.upload(cast.data(), int64_t(cast.size()));
  return b;
}

template <typename Elem>
std::vector<float> as_float(const Buffer<Elem>& b) {
  const std::vector<Elem> h = b.to_host();
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = float(h[i]);
  return out;
}

struct BlockRun {
  std::vector<float> y, dx, grads;
};

// Forward then backward of layer 0 (weights w laid out by the whole model's table).
template <typename Elem>
BlockRun run_block(ops::Backend& k, const LlamaConfig& c, const model::ParamTable& table,
                   const std::vector<float>& w, const std::vector<float>& x,
                   const std::vector<float>& dy, bool selective) {
  const BatchShape shape{2, c.seq_length, 0};
  const model::BlockDims dims = model::BlockDims::of(c, 1, 1);
  const model::RopeTables rope(c, k);
  model::BlockScratch<Elem> scratch(k);
  scratch.resize(dims, shape, selective);
  const parallel::ModelComm comm;
  parallel::UlyssesExchange ulysses(k);
  model::BlockEnv<Elem> env{k, c, dims, rope, comm, scratch, ulysses, selective};
  model::BlockActs<Elem> acts(k);
  acts.resize(dims, shape, !selective);
  Buffer<Elem> weights = on<Elem>(k, w), xb = on<Elem>(k, x), yb(k, int64_t(x.size())),
               dxb = on<Elem>(k, dy);
  Buffer<float> grads(k, table.total());
  grads.zero();
  const auto bw = model::BlockWeights<Elem>::in(weights.data(), table, 0);
  const auto bg = model::BlockGrads::in(grads.data(), table, 0);
  model::block_forward(yb.data(), xb.data(), bw, acts, env, shape);
  model::block_backward(dxb.data(), xb.data(), bw, bg, acts, env, shape);
  return {as_float(yb), as_float(dxb), grads.to_host()};
}

void expect_close(const BlockRun& got, const BlockRun& want, const model::ParamTable& table) {
  EXPECT_LT(test::rel_l2(got.y.data(), want.y.data(), int64_t(want.y.size())), kBf16BlockRelL2);
  EXPECT_LT(test::rel_l2(got.dx.data(), want.dx.data(), int64_t(want.dx.size())), kBf16BlockRelL2);
  for (const model::ParamInfo& p : table.params())
    if (p.name.rfind("model.layers.0.", 0) == 0)
      EXPECT_LT(test::rel_l2(got.grads.data() + p.offset, want.grads.data() + p.offset, p.numel),
                kBf16BlockRelL2)
          << p.name;
}

TEST(BlockBf16, ForwardAndBackwardStayWithinBf16RoundingOfFp32) {
  const LlamaConfig c = config();
  const model::ParamTable table(c);
  const int64_t nh = 2 * c.seq_length * c.hidden_size;
  std::vector<float> w = randn_bf16(size_t(table.total()), 1, 0.1f);
  for (const model::ParamInfo& p : table.params())
    if (p.init_std == 0.0f)  // norms near 1
      for (int64_t i = 0; i < p.numel; ++i) w[size_t(p.offset + i)] += 1.0f;
  const std::vector<float> x = randn_bf16(size_t(nh), 2, 1.0f),
                           dy = randn_bf16(size_t(nh), 3, 0.1f);
  for (bool selective : {false, true}) {
    SCOPED_TRACE(selective ? "selective recomputation" : "keep everything");
    const BlockRun want = run_block<float>(ops::cpu_backend(), c, table, w, x, dy, selective);
    const BlockRun got = run_block<bf16>(ops::cpu_backend(), c, table, w, x, dy, selective);
    expect_close(got, want, table);
    // The bf16 block is not the fp32 one by accident: its outputs are bf16 values.
    for (float v : got.y) ASSERT_EQ(v, round_to_bf16(v));
    test::GuardedBackend guarded;  // and it touches its memory only through the backend
    const BlockRun again = run_block<bf16>(guarded, c, table, w, x, dy, selective);
    EXPECT_EQ(again.y, got.y);
    EXPECT_EQ(again.dx, got.dx);
    EXPECT_EQ(again.grads, got.grads);
  }
}

}  // namespace
}  // namespace mds
