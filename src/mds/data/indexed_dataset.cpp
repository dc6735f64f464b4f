// Megatron's MMIDIDX indexed dataset: the writer (IndexedDatasetBuilder) and the mmap reader.
//
// Empty documents. Upstream Megatron-LM's tools/preprocess_data.py (Encoder.encode) drops
// sentences that tokenize to nothing, appends EOD only when the document has tokens (and adds
// it to the last sentence's length), then calls IndexedDatasetBuilder.add_document(ids, lens).
// For an empty document ids = lens = [], so add_document writes no bytes, adds no size, and
// appends len(sequence_lengths) to document_indices again: a repeated boundary. That is what
// add_document() does here. (Older Megatron trees, including Megatron-DeepSpeed forks, skipped
// empty documents entirely via `if len(sentences) == 0: continue`; we follow upstream.)
#include "mds/data/indexed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "mds/core/error.h"

namespace mds::data {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;  // 34

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool known_dtype(uint8_t code) {
  return code >= 1 && code <= 8;
}
bool integer_dtype(TokenDType t) {
  return t != TokenDType::f32 && t != TokenDType::f64;
}

// Converts one int32 token to dtype t at dst. Returns false if it does not fit.
bool store_token(TokenDType t, int32_t v, uint8_t* dst) {
  auto put = [&](auto x) {
    using X = decltype(x);
    if (int64_t(v) < int64_t(std::numeric_limits<X>::lowest()) ||
        int64_t(v) > int64_t(std::numeric_limits<X>::max()))
      return false;
    x = X(v);
    std::memcpy(dst, &x, sizeof(X));
    return true;
  };
  switch (t) {
    case TokenDType::u8:
      return put(uint8_t{});
    case TokenDType::i8:
      return put(int8_t{});
    case TokenDType::i16:
      return put(int16_t{});
    case TokenDType::i32:
      return put(int32_t{});
    case TokenDType::i64:
      return put(int64_t{});
    case TokenDType::u16:
      return put(uint16_t{});
    default:
      return false;
  }
}

// A file opened read-only, closed on scope exit; missing or unreadable is a UserError naming it.
struct File {
  std::string path;
  int fd = -1;
  size_t bytes = 0;
  int64_t mtime_ns = 0;

  explicit File(std::string p) : path(std::move(p)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    MDS_CHECK(fd >= 0,
              "{}: cannot open ({}); check the data path, or create it with mds preprocess", path,
              std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      MDS_FAIL("{}: cannot stat ({})", path, std::strerror(err));
    }
    bytes = size_t(st.st_size);
    mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  ~File() { ::close(fd); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // n bytes at offset into dst; the caller has checked they lie inside the file.
  void read_at(uint64_t offset, void* dst, size_t n) const {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::pread(fd, out, n, off_t(offset));
      if (got < 0 && errno == EINTR) continue;
      MDS_CHECK(got > 0, "{}: read failed at byte {} ({})", path, offset,
                got < 0 ? std::strerror(errno) : "unexpected end of file");
      out += got;
      offset += uint64_t(got);
      n -= size_t(got);
    }
  }
  template <typename T>
  T load_at(uint64_t offset) const {
    T v;
    read_at(offset, &v, sizeof(T));
    return v;
  }
};

}  // namespace

size_t dtype_size(TokenDType t) {
  switch (t) {
    case TokenDType::u8:
    case TokenDType::i8:
      return 1;
    case TokenDType::i16:
    case TokenDType::u16:
      return 2;
    case TokenDType::i32:
    case TokenDType::f32:
      return 4;
    case TokenDType::i64:
    case TokenDType::f64:
      return 8;
  }
  MDS_ASSERT(false, "unknown dtype code {}", int(t));
  return 0;
}

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::u16 : TokenDType::i32;
}

// ---- writer ----

IndexedDatasetWriter::IndexedDatasetWriter(const std::string& prefix, TokenDType dtype)
    : prefix_(prefix), dtype_(dtype) {
  MDS_ASSERT(integer_dtype(dtype), "token dtype must be an integer type, got code {}", int(dtype));
  // Temporary names unique per process, so two writers never share a half-written file.
  const std::string tag = strfmt(".tmp{}", ::getpid());
  bin_tmp_ = prefix + ".bin" + tag;
  idx_tmp_ = prefix + ".idx" + tag;
  bin_ = std::fopen(bin_tmp_.c_str(), "wb");
  MDS_CHECK(bin_,
            "cannot create {} ({}); check that the directory of --output-prefix exists and "
            "is writable",
            bin_tmp_, std::strerror(errno));
  std::setvbuf(bin_, nullptr, _IOFBF, 1 << 20);
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (finalized_) return;
  if (bin_) std::fclose(bin_);
  std::remove(bin_tmp_.c_str());
  std::remove(idx_tmp_.c_str());
}

void IndexedDatasetWriter::add_document(std::span<const int32_t> tokens) {
  const int32_t n = int32_t(tokens.size());
  MDS_CHECK(tokens.size() <= size_t(std::numeric_limits<int32_t>::max()),
            "document of {} tokens is too long for Megatron's int32 sizes", tokens.size());
  if (tokens.empty()) return add_document(tokens, {});
  add_document(tokens, std::span<const int32_t>(&n, 1));
}

void IndexedDatasetWriter::add_document(std::span<const int32_t> tokens,
                                        std::span<const int32_t> lengths) {
  MDS_ASSERT(!finalized_, "add_document after finalize on {}", prefix_);
  int64_t total = 0;
  for (int32_t len : lengths) total += len;
  MDS_ASSERT(total == int64_t(tokens.size()), "sequence lengths sum to {} but the document has {}",
             total, tokens.size());
  const size_t item = dtype_size(dtype_);
  buf_.resize(tokens.size() * item);
  for (size_t i = 0; i < tokens.size(); ++i)
    MDS_CHECK(store_token(dtype_, tokens[i], buf_.data() + i * item),
              "token id {} does not fit the .bin dtype (code {}) of {}; the vocabulary is larger "
              "than the dtype chosen for it",
              tokens[i], int(dtype_), prefix_);
  if (!buf_.empty())
    MDS_CHECK(std::fwrite(buf_.data(), 1, buf_.size(), bin_) == buf_.size(),
              "writing {} failed ({}); is the disk full?", bin_tmp_, std::strerror(errno));
  sizes_.insert(sizes_.end(), lengths.begin(), lengths.end());
  doc_idx_.push_back(int64_t(sizes_.size()));
}

void IndexedDatasetWriter::finalize() {
  MDS_ASSERT(!finalized_, "finalize called twice on {}", prefix_);
  const bool bin_ok = std::fflush(bin_) == 0 && std::ferror(bin_) == 0;
  const bool closed = std::fclose(bin_) == 0;
  bin_ = nullptr;
  MDS_CHECK(bin_ok && closed, "writing {} failed ({}); is the disk full?", bin_tmp_,
            std::strerror(errno));

  std::FILE* idx = std::fopen(idx_tmp_.c_str(), "wb");
  MDS_CHECK(idx, "cannot create {} ({})", idx_tmp_, std::strerror(errno));
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + sizes_.size() * 12 + doc_idx_.size() * 8);
  auto put = [&](const auto& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(v));
  };
  out.insert(out.end(), kMagic, kMagic + 9);
  put(uint64_t{1});
  put(uint8_t(dtype_));
  put(uint64_t(sizes_.size()));
  put(uint64_t(doc_idx_.size()));
  for (int32_t s : sizes_) put(s);
  // Pointers: exclusive prefix sum of sizes in bytes (Megatron's _sequence_pointers).
  int64_t ptr = 0;
  for (int32_t s : sizes_) {
    put(ptr);
    ptr += int64_t(s) * int64_t(dtype_size(dtype_));
  }
  for (int64_t d : doc_idx_) put(d);
  const bool idx_ok = std::fwrite(out.data(), 1, out.size(), idx) == out.size();
  const bool idx_closed = std::fclose(idx) == 0;
  MDS_CHECK(idx_ok && idx_closed, "writing {} failed ({}); is the disk full?", idx_tmp_,
            std::strerror(errno));

  // Drop the old .idx first: a crash between the renames then leaves a .bin without an
  // .idx (refused on open), never a new .bin paired with a stale .idx.
  const std::string bin_path = prefix_ + ".bin", idx_path = prefix_ + ".idx";
  std::remove(idx_path.c_str());
  MDS_CHECK(std::rename(bin_tmp_.c_str(), bin_path.c_str()) == 0, "cannot rename {} to {} ({})",
            bin_tmp_, bin_path, std::strerror(errno));
  MDS_CHECK(std::rename(idx_tmp_.c_str(), idx_path.c_str()) == 0, "cannot rename {} to {} ({})",
            idx_tmp_, idx_path, std::strerror(errno));
  finalized_ = true;
}

// ---- lazy mapping ----

LazyFileMap::~LazyFileMap() {
  if (map_) ::munmap(map_, bytes_);
}

void LazyFileMap::reset(std::string path, size_t bytes, int64_t mtime_ns) {
  path_ = std::move(path);
  bytes_ = bytes;
  mtime_ns_ = mtime_ns;
}

namespace {

// UserError unless f is still the file a dataset validated (same size and modification time).
void check_unchanged(const File& f, size_t bytes, int64_t mtime_ns) {
  MDS_CHECK(f.bytes == bytes && f.mtime_ns == mtime_ns,
            "{}: changed since it was opened (modification time or size: {} bytes, now {}); do "
            "not rewrite data a job is reading (restart the job)",
            f.path, bytes, f.bytes);
}

}  // namespace

const uint8_t* LazyFileMap::data() const {
  std::call_once(once_, [this] {
    const File f(path_);
    check_unchanged(f, bytes_, mtime_ns_);
    if (bytes_ == 0) return;  // mmap cannot map 0 bytes
    void* map = ::mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, f.fd, 0);
    MDS_CHECK(map != MAP_FAILED, "{}: cannot mmap ({})", path_, std::strerror(errno));
    map_ = map;
  });
  return static_cast<const uint8_t*>(map_);
}

// ---- reader ----

IndexedDataset::IndexedDataset(const std::string& prefix) : prefix_(prefix) {
  const std::string fix = "re-run mds preprocess to rebuild it";
  const File idx(prefix + ".idx");
  const std::string& idx_path = idx.path;
  MDS_CHECK(idx.bytes >= kHeaderBytes, "{}: truncated header ({} bytes, need {}); {}", idx_path,
            idx.bytes, kHeaderBytes, fix);
  uint8_t p[kHeaderBytes];
  idx.read_at(0, p, kHeaderBytes);
  MDS_CHECK(std::memcmp(p, kMagic, 9) == 0,
            "{}: not a Megatron MMIDIDX index (wrong magic); {} (legacy TNTIDX files are not "
            "supported)",
            idx_path, fix);
  const uint64_t version = load<uint64_t>(p + 9);
  MDS_CHECK(version == 1, "{}: unsupported index version {} (only 1 is known); {}", idx_path,
            version, fix);
  const uint8_t code = p[17];
  MDS_CHECK(known_dtype(code) && integer_dtype(TokenDType(code)),
            "{}: unsupported token dtype code {} (need an integer type, codes 1-5 or 8); {}",
            idx_path, int(code), fix);
  dtype_ = TokenDType(code);
  const uint64_t n_seq = load<uint64_t>(p + 18), n_doc = load<uint64_t>(p + 26);
  // Compare in counts, not bytes, so a huge bogus count cannot overflow the arithmetic.
  const uint64_t room = idx.bytes - kHeaderBytes;
  MDS_CHECK(n_seq <= room / 12 && n_doc <= (room - n_seq * 12) / 8,
            "{}: truncated (header says {} sequences and {} document boundaries, which need {} "
            "bytes, but the file has {}); {}",
            idx_path, n_seq, n_doc, kHeaderBytes + (n_seq * 12 + n_doc * 8), idx.bytes, fix);
  n_seq_ = int64_t(n_seq);
  n_doc_ = int64_t(n_doc);
  const uint64_t sizes_at = kHeaderBytes, pointers_at = sizes_at + 4 * n_seq,
                 doc_idx_at = pointers_at + 8 * n_seq;
  if (n_doc_ > 0) {
    const int64_t last = idx.load_at<int64_t>(doc_idx_at + 8 * (n_doc - 1));
    MDS_CHECK(last >= 0 && last <= n_seq_,
              "{}: corrupt document index (last boundary {} but {} sequences); {}", idx_path, last,
              n_seq_, fix);
  }

  // The .bin must hold every byte the index points to; only its size is needed for that.
  const File bin(prefix + ".bin");
  if (n_seq_ > 0) {
    const int64_t ptr = idx.load_at<int64_t>(pointers_at + 8 * (n_seq - 1));
    const int32_t len = idx.load_at<int32_t>(sizes_at + 4 * (n_seq - 1));
    const int64_t item = int64_t(dtype_size(dtype_));
    MDS_CHECK(ptr >= 0 && len >= 0 && ptr <= int64_t(bin.bytes) &&
                  int64_t(len) <= (int64_t(bin.bytes) - ptr) / item,
              "{}: truncated ({} bytes, but the index {} says the last sequence ends at byte "
              "{}); {}",
              bin.path, bin.bytes, idx_path, ptr + int64_t(len) * item, fix);
    n_tokens_ = ptr / item + len;
  }
  idx_.reset(idx.path, idx.bytes, idx.mtime_ns);
  bin_.reset(bin.path, bin.bytes, bin.mtime_ns);
}

int32_t IndexedDataset::size(int64_t i) const {
  MDS_ASSERT(i >= 0 && i < n_seq_, "sequence {} out of range [0, {})", i, n_seq_);
  return load<int32_t>(idx_.data() + kHeaderBytes + 4 * i);
}

int64_t IndexedDataset::pointer(int64_t i) const {
  MDS_ASSERT(i >= 0 && i < n_seq_, "sequence {} out of range [0, {})", i, n_seq_);
  return load<int64_t>(idx_.data() + kHeaderBytes + 4 * n_seq_ + 8 * i);
}

int64_t IndexedDataset::doc_idx(int64_t i) const {
  MDS_ASSERT(i >= 0 && i < n_doc_, "document boundary {} out of range [0, {})", i, n_doc_);
  return load<int64_t>(idx_.data() + kHeaderBytes + 12 * n_seq_ + 8 * i);
}

std::vector<int32_t> IndexedDataset::sizes() const {
  std::vector<int32_t> out(static_cast<size_t>(n_seq_));
  if (n_seq_ == 0) return out;
  const File idx(prefix_ + ".idx");
  check_unchanged(idx, idx_.bytes(), idx_.mtime_ns());
  idx.read_at(kHeaderBytes, out.data(), 4 * size_t(n_seq_));
  return out;
}

namespace {

template <typename T>
void convert(const uint8_t* src, int64_t count, int32_t* out) {
  for (int64_t k = 0; k < count; ++k) out[k] = int32_t(load<T>(src + k * int64_t(sizeof(T))));
}

void convert_tokens(TokenDType t, const uint8_t* src, int64_t count, int32_t* out) {
  switch (t) {
    case TokenDType::u8:
      return convert<uint8_t>(src, count, out);
    case TokenDType::i8:
      return convert<int8_t>(src, count, out);
    case TokenDType::i16:
      return convert<int16_t>(src, count, out);
    case TokenDType::u16:
      return convert<uint16_t>(src, count, out);
    case TokenDType::i32:
      return convert<int32_t>(src, count, out);
    case TokenDType::i64:
      return convert<int64_t>(src, count, out);
    default:
      MDS_ASSERT(false, "non-integer token dtype {}", int(t));
  }
}

}  // namespace

void IndexedDataset::read(int64_t i, int64_t offset, int64_t count, int32_t* out) const {
  const int32_t n = size(i);
  MDS_ASSERT(offset >= 0 && count >= 0 && offset + count <= n,
             "tokens [{}, {}) out of range of sequence {} ({} tokens) in {}", offset,
             offset + count, i, n, prefix_);
  const int64_t item = int64_t(dtype_size(dtype_));
  const int64_t begin = pointer(i) + offset * item;
  if (count == 0) return;
  MDS_CHECK(begin >= 0 && begin + count * item <= int64_t(bin_.bytes()),
            "{}.bin: sequence {} points past the end of the file; re-run mds preprocess", prefix_,
            i);
  convert_tokens(dtype_, bin_.data() + begin, count, out);
}

int64_t IndexedDataset::max_token_id() const {
  int64_t best = -1;
  std::vector<int32_t> chunk(1 << 16);
  const int64_t item = int64_t(dtype_size(dtype_));
  const int64_t total = int64_t(bin_.bytes()) / item;
  const uint8_t* bin = total > 0 ? bin_.data() : nullptr;
  for (int64_t k = 0; k < total; k += int64_t(chunk.size())) {
    const int64_t n = std::min<int64_t>(int64_t(chunk.size()), total - k);
    convert_tokens(dtype_, bin + k * item, n, chunk.data());
    for (int64_t j = 0; j < n; ++j) best = std::max<int64_t>(best, chunk[j]);
  }
  return best;
}

}  // namespace mds::data
