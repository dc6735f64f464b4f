// GPT-2 byte-level BPE: loading, pre-tokenization (PCRE2), BPE merges, the word cache.
// See gpt2_bpe.h for the exact behaviour promised.
#include "mds/data/gpt2_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "mds/core/error.h"

namespace mds::data {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the valid UTF-8 sequence starting at s[i], or -(length of its maximal invalid
// subpart) (>= 1 byte) when it is not valid. Unicode 15 Table 3-7 (well-formed byte sequences).
int utf8_sequence(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -k;
    const unsigned char ck = b(i + k);
    const bool ok = k == 1 ? (ck >= lo && ck <= hi) : (ck >= 0x80 && ck <= 0xBF);
    if (!ok) return -k;
  }
  return len;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const int n = utf8_sequence(s, i);
    if (n < 0) return false;
    i += n;
  }
  return true;
}

// Code points of a valid UTF-8 string.
std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_sequence(s, i);
    MDS_ASSERT(n > 0, "code_points() needs valid UTF-8");
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GPT-2's bytes_to_unicode: every byte gets a printable code point, so that BPE symbols are
// strings of visible characters. Printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100 + n in byte order.
std::array<uint32_t, 256> bytes_to_unicode() {
  std::array<uint32_t, 256> cp{};
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cp[b] = printable ? b : 256 + n++;
  }
  return cp;
}

// ---------------------------------------------------------------------------------------------
// The GPT-2 pre-tokenization pattern with \s spelled out as JavaScript's whitespace set. PCRE2's
// \s under UCP differs: it also matches U+0085 and U+180E and misses U+FEFF. Why JS: the
// reference (gpt-3-encoder) is JavaScript.
constexpr const char* kWhitespace =
    "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}\\x{FEFF}";

std::string gpt2_pattern() {
  const std::string ws = kWhitespace;
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws + "\\p{L}\\p{N}]+|[" + ws +
         "]+(?![^" + ws + "])|[" + ws + "]+";
}

// ---------------------------------------------------------------------------------------------
// Merge ranks: an open-addressing hash table on the pair of symbol ids (a << 32 | b).
struct Merge {
  int32_t rank;
  int32_t id;  // the merged symbol
};

class MergeTable {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, Merge{0, 0});
    mask_ = cap - 1;
  }
  // Later duplicates overwrite earlier ones, as Python's dict(zip(merges, range(n))) does.
  void insert(int32_t a, int32_t b, Merge m) {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == kEmpty || keys_[i] == key) {
        keys_[i] = key;
        vals_[i] = m;
        return;
      }
    }
  }
  const Merge* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Merge> vals_;
  size_t mask_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Word cache: pre-token bytes -> ids, shared by all threads. Sharded so that preprocessing threads
// rarely contend. Each shard is a flat open-addressing table over one byte arena (word bytes then
// its ids), so a hit costs about two cache misses instead of the several pointer chases of a
// node-based map. A shard that fills up is cleared: memory stays bounded (~kShards * 320 KiB).
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;  // longer words are rare: not worth caching

  static uint64_t hash(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h | 1;  // 0 marks an empty slot
  }

  // Appends the cached ids of `word` to `out`; false when absent.
  bool lookup(std::string_view word, uint64_t h, std::vector<int32_t>& out) {
    Shard& s = shards_[h >> 58];
    std::lock_guard lock(s.mu);
    if (s.slots.empty()) return false;
    for (size_t i = (h >> 20) & kSlotMask;; i = (i + 1) & kSlotMask) {
      const Slot& slot = s.slots[i];
      if (slot.hash == 0) return false;
      if (slot.hash != h || slot.len != word.size()) continue;
      const char* data = s.arena.data() + slot.offset;
      if (std::memcmp(data, word.data(), word.size()) != 0) continue;
      const size_t at = out.size();
      out.resize(at + slot.count);
      std::memcpy(out.data() + at, data + slot.len, slot.count * sizeof(int32_t));
      return true;
    }
  }

  void insert(std::string_view word, uint64_t h, const int32_t* ids, size_t n) {
    if (word.size() > kMaxWordBytes) return;
    const size_t bytes = word.size() + n * sizeof(int32_t);
    Shard& s = shards_[h >> 58];
    std::lock_guard lock(s.mu);
    if (s.slots.empty() || s.words >= kMaxWords || s.used + bytes > kArenaBytes) {
      s.slots.assign(kSlotMask + 1, Slot{});
      s.arena.resize(kArenaBytes);
      s.used = s.words = 0;
    }
    size_t i = (h >> 20) & kSlotMask;
    for (; s.slots[i].hash != 0; i = (i + 1) & kSlotMask) {
      if (s.slots[i].hash == h && s.slots[i].len == word.size() &&
          std::memcmp(s.arena.data() + s.slots[i].offset, word.data(), word.size()) == 0)
        return;  // another thread cached it meanwhile
    }
    std::memcpy(s.arena.data() + s.used, word.data(), word.size());
    std::memcpy(s.arena.data() + s.used + word.size(), ids, n * sizeof(int32_t));
    s.slots[i] = Slot{h, static_cast<uint32_t>(s.used), static_cast<uint16_t>(word.size()),
                      static_cast<uint16_t>(n)};
    s.used += bytes;
    ++s.words;
  }

 private:
  static constexpr size_t kShards = 64;               // indexed by the top 6 bits of the hash
  static constexpr size_t kSlotMask = (1 << 13) - 1;  // 8192 slots, kept at most half full
  static constexpr size_t kMaxWords = 4096;
  static constexpr size_t kArenaBytes = 192 << 10;
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint16_t len = 0;    // word bytes (<= kMaxWordBytes)
    uint16_t count = 0;  // ids (<= word bytes)
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;  // allocated on first insert
    std::vector<char> arena;
    size_t used = 0, words = 0;
  };
  std::array<Shard, kShards> shards_;
};

std::string read_file(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  MDS_CHECK(in, "cannot read {} '{}': {}", flag, path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  MDS_CHECK(!in.bad(), "cannot read {} '{}': {}", flag, path, std::strerror(errno));
  return ss.str();
}

}  // namespace

std::string repair_utf8(std::string_view text) {
  if (valid_utf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t i = 0; i < text.size();) {
    const int n = utf8_sequence(text, i);
    if (n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD for the maximal invalid subpart
      i += -n;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

struct GPT2BPETokenizer::Impl {
  std::vector<std::string> token_bytes;  // id -> bytes
  std::array<int32_t, 256> byte_id{};    // byte -> id of its one-byte symbol
  MergeTable merges;
  int32_t eod = -1;
  pcre2_code* pattern = nullptr;
  mutable WordCache cache;

  ~Impl() { pcre2_code_free(pattern); }

  void load_vocab(const std::string& path, std::unordered_map<std::string, int32_t>& ids);
  void load_merges(const std::string& path, const std::unordered_map<std::string, int32_t>& ids);
  void compile_pattern();
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_long(std::string_view word, std::vector<int32_t>& out) const;
};

void GPT2BPETokenizer::Impl::load_vocab(const std::string& path,
                                        std::unordered_map<std::string, int32_t>& ids) {
  const std::string text = read_file(path, "--vocab-file");
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    MDS_FAIL("--vocab-file '{}' is not valid JSON ({}); expected GPT-2's vocab.json", path,
             e.what());
  }
  MDS_CHECK(vocab.is_object() && !vocab.empty(),
            "--vocab-file '{}' must be a JSON object of token -> id (GPT-2's vocab.json)", path);

  std::array<int32_t, 512> byte_of_cp;  // inverse of bytes_to_unicode (-1: not a byte symbol)
  byte_of_cp.fill(-1);
  const auto cp_of_byte = bytes_to_unicode();
  for (int b = 0; b < 256; ++b) byte_of_cp[cp_of_byte[b]] = b;

  const size_t n = vocab.size();
  token_bytes.assign(n, std::string());
  std::vector<bool> seen(n, false);
  for (const auto& [token, value] : vocab.items()) {
    MDS_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 &&
                  value.get<int64_t>() < static_cast<int64_t>(n),
              "--vocab-file '{}': token '{}' has id {}, expected an integer in [0, {})", path,
              token, value.dump(), n);
    const auto id = value.get<int32_t>();
    MDS_CHECK(!seen[id], "--vocab-file '{}': id {} is used twice (at '{}')", path, id, token);
    seen[id] = true;
    std::string bytes;
    for (uint32_t cp : code_points(token)) {
      MDS_CHECK(cp < byte_of_cp.size() && byte_of_cp[cp] >= 0,
                "--vocab-file '{}': token '{}' is not in GPT-2's byte-to-unicode alphabet", path,
                token);
      bytes.push_back(static_cast<char>(byte_of_cp[cp]));
    }
    token_bytes[id] = std::move(bytes);
    ids.emplace(token, id);
  }
  // One-byte symbols start every BPE word, so all 256 must exist.
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    const uint32_t cp = cp_of_byte[b];
    if (cp < 0x80) {
      sym.push_back(static_cast<char>(cp));
    } else {  // two-byte UTF-8 (all these code points are < 0x800)
      sym.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      sym.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    auto it = ids.find(sym);
    MDS_CHECK(it != ids.end(), "--vocab-file '{}' lacks the symbol for byte {}", path, b);
    byte_id[b] = it->second;
  }
  auto it = ids.find("<|endoftext|>");
  MDS_CHECK(it != ids.end(), "--vocab-file '{}' has no '<|endoftext|>' token", path);
  eod = it->second;
}

void GPT2BPETokenizer::Impl::load_merges(const std::string& path,
                                         const std::unordered_map<std::string, int32_t>& ids) {
  const std::string text = read_file(path, "--merge-file");
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  merges.reserve(lines.size());
  int32_t rank = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (i == 0 && line.starts_with("#version")) continue;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    MDS_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                  line.find(' ', space + 1) == std::string_view::npos,
              "--merge-file '{}' line {}: expected two symbols separated by one space, got '{}'",
              path, i + 1, line);
    const std::string first(line.substr(0, space)), second(line.substr(space + 1));
    auto a = ids.find(first), b = ids.find(second), m = ids.find(first + second);
    MDS_CHECK(a != ids.end() && b != ids.end() && m != ids.end(),
              "--merge-file '{}' line {}: '{}' does not match the --vocab-file (a symbol or "
              "their merge is not in the vocabulary)",
              path, i + 1, line);
    merges.insert(a->second, b->second, Merge{rank++, m->second});
  }
  MDS_CHECK(rank > 0, "--merge-file '{}' has no merges; expected GPT-2's merges.txt", path);
}

void GPT2BPETokenizer::Impl::compile_pattern() {
  const std::string re = gpt2_pattern();
  int err = 0;
  PCRE2_SIZE offset = 0;
  pattern = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.c_str()), re.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (!pattern) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    MDS_ASSERT(false, "GPT-2 regex does not compile at {}: {}", offset,
               reinterpret_cast<const char*>(msg));
  }
  // JIT when the platform has it; pcre2_match uses it automatically, else interprets.
  pcre2_jit_compile(pattern, PCRE2_JIT_COMPLETE);
}

// BPE of one pre-token, GPT-2's bpe(): take the lowest-ranked adjacent pair, merge every occurrence
// of it left to right (non-overlapping), repeat until no adjacent pair has a rank. Short words
// (nearly all) take the direct quadratic loop on the stack; long ones the heap version.
void GPT2BPETokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  constexpr size_t kShortWord = 48;
  if (word.size() > kShortWord) return bpe_long(word, out);
  int32_t sym[kShortWord];
  int m = static_cast<int>(word.size());
  for (int i = 0; i < m; ++i) sym[i] = byte_id[static_cast<unsigned char>(word[i])];
  while (m > 1) {
    int32_t best_rank = INT32_MAX, at = -1, merged = 0;
    for (int i = 0; i + 1 < m; ++i) {
      const Merge* mg = merges.find(sym[i], sym[i + 1]);
      if (mg && mg->rank < best_rank) best_rank = mg->rank, at = i, merged = mg->id;
    }
    if (at < 0) break;
    const int32_t a = sym[at], b = sym[at + 1];
    int j = at;
    for (int i = at; i < m;) {
      if (i + 1 < m && sym[i] == a && sym[i + 1] == b) {
        sym[j++] = merged;
        i += 2;
      } else {
        sym[j++] = sym[i++];
      }
    }
    m = j;
  }
  out.insert(out.end(), sym, sym + m);
}

// The same in O(n log n), so that a long word without spaces (a URL, base64, a DNA string) is not
// quadratic: a heap of candidate pairs ordered by (rank, position) over a linked list of symbols.
// Pairs created while merging rank r are held back until all rank-r merges of that pass are done,
// exactly as GPT-2 rescans only after a whole pass.
void GPT2BPETokenizer::Impl::bpe_long(std::string_view word, std::vector<int32_t>& out) const {
  const auto n = static_cast<int32_t>(word.size());
  struct Candidate {
    int32_t rank, pos, left, right, merged;
  };
  const auto after = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;  // min-heap on (rank, pos)
  };
  // Linked list of symbols: sym[i] == -1 marks a position merged into its left neighbour.
  std::vector<int32_t> sym(n), next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) {
    sym[i] = byte_id[static_cast<unsigned char>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::vector<Candidate> heap;
  const auto consider = [&](int32_t p) {
    if (p < 0 || sym[p] < 0 || next[p] < 0) return;
    if (const Merge* m = merges.find(sym[p], sym[next[p]])) {
      heap.push_back({m->rank, p, sym[p], sym[next[p]], m->id});
      std::push_heap(heap.begin(), heap.end(), after);
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);

  std::vector<int32_t> touched;
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    touched.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), after);
      const Candidate c = heap.back();
      heap.pop_back();
      const int32_t q = next[c.pos];
      // Stale: the left symbol was merged (changed or died) or the right one changed.
      if (sym[c.pos] != c.left || q < 0 || sym[q] != c.right) continue;
      sym[c.pos] = c.merged;
      sym[q] = -1;
      next[c.pos] = next[q];
      if (next[q] >= 0) prev[next[q]] = c.pos;
      touched.push_back(prev[c.pos]);
      touched.push_back(c.pos);
    }
    for (int32_t p : touched) consider(p);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

void GPT2BPETokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_id[static_cast<unsigned char>(word[0])]);
    return;
  }
  const uint64_t hash = WordCache::hash(word);
  if (cache.lookup(word, hash, out)) return;
  const size_t start = out.size();
  bpe(word, out);
  cache.insert(word, hash, out.data() + start, out.size() - start);
}

GPT2BPETokenizer::GPT2BPETokenizer(const std::string& vocab_file, const std::string& merge_file)
    : impl_(std::make_unique<Impl>()) {
  std::unordered_map<std::string, int32_t> ids;
  impl_->load_vocab(vocab_file, ids);
  impl_->load_merges(merge_file, ids);
  impl_->compile_pattern();
}

GPT2BPETokenizer::~GPT2BPETokenizer() = default;

std::vector<int32_t> GPT2BPETokenizer::encode(std::string_view text) const {
  std::string repaired;
  if (!valid_utf8(text)) {
    repaired = repair_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 1);
  // One match-data block per call: the compiled pattern is shared, match data is not.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  MDS_ASSERT(md != nullptr, "out of memory for PCRE2 match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (size_t start = 0; start < text.size();) {
    // The text was validated above, so PCRE2 need not re-check it on every call (that would
    // make encoding quadratic in the document length).
    const int rc = pcre2_match(impl_->pattern, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;  // cannot happen: every character matches some branch
    MDS_ASSERT(rc > 0, "PCRE2 match failed with code {} at byte {}", rc, start);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    impl_->encode_word(text.substr(ov[0], ov[1] - ov[0]), out);
    start = ov[1];
  }
  return out;
}

std::string GPT2BPETokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) bytes += token_bytes(id);
  return repair_utf8(bytes);
}

const std::string& GPT2BPETokenizer::token_bytes(int32_t id) const {
  MDS_CHECK(id >= 0 && id < static_cast<int32_t>(impl_->token_bytes.size()),
            "token id {} is outside the GPT-2 vocabulary [0, {})", id, impl_->token_bytes.size());
  return impl_->token_bytes[id];
}

int64_t GPT2BPETokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->token_bytes.size());
}

int32_t GPT2BPETokenizer::eod() const {
  return impl_->eod;
}

}  // namespace mds::data
