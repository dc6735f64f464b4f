// safetensors files (https://github.com/huggingface/safetensors): a writer for fp32 buffers and a
// memory-mapped, validating reader that converts F32 / BF16 / F16 / F64 tensors to fp32.
//
// Layout: [u64 little-endian N][N bytes of JSON header, space-padded to a multiple of 8][data].
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
// relative to the data section) plus "__metadata__": {"format": "pt"}, as torch's save_file does.
// The writer stores tensors sorted by name (like the Rust library for one dtype), so the same
// tensors always give the same bytes. Every problem with a file read is a UserError naming it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mds::ckpt {

// Element types of the safetensors format. Only f32, bf16, f16 and f64 convert to fp32.
enum class StDType {
  boolean,
  u8,
  i8,
  i16,
  u16,
  f16,
  bf16,
  i32,
  u32,
  f32,
  f64,
  i64,
  u64,
  f8_e4m3,
  f8_e5m2
};

const char* st_dtype_name(StDType t);  // "F32", "BF16", ...
int64_t st_dtype_size(StDType t);      // bytes per element

// bf16 <-> fp32. bf16 -> fp32 is exact; fp32 -> bf16 rounds to nearest, ties to even, and keeps
// NaN a (quiet) NaN.
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);
// IEEE half -> fp32, exact for every input (subnormals, +-inf, NaN).
float f16_to_f32(uint16_t h);

// One tensor to write: `data` holds prod(shape) contiguous fp32 values, row-major.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// Writes `tensors` to `path` (overwriting it), converted to `dtype` (f32 or bf16) and fsynced.
// Returns the number of bytes written. Names must be unique (internal error otherwise).
int64_t write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                          StDType dtype = StDType::f32,
                          const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Bytes write_safetensors would use for the data of one tensor of `numel` elements.
inline int64_t st_tensor_bytes(int64_t numel, StDType dtype) {
  return numel * st_dtype_size(dtype);
}

struct StTensorInfo {
  StDType dtype;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t numel() const;
};

// A safetensors file mapped read-only. Opening validates the whole header: a sane header length,
// valid JSON, known dtypes, shapes matching the byte ranges, ranges inside the file and not
// overlapping. Move-only; unmaps on destruction.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, StTensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const StTensorInfo& info(const std::string& name) const;  // UserError naming file and tensor

  // Converts the tensor to fp32 into dst, which holds info(name).numel() floats.
  void read_f32(const std::string& name, float* dst) const;

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  int64_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, StTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mds::ckpt
