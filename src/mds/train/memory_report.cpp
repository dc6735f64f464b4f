#include "mds/train/memory_report.h"

#include <algorithm>
#include <cstdio>

#include "mds/core/error.h"
#include "mds/model/lm_head.h"
#include "mds/parallel/pipeline_schedule.h"

namespace mds::train {

MemoryReport estimate_memory(const model::LlamaConfig& c, const model::ModelShard& shard,
                             int64_t sp, const model::BatchShape& shape, int64_t slots,
                             const model::Recompute& recompute, model::Precision precision,
                             ops::Device device) {
  constexpr int64_t F = sizeof(float);                // fp32 buffers
  const int64_t E = model::element_bytes(precision);  // weights and activations
  const int64_t T = shard.tp_size, S = sp, n = shape.n(), h = c.hidden_size, hd = c.head_dim();
  const int64_t qd = c.num_attention_heads / T * hd, kvd = c.kv_heads() / T * hd;
  const int64_t qkvd = qd + 2 * kvd, f = c.ffn_hidden_size / T, nq = c.num_attention_heads / T;
  const int64_t L = shard.layers(c);
  const int64_t split = S > 1 ? n : 0;  // buffers only the Ulysses layout needs

  MemoryReport r;
  const int64_t P = model::ParamTable(c, shard).total();
  r.params = P * E;
  r.grads = P * F;
  r.optimizer = 2 * P * F + (precision != model::Precision::fp32 ? P * F : 0);  // m, v, master

  // BlockActs: norm1, qkv, mid, norm2, gate_up, act (E) and rstd1, rstd2 (fp32); the attention
  // core's core_out (S > 1) and attn (E) and lse (fp32), which selective recomputation keeps in
  // the scratch instead.
  const int64_t attention_out = (split * qd + n * qd) * E + n * nq * F;
  const bool selective = recompute.selective();
  const int64_t block_acts = (n * h + n * qkvd + n * h + n * h + n * 2 * f + n * f) * E +
                             2 * n * F + (selective ? 0 : attention_out);
  // Full recomputation: a checkpointed block keeps neither its activations nor, inside a
  // chunk, its input; one chunk's worth lives in the shared workspace.
  const model::RecomputePlan plan(recompute, L);
  int64_t slot = shard.head ? n * h * E : 0;  // d_out
  for (int64_t l = 0; l <= L; ++l) {
    if (plan.keeps_input(l)) slot += n * h * E;
    if (l < L && !plan.checkpointed(l)) slot += block_acts;
  }
  r.activations = slots * (slot + (shard.embedding ? n * int64_t(sizeof(int32_t)) : 0));
  const int64_t workspace = plan.max_chunk() * (block_acts + n * h * E);

  if (shard.head) {  // xn, dxn, the logits chunk (E); rstd, losses, row max and target (fp32)
    const int64_t cols = c.padded_vocab_size / T;
    const int64_t m = std::min(n, model::head_chunk_rows(device, cols, E));
    r.head = (2 * n * h + m * cols) * E + (2 * n + 2 * m) * F + m * int64_t(sizeof(double)) +
             n * int64_t(sizeof(int32_t));  // the targets
  }

  // BlockScratch: qkv_local, d_qkv_core, d_core_out (S > 1); d_norm, d_qkv, d_attn, d_gate_up,
  // d_act. Then d_resid, the Ulysses send/recv staging (fp32 words) and the cos/sin tables.
  const int64_t block_scratch =
      (split * qkvd + split * qkvd + split * qd + n * h + n * qkvd + n * qd + n * 2 * f + n * f) *
      E;
  const int64_t ulysses = S > 1 ? 2 * ((n * qkvd * E + F - 1) / F) * F : 0;
  const int64_t rope = 2 * c.max_position_embeddings * (hd / 2) * F;
  const int64_t stage_buffers = ((shard.embedding ? 0 : 1) + (shard.head ? 0 : 1)) * n * h * E;
  r.scratch = block_scratch + (selective ? attention_out : 0) + n * h * E + ulysses + rope +
              workspace + stage_buffers;
  return r;
}

template <typename Model>
MemoryReport measured_memory(const Model& m, int64_t optimizer_bytes) {
  const auto a = m.allocated_bytes();
  MemoryReport r;
  r.params = a.params;
  r.grads = a.grads;
  r.optimizer = optimizer_bytes;
  r.activations = a.activations;
  r.head = a.head;
  r.scratch = a.scratch;
  return r;
}

template MemoryReport measured_memory(const model::LlamaModelT<float>&, int64_t);
template MemoryReport measured_memory(const model::LlamaModelT<bf16>&, int64_t);
template MemoryReport measured_memory(const model::LlamaModelT<fp16>&, int64_t);

std::vector<StageMemory> memory_per_stage(const model::LlamaConfig& c, int64_t tp, int64_t sp,
                                          int64_t pp, int64_t micro, int64_t micro_batches,
                                          const model::Recompute& recompute,
                                          model::Precision precision) {
  std::vector<StageMemory> out;
  const model::BatchShape shape{micro, c.seq_length / sp, 0};
  for (int64_t p = 0; p < pp; ++p) {
    StageMemory s;
    const model::ModelShard shard = model::ModelShard::of(c, 0, tp, p, pp);
    s.stage = p;
    s.first_layer = shard.first_layer;
    s.layers = shard.layers(c);
    s.parameters = model::ParamTable(c, shard).total();
    s.slots = parallel::pipeline_slots(p, pp, micro_batches);
    s.memory = estimate_memory(c, shard, sp, shape, s.slots, recompute, precision);
    out.push_back(s);
  }
  return out;
}

std::string format_memory_table(const std::vector<StageMemory>& stages) {
  auto mib = [](int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); };
  std::string s =
      "> memory per rank in MiB (the ranks of a stage hold the same):\n"
      ">   stage  layers  parameters   params    grads  adam m+v  activations  slots     head  "
      "scratch     total\n";
  char buf[256];
  for (const StageMemory& st : stages) {
    const MemoryReport& m = st.memory;
    const int64_t last = st.first_layer + st.layers - 1;
    const std::string layers = st.layers == 0   ? "-"
                               : st.layers == 1 ? std::to_string(st.first_layer)
                                                : strfmt("{}-{}", st.first_layer, last);
    std::snprintf(
        buf, sizeof buf,
        ">   %5lld  %6s  %9.2fM  %7.1f  %7.1f  %8.1f  %11.1f  %5lld  %7.1f  %7.1f  %8.1f\n",
        (long long)st.stage, layers.c_str(), double(st.parameters) / 1e6, mib(m.params),
        mib(m.grads), mib(m.optimizer), mib(m.activations), (long long)st.slots, mib(m.head),
        mib(m.scratch), mib(m.total()));
    s += buf;
  }
  return s;
}

}  // namespace mds::train
