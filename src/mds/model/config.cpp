#include "mds/model/config.h"

#include "mds/core/error.h"

namespace mds::model {

int64_t pad_vocab(int64_t vocab, int64_t divisible_by) {
  return (vocab + divisible_by - 1) / divisible_by * divisible_by;
}

void LlamaConfig::finalize(int64_t make_vocab_size_divisible_by, int64_t tensor_parallel) {
  MDS_CHECK(num_layers > 0, "--num-layers must be positive (got {})", num_layers);
  MDS_CHECK(hidden_size > 0, "--hidden-size must be positive (got {})", hidden_size);
  MDS_CHECK(num_attention_heads > 0, "--num-attention-heads must be positive (got {})",
            num_attention_heads);
  MDS_CHECK(hidden_size % num_attention_heads == 0,
            "--hidden-size ({}) must be divisible by --num-attention-heads ({})", hidden_size,
            num_attention_heads);
  MDS_CHECK(head_dim() % 2 == 0, "head dim (hidden/heads = {}) must be even for rotary embeddings",
            head_dim());
  if (num_key_value_heads == 0) num_key_value_heads = num_attention_heads;
  MDS_CHECK(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0,
            "--num-attention-heads ({}) must be divisible by --num-key-value-heads ({})",
            num_attention_heads, num_key_value_heads);
  if (ffn_hidden_size == 0) ffn_hidden_size = int64_t(8.0 * hidden_size / 3.0 / 64.0) * 64;
  MDS_CHECK(ffn_hidden_size > 0, "--ffn-hidden-size must be positive (got {})", ffn_hidden_size);
  MDS_CHECK(seq_length > 0, "--seq-length must be positive (got {})", seq_length);
  if (max_position_embeddings == 0) max_position_embeddings = seq_length;
  MDS_CHECK(seq_length <= max_position_embeddings,
            "--seq-length ({}) exceeds --max-position-embeddings ({})", seq_length,
            max_position_embeddings);
  MDS_CHECK(rope_theta > 0, "--rope-theta must be positive (got {})", rope_theta);
  MDS_CHECK(vocab_size > 0, "the vocabulary is empty: check --vocab-file / --tokenizer-model");
  MDS_CHECK(make_vocab_size_divisible_by > 0, "--make-vocab-size-divisible-by must be positive");
  padded_vocab_size = pad_vocab(vocab_size, make_vocab_size_divisible_by * tensor_parallel);
}

}  // namespace mds::model
