// LlamaConfig: the shape of the model, from Megatron's flags or a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>

namespace mds::model {

struct LlamaConfig {
  int64_t num_layers = 2;
  int64_t hidden_size = 256;
  int64_t ffn_hidden_size = 0;  // 0: int(8h/3/64)*64, Megatron's SwiGLU default
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 0;  // 0: same as heads (no GQA)
  int64_t seq_length = 256;
  int64_t max_position_embeddings = 0;  // 0: seq_length
  double rope_theta = 10000.0;
  float norm_eps = 1e-5f;
  float init_method_std = 0.02f;
  int64_t vocab_size = 0;         // the tokenizer's, unpadded
  int64_t padded_vocab_size = 0;  // vocab rounded up to make_vocab_size_divisible_by * tp

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t kv_heads() const {
    return num_key_value_heads ? num_key_value_heads : num_attention_heads;
  }
  int64_t q_dim() const { return num_attention_heads * head_dim(); }
  int64_t kv_dim() const { return kv_heads() * head_dim(); }
  int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  // Fills derived defaults (ffn, kv heads, max positions, padded vocab) and checks the shape;
  // an invalid shape is a UserError naming the flag to change.
  void finalize(int64_t make_vocab_size_divisible_by, int64_t tensor_parallel = 1);
};

int64_t pad_vocab(int64_t vocab, int64_t divisible_by);

// The element type of the weights and activations (--fp32 / --bf16 / --fp16). Gradients,
// optimizer state and a 16-bit model's fp32 master weights are fp32 in all three.
enum class Precision { fp32, bf16, fp16 };
constexpr int64_t element_bytes(Precision p) {
  return p == Precision::fp32 ? 4 : 2;
}

}  // namespace mds::model
