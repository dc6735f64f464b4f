// DeepSpeed-Ulysses sequence parallelism (arXiv:2309.14509): each of the S ranks of a
// sequence-parallel group holds s/S consecutive tokens of every sequence; around the attention
// core an all-to-all trades that for the whole sequence and 1/S of the heads, and back.
//
// A buffer of rows (tokens) made of sections (q heads | k heads | v heads, each a number of
// heads x head_dim, divisible by S):
//   seq_to_heads:  [b, s/S, C]  ->  [b, s, C/S]   rank r keeps piece r of every section
//   heads_to_seq:  [b, s, C/S]  ->  [b, s/S, C]   the inverse
// Sequence-parallel rank j holds tokens [j s/S, (j+1) s/S). Each is the other's transpose, so
// the backward of one is the other. The staging lives on the model's backend, and the packing
// is strided copies there (ops::Backend::copy_2d), so the exchange runs on either device.
#pragma once

#include <cstdint>
#include <span>

#include "mds/core/buffer.h"
#include "mds/dist/communicator.h"

namespace mds::parallel {

class UlyssesExchange {
 public:
  explicit UlyssesExchange(ops::Backend& b = ops::cpu_backend()) : send_(b), recv_(b) {}
  // Elem: float, bf16 or fp16 (mixed precision); instantiated for all three in ulysses.cpp.
  template <typename Elem>
  void seq_to_heads(dist::Communicator& sp, Elem* out, const Elem* in, int64_t b, int64_t s_local,
                    std::span<const int64_t> sections);
  template <typename Elem>
  void heads_to_seq(dist::Communicator& sp, Elem* out, const Elem* in, int64_t b, int64_t s_local,
                    std::span<const int64_t> sections);
  // Staging for exchanges of up to `floats` fp32 elements (twice as many bf16), allocated now
  // rather than on first use.
  void reserve(int64_t floats) {
    if (send_.size() < floats) send_.resize(floats);
    if (recv_.size() < floats) recv_.resize(floats);
  }
  int64_t allocated_bytes() const {
    return (send_.capacity() + recv_.capacity()) * int64_t(sizeof(float));
  }

 private:
  Buffer<float> send_, recv_;  // [S, b, s/S, C/S] staging for one all-to-all (any Elem)
  template <typename Elem>
  int64_t prepare(int size, int64_t b, int64_t s_local, std::span<const int64_t> sections);
};

}  // namespace mds::parallel
