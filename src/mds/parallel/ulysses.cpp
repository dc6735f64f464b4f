#include "mds/parallel/ulysses.h"

#include <algorithm>

#include "mds/core/error.h"

namespace mds::parallel {

// Returns C/S, the width of one rank's piece of a row, after sizing the staging buffers.
int64_t UlyssesExchange::prepare(int size, int64_t b, int64_t s_local,
                                 std::span<const int64_t> sections) {
  int64_t width = 0;
  for (int64_t w : sections) {
    MDS_ASSERT(w % size == 0, "section of {} columns does not split over {} ranks", w, size);
    width += w;
  }
  send_.resize(b * s_local * width);
  recv_.resize(b * s_local * width);
  return width / size;
}

void UlyssesExchange::seq_to_heads(dist::Communicator& sp, float* out, const float* in, int64_t b,
                                   int64_t s_local, std::span<const int64_t> sections) {
  const int S = sp.size();
  const int64_t piece = prepare(S, b, s_local, sections), rows = b * s_local;
  const int64_t width = piece * S;
  // send_[j][row] = piece j of every section of in[row].
  for (int j = 0; j < S; ++j)
    for (int64_t row = 0; row < rows; ++row) {
      const float* src = in + row * width;
      float* dst = send_.data() + (j * rows + row) * piece;
      for (int64_t w : sections) {
        dst = std::copy_n(src + j * (w / S), w / S, dst);
        src += w;
      }
    }
  sp.all_to_all(send_.data(), recv_.data(), rows * piece);
  // recv_[i][bi][t] is token i s_local + t of sequence bi.
  for (int i = 0; i < S; ++i)
    for (int64_t bi = 0; bi < b; ++bi)
      std::copy_n(recv_.data() + (i * rows + bi * s_local) * piece, s_local * piece,
                  out + (bi * s_local * S + i * s_local) * piece);
}

void UlyssesExchange::heads_to_seq(dist::Communicator& sp, float* out, const float* in, int64_t b,
                                   int64_t s_local, std::span<const int64_t> sections) {
  const int S = sp.size();
  const int64_t piece = prepare(S, b, s_local, sections), rows = b * s_local;
  const int64_t width = piece * S;
  // send_[j][bi][t] = token j s_local + t of sequence bi (rank j's tokens).
  for (int j = 0; j < S; ++j)
    for (int64_t bi = 0; bi < b; ++bi)
      std::copy_n(in + (bi * s_local * S + j * s_local) * piece, s_local * piece,
                  send_.data() + (j * rows + bi * s_local) * piece);
  sp.all_to_all(send_.data(), recv_.data(), rows * piece);
  // recv_[i][row] holds piece i of every section of out[row].
  for (int i = 0; i < S; ++i)
    for (int64_t row = 0; row < rows; ++row) {
      const float* src = recv_.data() + (i * rows + row) * piece;
      float* dst = out + row * width;
      for (int64_t w : sections) {
        std::copy_n(src, w / S, dst + i * (w / S));
        src += w / S;
        dst += w;
      }
    }
}

}  // namespace mds::parallel
