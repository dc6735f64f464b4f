#include "mds/parallel/ulysses.h"

#include "mds/core/error.h"

namespace mds::parallel {

// Returns C/S, the width of one rank's piece of a row, after sizing the staging buffers.
template <typename Elem>
int64_t UlyssesExchange::prepare(int size, int64_t b, int64_t s_local,
                                 std::span<const int64_t> sections) {
  int64_t width = 0;
  for (int64_t w : sections) {
    MDS_ASSERT(w % size == 0, "section of {} columns does not split over {} ranks", w, size);
    width += w;
  }
  const int64_t bytes = b * s_local * width * int64_t(sizeof(Elem));
  reserve((bytes + int64_t(sizeof(float)) - 1) / int64_t(sizeof(float)));
  return width / size;
}

template <typename Elem>
void UlyssesExchange::seq_to_heads(dist::Communicator& sp, Elem* out, const Elem* in, int64_t b,
                                   int64_t s_local, std::span<const int64_t> sections) {
  const int S = sp.size();
  const int64_t piece = prepare<Elem>(S, b, s_local, sections), rows = b * s_local;
  const int64_t width = piece * S;
  ops::Backend& k = send_.backend();
  constexpr size_t F = sizeof(Elem);
  Elem* send = reinterpret_cast<Elem*>(send_.data());
  Elem* recv = reinterpret_cast<Elem*>(recv_.data());
  // send_[j][row] = piece j of every section of in[row]: one strided copy per (j, section).
  for (int j = 0; j < S; ++j) {
    int64_t col = 0, at = 0;  // the section's first column in a row of in, and in a piece
    for (int64_t w : sections) {
      k.copy_2d(send + j * rows * piece + at, piece * F, in + col + j * (w / S), width * F,
                (w / S) * F, size_t(rows));
      col += w;
      at += w / S;
    }
  }
  sp.all_to_all(send, recv, rows * piece);
  // recv_[i][bi][t] is token i s_local + t of sequence bi.
  for (int i = 0; i < S; ++i)
    for (int64_t bi = 0; bi < b; ++bi)
      k.copy(out + (bi * s_local * S + i * s_local) * piece,
             recv + (i * rows + bi * s_local) * piece, s_local * piece * F);
}

template <typename Elem>
void UlyssesExchange::heads_to_seq(dist::Communicator& sp, Elem* out, const Elem* in, int64_t b,
                                   int64_t s_local, std::span<const int64_t> sections) {
  const int S = sp.size();
  const int64_t piece = prepare<Elem>(S, b, s_local, sections), rows = b * s_local;
  const int64_t width = piece * S;
  ops::Backend& k = send_.backend();
  constexpr size_t F = sizeof(Elem);
  Elem* send = reinterpret_cast<Elem*>(send_.data());
  Elem* recv = reinterpret_cast<Elem*>(recv_.data());
  // send_[j][bi][t] = token j s_local + t of sequence bi (rank j's tokens).
  for (int j = 0; j < S; ++j)
    for (int64_t bi = 0; bi < b; ++bi)
      k.copy(send + (j * rows + bi * s_local) * piece,
             in + (bi * s_local * S + j * s_local) * piece, s_local * piece * F);
  sp.all_to_all(send, recv, rows * piece);
  // recv_[i][row] holds piece i of every section of out[row].
  for (int i = 0; i < S; ++i) {
    int64_t col = 0, at = 0;
    for (int64_t w : sections) {
      k.copy_2d(out + col + i * (w / S), width * F, recv + i * rows * piece + at, piece * F,
                (w / S) * F, size_t(rows));
      col += w;
      at += w / S;
    }
  }
}

template void UlyssesExchange::seq_to_heads(dist::Communicator&, float*, const float*, int64_t,
                                            int64_t, std::span<const int64_t>);
template void UlyssesExchange::heads_to_seq(dist::Communicator&, float*, const float*, int64_t,
                                            int64_t, std::span<const int64_t>);
template void UlyssesExchange::seq_to_heads(dist::Communicator&, bf16*, const bf16*, int64_t,
                                            int64_t, std::span<const int64_t>);
template void UlyssesExchange::heads_to_seq(dist::Communicator&, bf16*, const bf16*, int64_t,
                                            int64_t, std::span<const int64_t>);
template void UlyssesExchange::seq_to_heads(dist::Communicator&, fp16*, const fp16*, int64_t,
                                            int64_t, std::span<const int64_t>);
template void UlyssesExchange::heads_to_seq(dist::Communicator&, fp16*, const fp16*, int64_t,
                                            int64_t, std::span<const int64_t>);

}  // namespace mds::parallel
