// TensorBoard event files, written without TensorFlow: the files `tensorboard --logdir DIR`
// reads and `wandb sync --sync-tensorboard DIR` uploads.
//
// A file is a sequence of TFRecords, each
//   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
// (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8), whose data is one Event
// protocol buffer (tensorflow/core/util/event.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
// The first event carries file_version "brain.Event:2" and no summary; each later one a single
// scalar. The protobuf wire format is small enough to write by hand (see encode_* below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mds::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as TFRecord uses.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

// One TFRecord around `data`.
std::string tfrecord(std::string_view data);
// The serialized Event messages.
std::string encode_file_version_event(double wall_time);
std::string encode_scalar_event(double wall_time, int64_t step, std::string_view tag, float value);

// Appends scalars to DIR/events.out.tfevents.<unix time>.<hostname>, flushing each event so a
// running TensorBoard (or a crash) sees every scalar written so far.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);  // UserError when DIR is not writable
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalar(std::string_view tag, double value, int64_t step);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  void write(const std::string& event);
};

}  // namespace mds::train
