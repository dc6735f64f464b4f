// TensorBoard event files: CRC-32C against the RFC 3720 test vectors, the Event protocol buffer
// byte for byte against a hand-assembled encoding, the TFRecord framing, and the writer's file.
// (tests/e2e/train_report.sh reads a run's events with an independent Python decoder.)
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "mds/core/error.h"
#include "mds/train/tensorboard.h"

using namespace mds::train;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(char(x));
  return s;
}
uint32_t le32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
}  // namespace

TEST(Crc32c, MatchesRfc3720TestVectors) {
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0');
  for (int i = 0; i < 32; ++i) up[i] = char(i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8a9136aau);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62a8ab43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46dd794eu);
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, MaskRotatesAndAddsTheTfRecordConstant) {
  const uint32_t c = crc32c("123456789", 9);
  EXPECT_EQ(masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoardEvent, ScalarEventIsTheHandAssembledProtobuf) {
  // Event{wall_time=1.5 (field 1, fixed64), step=3 (field 2, varint), summary (field 5) {
  //   value (field 1) { tag (field 1) "a", simple_value (field 2, fixed32) 2.0f } } }
  const std::string want =
      bytes({0x09, 0,    0,    0,    0,    0,   0,    0xf8, 0x3f, 0x10, 0x03, 0x2a,
             0x0a, 0x0a, 0x08, 0x0a, 0x01, 'a', 0x15, 0,    0,    0,    0x40});
  EXPECT_EQ(encode_scalar_event(1.5, 3, "a", 2.0f), want);
}

TEST(TensorBoardEvent, StepsAreVarintsAndStepZeroIsLeftOut) {
  const std::string e300 = encode_scalar_event(0.0, 300, "t", 1.0f);
  EXPECT_EQ(e300.substr(9, 3), bytes({0x10, 0xac, 0x02}));  // 300 = 0b10_0101100
  const std::string e0 = encode_scalar_event(0.0, 0, "t", 1.0f);
  EXPECT_EQ(e0[9], char(0x2a));  // straight to the summary: proto3 omits a default step
}

TEST(TensorBoardEvent, FileVersionEventNamesBrainEvent2) {
  const std::string e = encode_file_version_event(2.0);
  EXPECT_EQ(e.substr(0, 9), bytes({0x09, 0, 0, 0, 0, 0, 0, 0, 0x40}));
  EXPECT_EQ(e.substr(9), bytes({0x1a, 13}) + "brain.Event:2");
}

TEST(TfRecord, FramesLengthAndDataWithMaskedCrcs) {
  const std::string data = "hello event";
  const std::string r = tfrecord(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  uint64_t n;
  std::memcpy(&n, r.data(), 8);
  EXPECT_EQ(n, data.size());
  EXPECT_EQ(le32(r, 8), masked_crc32c(r.data(), 8));
  EXPECT_EQ(r.substr(12, data.size()), data);
  EXPECT_EQ(le32(r, 12 + data.size()), masked_crc32c(data.data(), data.size()));
}

TEST(TensorBoardWriter, WritesFileVersionThenOneRecordPerScalar) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mds_tb_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string path;
  {
    TensorBoardWriter w((dir / "sub").string());  // creates the folder
    path = w.path();
    w.add_scalar("lm-loss-training/lm loss", 7.25, 1);
    w.add_scalar("lm-loss-training/lm loss", 7.0, 2);
    // Flushed per event: the file holds both scalars before the writer closes.
    std::ifstream in(path, std::ios::binary);
    const std::string all((std::istreambuf_iterator<char>(in)), {});
    size_t at = 0, records = 0;
    while (at + 12 <= all.size()) {
      uint64_t n;
      std::memcpy(&n, all.data() + at, 8);
      ASSERT_EQ(le32(all, at + 8), masked_crc32c(all.data() + at, 8));
      ASSERT_EQ(le32(all, at + 12 + n), masked_crc32c(all.data() + at + 12, n));
      at += 16 + n;
      ++records;
    }
    EXPECT_EQ(at, all.size());
    EXPECT_EQ(records, 3u);
    EXPECT_NE(all.find("brain.Event:2"), std::string::npos);
  }
  const std::string name = std::filesystem::path(path).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  std::filesystem::remove_all(dir);
}

TEST(TensorBoardWriter, UnwritableFolderIsAUserError) {
  EXPECT_THROW(TensorBoardWriter("/proc/mds-no-such-dir"), mds::UserError);
}
