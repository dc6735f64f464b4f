// A transformer block in 16-bit storage H = bf16 and fp16 (Megatron's mixed precision: H weights
// and activations, fp32 weight gradients, rstd and lse) against the same block in fp32 on the
// same H-rounded weights and input, through the CPU backend's 16-bit reference kernels (each H
// output the fp32 result rounded once). The H block stays within a few H roundings per op of
// fp32: the tolerance is what ~10 chained ops of relative error u (H's unit roundoff: 2^-8 for
// bf16, 2^-11 for fp16) allow, and a wrong index, overload or buffer type misses it by far, as
// does a single wrong element of the SwiGLU (a deliberate fault, for both types).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "guarded_backend.h"
#include "half_test_util.h"
#include "mds/model/block.h"
#include "mds/ops/backend.h"
#include "mds/ops/cpu/cpu_backend.h"
#include "model_test_util.h"

namespace mds {
namespace {

using model::BatchShape;
using model::LlamaConfig;

using test::randn_half;
using test::round_to;
using test::unit_roundoff;

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

// Every output and layer-0 weight gradient within ||got - want|| / ||want|| < 5u of fp32; the
// worst of them reported. Measured (rel. L2): bf16 y 3.2e-3, dx 3.6e-3, gradients 4.6e-3 to
// 6.8e-3 (0.8u to 1.7u); fp16 y 4.1e-4, dx 4.5e-4, gradients 6.4e-4 to 9.1e-4 (0.8u to 1.9u).
template <typename H>
::testing::AssertionResult close_to(const BlockRun& got, const BlockRun& want,
                                    const model::ParamTable& table) {
  const double tol = 5 * unit_roundoff<H>();
  std::vector<std::pair<std::string, double>> errors = {
      {"y", test::rel_l2(got.y.data(), want.y.data(), int64_t(want.y.size()))},
      {"dx", test::rel_l2(got.dx.data(), want.dx.data(), int64_t(want.dx.size()))}};
  for (const model::ParamInfo& p : table.params())
    if (p.name.rfind("model.layers.0.", 0) == 0)
      errors.emplace_back(
          p.name, test::rel_l2(got.grads.data() + p.offset, want.grads.data() + p.offset, p.numel));
  auto failure = ::testing::AssertionFailure();
  bool ok = true;
  for (const auto& [name, err] : errors)
    if (!(err < tol)) ok = false, failure << name << ": relative L2 error " << err << "; ";
  if (ok) return ::testing::AssertionSuccess();
  return failure << "the tolerance is 5u = " << tol << " for " << storage_name<H>();
}

// The CPU backend with one element of every H SwiGLU output, the one of largest magnitude,
// multiplied by `factor`: a fault the block comparison must catch.
template <typename H>
class FaultySwiglu final : public ops::CpuBackend {
 public:
  explicit FaultySwiglu(float factor) : factor_(factor) {}
  using ops::CpuBackend::swiglu_forward;
  void swiglu_forward(H* h, const H* gu, int64_t n, int64_t f) override {
    ops::swiglu_forward(h, gu, n, f);  // the reference kernel (this is host memory)
    int64_t k = 0;
    for (int64_t i = 1; i < n * f; ++i)
      if (std::fabs(float(h[i])) > std::fabs(float(h[k]))) k = i;
    h[k] = H(float(h[k]) * factor_);
  }

 private:
  float factor_;
};

template <typename H>
class BlockHalf : public ::testing::Test {};
TYPED_TEST_SUITE(BlockHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(BlockHalf, ForwardAndBackwardStayWithinHalfRoundingOfFp32) {
  using H = TypeParam;
  const LlamaConfig c = config();
  const model::ParamTable table(c);
  const int64_t nh = 2 * c.seq_length * c.hidden_size;
  std::vector<float> w = randn_half<H>(size_t(table.total()), 1, 0.1f);
  for (const model::ParamInfo& p : table.params())
    if (p.init_std == 0.0f)  // norms near 1
      for (int64_t i = 0; i < p.numel; ++i) w[size_t(p.offset + i)] += 1.0f;
  const std::vector<float> x = randn_half<H>(size_t(nh), 2, 1.0f),
                           dy = randn_half<H>(size_t(nh), 3, 0.1f);
  for (bool selective : {false, true}) {
    SCOPED_TRACE(selective ? "selective recomputation" : "keep everything");
    const BlockRun want = run_block<float>(ops::cpu_backend(), c, table, w, x, dy, selective);
    const BlockRun got = run_block<H>(ops::cpu_backend(), c, table, w, x, dy, selective);
    EXPECT_TRUE(close_to<H>(got, want, table));
    // The H block is not the fp32 one by accident: its outputs are H values; and an fp16 block
    // is not a bf16 one: some of its outputs need more than bf16's 8 bits.
    for (float v : got.y) ASSERT_EQ(v, round_to<H>(v));
    if constexpr (std::is_same_v<H, fp16>) {
      EXPECT_TRUE(
          std::any_of(got.y.begin(), got.y.end(), [](float v) { return v != round_to<bf16>(v); }));
    }
    // A single-element fault in the H SwiGLU is caught, whichever the type: the element lost
    // (zero), or off by 64 roundings of H (bf16: 25%, fp16: 3.1%), which the down_proj
    // gradient shows at about 2x the tolerance.
    for (const float factor : {0.0f, float(1 + 64 * unit_roundoff<H>())}) {
      FaultySwiglu<H> faulty(factor);
      EXPECT_FALSE(close_to<H>(run_block<H>(faulty, c, table, w, x, dy, selective), want, table))
          << "the largest SwiGLU output times " << factor;
    }
    test::GuardedBackend guarded;  // and it touches its memory only through the backend
    const BlockRun again = run_block<H>(guarded, c, table, w, x, dy, selective);
    EXPECT_EQ(again.y, got.y);
    EXPECT_EQ(again.dx, got.dx);
    EXPECT_EQ(again.grads, got.grads);
  }
}

}  // namespace
}  // namespace mds
