#include "mds/ckpt/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <tuple>

#include "mds/core/error.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors is little-endian; mds reads it by memcpy");

namespace mds::ckpt {

namespace {

struct DTypeRow {
  StDType t;
  const char* name;
  int64_t size;
};
constexpr DTypeRow kDTypes[] = {
    {StDType::boolean, "BOOL", 1},    {StDType::u8, "U8", 1},
    {StDType::i8, "I8", 1},           {StDType::i16, "I16", 2},
    {StDType::u16, "U16", 2},         {StDType::f16, "F16", 2},
    {StDType::bf16, "BF16", 2},       {StDType::i32, "I32", 4},
    {StDType::u32, "U32", 4},         {StDType::f32, "F32", 4},
    {StDType::f64, "F64", 8},         {StDType::i64, "I64", 8},
    {StDType::u64, "U64", 8},         {StDType::f8_e4m3, "F8_E4M3", 1},
    {StDType::f8_e5m2, "F8_E5M2", 1},
};

// The Rust reference implementation refuses headers above 100 MB; so do we, before parsing.
constexpr int64_t kMaxHeaderBytes = 100'000'000;

bool parse_dtype(const std::string& s, StDType* out) {
  for (const auto& row : kDTypes)
    if (s == row.name) {
      *out = row.t;
      return true;
    }
  return false;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A non-negative integer that fits in int64, or false.
bool as_size(const nlohmann::json& j, int64_t* out) {
  if (!j.is_number_integer()) return false;
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) return false;
    *out = int64_t(u);
    return true;
  }
  int64_t v = j.get<int64_t>();
  if (v < 0) return false;
  *out = v;
  return true;
}

void write_all(std::FILE* f, const void* p, size_t n, const std::string& path) {
  MDS_CHECK(std::fwrite(p, 1, n, f) == n, "cannot write {}: {} (is the disk full?)", path,
            std::strerror(errno));
}

}  // namespace

const char* st_dtype_name(StDType t) {
  for (const auto& row : kDTypes)
    if (row.t == t) return row.name;
  MDS_ASSERT(false, "unknown StDType {}", int(t));
  __builtin_unreachable();
}

int64_t st_dtype_size(StDType t) {
  for (const auto& row : kDTypes)
    if (row.t == t) return row.size;
  MDS_ASSERT(false, "unknown StDType {}", int(t));
  __builtin_unreachable();
}

float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(uint32_t(b) << 16);
}

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return uint16_t((bits >> 16) | 0x0040);  // keep sign, force quiet bit
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate. Overflow of the
  // mantissa carries into the exponent, which is the correct rounding (up to inf at the top).
  const uint32_t lsb = (bits >> 16) & 1u;
  return uint16_t((bits + 0x7fffu + lsb) >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                          StDType dtype, const std::map<std::string, std::string>& metadata) {
  MDS_ASSERT(dtype == StDType::f32 || dtype == StDType::bf16, "cannot write dtype {}",
             st_dtype_name(dtype));
  std::vector<const TensorToWrite*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  const std::string* prev = nullptr;
  for (const TensorToWrite* t : order) {
    MDS_ASSERT(!prev || *prev != t->name, "tensor {} written twice to {}", t->name, path);
    MDS_ASSERT(t->name != "__metadata__", "reserved tensor name in {}", path);
    prev = &t->name;
    int64_t numel = 1;
    for (int64_t d : t->shape) numel *= d;
    const int64_t bytes = st_tensor_bytes(numel, dtype);
    header[t->name] = {{"dtype", st_dtype_name(dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned

  std::FILE* f = std::fopen(path.c_str(), "wb");
  MDS_CHECK(f, "cannot create {}: {}", path, std::strerror(errno));
  try {
    uint8_t len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
    write_all(f, len, 8, path);
    write_all(f, text.data(), text.size(), path);
    std::vector<uint16_t> chunk;
    for (const TensorToWrite* t : order) {
      int64_t numel = 1;
      for (int64_t d : t->shape) numel *= d;
      if (numel == 0) continue;
      if (dtype == StDType::f32) {
        write_all(f, t->data, size_t(numel) * 4, path);
        continue;
      }
      constexpr int64_t kChunk = 1 << 16;
      chunk.resize(kChunk);
      for (int64_t i = 0; i < numel; i += kChunk) {
        const int64_t m = std::min(kChunk, numel - i);
        for (int64_t k = 0; k < m; ++k) chunk[k] = f32_to_bf16(t->data[i + k]);
        write_all(f, chunk.data(), size_t(m) * 2, path);
      }
    }
    // Durable before the caller renames the directory into place (see checkpoint_dir.h).
    MDS_CHECK(std::fflush(f) == 0 && ::fsync(fileno(f)) == 0, "cannot write {}: {}", path,
              std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    throw;
  }
  MDS_CHECK(std::fclose(f) == 0, "cannot write {}: {}", path, std::strerror(errno));
  return 8 + int64_t(text.size()) + offset;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MDS_CHECK(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    MDS_FAIL("cannot stat {}: {}", path, std::strerror(errno));
  }
  size_ = int64_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    MDS_FAIL("{} is truncated: {} bytes, too short for a safetensors header", path, size_);
  }
  void* m = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  MDS_CHECK(m != MAP_FAILED, "cannot map {}: {}", path, std::strerror(errno));
  map_ = static_cast<const uint8_t*>(m);

  try {
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(map_[i]) << (8 * i);
    MDS_CHECK(n <= uint64_t(kMaxHeaderBytes),
              "{} is not a safetensors file: header length {} is above the 100 MB limit", path, n);
    MDS_CHECK(int64_t(n) <= size_ - 8,
              "{} is truncated: the header says {} bytes but the file has only {} after the "
              "length field",
              path, n, size_ - 8);
    data_ = map_ + 8 + n;
    const int64_t data_size = size_ - 8 - int64_t(n);

    nlohmann::json header;
    try {
      header = nlohmann::json::parse(map_ + 8, map_ + 8 + n);
    } catch (const nlohmann::json::exception& e) {
      MDS_FAIL("{} has an invalid safetensors header (bad JSON): {}", path, e.what());
    }
    MDS_CHECK(header.is_object(), "{} has an invalid safetensors header: not a JSON object", path);

    std::vector<std::tuple<int64_t, int64_t, std::string>> ranges;
    for (const auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        MDS_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings", path);
        for (const auto& [k, s] : v.items()) {
          MDS_CHECK(s.is_string(), "{}: __metadata__ value of '{}' must be a string", path, k);
          metadata_[k] = s.get<std::string>();
        }
        continue;
      }
      const std::string where = strfmt("{}: tensor '{}'", path, name);
      MDS_CHECK(
          v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
          "{} needs dtype, shape and data_offsets in the header", where);
      StTensorInfo info;
      MDS_CHECK(v["dtype"].is_string() && parse_dtype(v["dtype"].get<std::string>(), &info.dtype),
                "{} has an unknown dtype {}", where, v["dtype"].dump());
      MDS_CHECK(v["shape"].is_array(), "{} has a shape that is not a list", where);
      int64_t numel = 1;
      for (const auto& d : v["shape"]) {
        int64_t dim = 0;
        MDS_CHECK(as_size(d, &dim), "{} has an invalid shape {}", where, v["shape"].dump());
        info.shape.push_back(dim);
        MDS_CHECK(!__builtin_mul_overflow(numel, dim, &numel), "{} has a shape too large: {}",
                  where, v["shape"].dump());
      }
      const auto& off = v["data_offsets"];
      MDS_CHECK(off.is_array() && off.size() == 2 && as_size(off[0], &info.begin) &&
                    as_size(off[1], &info.end) && info.begin <= info.end,
                "{} has invalid data_offsets {}", where, off.dump());
      MDS_CHECK(info.end <= data_size,
                "{} has data_offsets {} beyond the end of the data ({} bytes): the file is "
                "truncated or corrupt",
                where, off.dump(), data_size);
      int64_t bytes = 0;
      MDS_CHECK(!__builtin_mul_overflow(numel, st_dtype_size(info.dtype), &bytes) &&
                    bytes == info.end - info.begin,
                "{}: shape {} of {} needs {} bytes but data_offsets {} span {}", where,
                shape_str(info.shape), st_dtype_name(info.dtype), bytes, off.dump(),
                info.end - info.begin);
      if (info.end > info.begin) ranges.emplace_back(info.begin, info.end, name);
      tensors_.emplace(name, std::move(info));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      MDS_CHECK(std::get<0>(ranges[i]) >= std::get<1>(ranges[i - 1]),
                "{}: the data of tensors '{}' and '{}' overlap: the file is corrupt", path,
                std::get<2>(ranges[i - 1]), std::get<2>(ranges[i]));
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), size_t(size_));
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_t(size_));
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      size_(o.size_),
      data_(o.data_),
      tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)) {
  o.map_ = nullptr;
}

const StTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  MDS_CHECK(it != tensors_.end(), "{} has no tensor named '{}'", path_, name);
  return it->second;
}

void SafetensorsFile::read_f32(const std::string& name, float* dst) const {
  const StTensorInfo& t = info(name);
  const uint8_t* src = data_ + t.begin;
  const int64_t n = t.numel();
  switch (t.dtype) {
    case StDType::f32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case StDType::bf16:
    case StDType::f16: {
      const bool bf = t.dtype == StDType::bf16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t u;
        std::memcpy(&u, src + 2 * i, 2);  // the data may be unaligned
        dst[i] = bf ? bf16_to_f32(u) : f16_to_f32(u);
      }
      return;
    }
    case StDType::f64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = float(d);
      }
      return;
    default:
      MDS_FAIL("{}: tensor '{}' has dtype {}; mds reads only F32, BF16, F16 and F64 weights", path_,
               name, st_dtype_name(t.dtype));
  }
}

}  // namespace mds::ckpt
