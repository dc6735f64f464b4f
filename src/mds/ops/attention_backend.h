// Which attention the model runs (Megatron-LM's --attention-backend): flash (the default; the
// fused kernels of ops.h and ops/cuda) or unfused (Megatron's CoreAttention: the whole masked
// score row, softmax, then the weighted sum; no tiling and no online rescaling), the plain path
// that NO_FLASH_ATTN asks for. Both save the same lse [b, nq, s], so a layer sees no
// difference but the rounding. Process-wide, set once by the trainer before any step; header
// only, so the CPU and the CUDA kernels read the same setting.
#pragma once

namespace mds::ops {

enum class AttentionBackend { flash, unfused };

inline AttentionBackend& attention_backend() {
  static AttentionBackend backend = AttentionBackend::flash;
  return backend;
}

}  // namespace mds::ops
