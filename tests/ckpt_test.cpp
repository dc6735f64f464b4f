// Checkpoints: safetensors bytes and dtype conversions, Hugging Face Llama save/load (checked
// against an independent numpy reader/writer, tests/reference/read_safetensors.py), and
// Megatron's iter_XXXXXXX / latest_checkpointed_iteration.txt convention.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "mds/ckpt/checkpoint_dir.h"
#include "mds/ckpt/hf_checkpoint.h"
#include "mds/ckpt/safetensors.h"
#include "mds/core/error.h"
#include "mds/model/config.h"
#include "mds/model/params.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mds::ckpt;
using mds::model::LlamaConfig;
using mds::model::ParamTable;

namespace {

const std::string kPyRef = std::string(MDS_SOURCE_DIR) + "/tests/reference/read_safetensors.py";

// A fresh folder under $TMPDIR, deleted with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "mds_ckpt_XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Runs a shell command; returns its stdout, fails the test on a nonzero exit.
std::string run(const std::string& cmd) {
  std::FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  if (!p) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << cmd;
  return out;
}

bool have_numpy() {
  return std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A safetensors file made by hand: header JSON as given, then `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char(n >> (8 * i));
  return out + header + std::string(data_bytes, '\0');
}

// Expects f() to throw mds::UserError whose message contains every one of `parts`.
void expect_user_error(const std::function<void()>& f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no UserError thrown; expected one mentioning " << parts[0];
  } catch (const mds::UserError& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message: " << e.what() << "\nlacks: " << p;
  }
}

LlamaConfig tiny(int64_t ffn = 96) {
  LlamaConfig c;
  c.num_layers = 2;
  c.hidden_size = 64;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.ffn_hidden_size = ffn;
  c.seq_length = 16;
  c.vocab_size = 100;
  c.finalize(64);  // padded vocab 128: 28 rows that no checkpoint holds
  return c;
}

std::vector<float> random_params(const ParamTable& t, uint32_t seed) {
  std::vector<float> p(t.total());
  uint32_t s = seed;
  for (auto& x : p) {
    s = s * 1664525u + 1013904223u;
    x = float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
  }
  return p;
}

HfSaveOptions options(StDType dtype, int64_t max_shard_bytes, std::optional<int64_t> bos = {},
                      std::optional<int64_t> eos = {}) {
  HfSaveOptions o;
  o.dtype = dtype;
  o.max_shard_bytes = max_shard_bytes;
  o.bos_token_id = bos;
  o.eos_token_id = eos;
  return o;
}

// The values read_safetensors.py write-llama puts in tensor `name`.
float py_pattern(const std::string& name, int64_t i) {
  int64_t s = 0;
  for (unsigned char ch : name) s += ch;
  s %= 97;
  return float(((i * 31 + s * 17) % 251) - 125) / 64.0f;
}

}  // namespace

TEST(SafetensorsDType, Bf16ConversionMatchesHandComputedValues) {
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x3E20), 0.15625f);
  EXPECT_EQ(bf16_to_f32(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  // Round to nearest, ties to even, on the 16 dropped bits.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);  // above half
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F807FFFu)), 0x3F80);  // below half
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3FFFFFFFu)), 0x4000);  // carries into exponent
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  const uint16_t nan = f32_to_bf16(std::bit_cast<float>(0x7F800001u));  // signalling NaN
  EXPECT_TRUE(std::isnan(bf16_to_f32(nan)));                            // must not become inf
  // Every bf16 survives bf16 -> f32 -> bf16.
  for (uint32_t b = 0; b < 65536; ++b) {
    if (std::isnan(bf16_to_f32(uint16_t(b)))) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(uint16_t(b))), b);
  }
}

TEST(SafetensorsDType, F16ConversionHandlesSubnormalsInfAndNan) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)) && f16_to_f32(0x8000) == 0.0f);
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7C01)));
  // Every finite half against the textbook formula in double.
  for (uint32_t h = 0; h < 65536; ++h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    if (e == 31) continue;
    double v = e ? std::ldexp(1.0 + m / 1024.0, e - 15) : std::ldexp(m, -24);
    if (h & 0x8000) v = -v;
    ASSERT_EQ(double(f16_to_f32(uint16_t(h))), v) << h;
  }
}

TEST(Safetensors, WritesPaddedHeaderAndReadsBackF32AndBf16) {
  TempDir tmp;
  const std::vector<float> a = {1.0f, -2.5f, 3.0e-8f, 1.0f + 1.0f / 256.0f, 7.0f, 0.1f};
  const std::vector<float> b = {42.0f};
  const std::vector<TensorToWrite> ts = {
      {"z.weight", {2, 3}, a.data()}, {"a.bias", {1}, b.data()}, {"empty", {0, 4}, nullptr}};
  const int64_t bytes = write_safetensors(tmp / "f32.safetensors", ts);
  const std::string raw = read_text(tmp / "f32.safetensors");
  ASSERT_EQ(int64_t(raw.size()), bytes);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(raw[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + n + 7 * 4);
  const json header = json::parse(raw.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  // Sorted by name: a.bias first, then z.weight.
  EXPECT_EQ(header["a.bias"]["data_offsets"], json::array({0, 4}));
  EXPECT_EQ(header["z.weight"]["data_offsets"], json::array({4, 28}));
  EXPECT_EQ(header["z.weight"]["shape"], json::array({2, 3}));

  SafetensorsFile f(tmp / "f32.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.info("z.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.info("empty").numel(), 0);
  std::vector<float> got(6);
  f.read_f32("z.weight", got.data());
  EXPECT_EQ(got, a);

  write_safetensors(tmp / "bf16.safetensors", ts, StDType::bf16);
  SafetensorsFile g(tmp / "bf16.safetensors");
  EXPECT_EQ(g.info("z.weight").dtype, StDType::bf16);
  g.read_f32("z.weight", got.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(got[i], bf16_to_f32(f32_to_bf16(a[i]))) << i;
  EXPECT_EQ(got[3], 1.0f);  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even wins
  EXPECT_EQ(got[4], 7.0f);
  EXPECT_EQ(got[5], bf16_to_f32(0x3DCD));  // 0.1f = 0x3DCCCCCD rounds up, not truncates
  expect_user_error([&] { g.info("nope"); }, {"bf16.safetensors", "nope"});
}

TEST(Safetensors, IndependentPythonReaderAgrees) {
  ASSERT_TRUE(have_numpy()) << "/usr/bin/python3 with numpy is needed: run scripts/setup.sh";
  TempDir tmp;
  std::vector<float> w(5 * 7), v(9);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i)) * 3.0f;
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) - 4.0f;
  const std::vector<TensorToWrite> ts = {{"layer.w", {5, 7}, w.data()}, {"layer.v", {9}, v.data()}};
  for (StDType dt : {StDType::f32, StDType::bf16}) {
    const std::string path = tmp / "x.safetensors";
    write_safetensors(path, ts, dt);
    const json out = json::parse(run("/usr/bin/python3 " + kPyRef + " read " + path));
    EXPECT_EQ(out["metadata"]["format"], "pt");
    const json& t = out["tensors"]["layer.w"];
    EXPECT_EQ(t["dtype"], st_dtype_name(dt));
    EXPECT_EQ(t["shape"], json::array({5, 7}));
    for (size_t i = 0; i < w.size(); ++i) {
      const float want = dt == StDType::f32 ? w[i] : bf16_to_f32(f32_to_bf16(w[i]));
      ASSERT_EQ(t["values"][i].get<double>(), double(want)) << i;
    }
    EXPECT_EQ(out["tensors"]["layer.v"]["sum"].get<double>(), 0.0);
  }
}

TEST(Safetensors, CorruptFilesAreUserErrorsNamingTheFile) {
  TempDir tmp;
  const std::string p = tmp / "bad.safetensors";
  auto open = [&] { SafetensorsFile f(p); };
  write_bytes(p, "abc");
  expect_user_error(open, {"bad.safetensors", "truncated"});
  write_bytes(p, raw_file("{}", 0).substr(0, 8) + "{");  // header length 2, 1 byte present
  expect_user_error(open, {"bad.safetensors", "truncated"});
  write_bytes(p, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  expect_user_error(open, {"bad.safetensors", "100 MB"});
  write_bytes(p, raw_file("{\"a\": {\"dtype\": ", 0));
  expect_user_error(open, {"bad.safetensors", "bad JSON"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  expect_user_error(open, {"bad.safetensors", "'a'", "beyond the end"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", 16));
  expect_user_error(open, {"bad.safetensors", "'a'", "needs 12 bytes"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                          R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          12));
  expect_user_error(open, {"bad.safetensors", "overlap"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", 2));
  expect_user_error(open, {"bad.safetensors", "unknown dtype", "Q4"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4));
  expect_user_error(open, {"bad.safetensors", "invalid shape"});
  write_bytes(p, raw_file(R"({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8));
  SafetensorsFile ints(p);  // a valid file; only the conversion to fp32 is refused
  float x;
  expect_user_error([&] { ints.read_f32("a", &x); }, {"bad.safetensors", "I64"});
  expect_user_error([&] { SafetensorsFile f(tmp / "missing.safetensors"); }, {"missing"});
}

TEST(HfCheckpoint, SaveLoadRoundTripDropsPaddedVocabRows) {
  TempDir tmp;
  const LlamaConfig c = tiny();
  ASSERT_EQ(c.padded_vocab_size, 128);
  const ParamTable t(c);
  const std::vector<float> p = random_params(t, 1);
  save_hf_checkpoint(tmp / "hf", c, t, p.data(), options(StDType::f32, 5'000'000'000, 1, 2));

  const json cfg = json::parse(read_text(tmp / "hf/config.json"));
  EXPECT_EQ(cfg["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_EQ(cfg["vocab_size"], 100);  // unpadded
  EXPECT_EQ(cfg["intermediate_size"], 96);
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  EXPECT_EQ(cfg["rms_norm_eps"].get<double>(), 1e-5);
  EXPECT_EQ(cfg["tie_word_embeddings"], false);
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_EQ(cfg["eos_token_id"], 2);
  EXPECT_FALSE(fs::exists(tmp / "hf/model.safetensors.index.json"));
  SafetensorsFile f(tmp / "hf/model.safetensors");
  EXPECT_EQ(f.info("lm_head.weight").shape, (std::vector<int64_t>{100, 64}));
  EXPECT_EQ(f.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{100, 64}));
  EXPECT_EQ(f.tensors().size(), t.params().size());

  const HfConfig hc = read_hf_config(tmp / "hf");
  EXPECT_EQ(hc.num_layers, 2);
  EXPECT_EQ(hc.hidden_size, 64);
  EXPECT_EQ(hc.ffn_hidden_size, 96);
  EXPECT_EQ(hc.num_key_value_heads, 2);
  EXPECT_EQ(hc.vocab_size, 100);
  EXPECT_EQ(hc.max_position_embeddings, 16);
  EXPECT_EQ(hc.rope_theta, 10000.0);
  EXPECT_EQ(*hc.bos_token_id, 1);

  std::vector<float> q(t.total(), std::nanf(""));
  load_hf_checkpoint(tmp / "hf", c, t, q.data());
  for (const auto& info : t.params()) {
    const bool vocab = info.shape[0] == c.padded_vocab_size;
    const int64_t kept = vocab ? c.vocab_size * c.hidden_size : info.numel;
    for (int64_t i = 0; i < info.numel; ++i)
      ASSERT_EQ(q[info.offset + i], i < kept ? p[info.offset + i] : 0.0f) << info.name << " " << i;
  }
}

TEST(HfCheckpoint, ShardsAboveThresholdAndPythonReadsTheShards) {
  TempDir tmp;
  const LlamaConfig c = tiny();
  const ParamTable t(c);
  const std::vector<float> p = random_params(t, 2);
  save_hf_checkpoint(tmp / "hf", c, t, p.data(), options(StDType::bf16, 40000));
  const json index = json::parse(read_text(tmp / "hf/model.safetensors.index.json"));
  const auto& wm = index["weight_map"];
  EXPECT_EQ(wm.size(), t.params().size());
  std::set<std::string> files;
  for (const auto& [name, file] : wm.items()) files.insert(file.get<std::string>());
  EXPECT_EQ(files.size(), 4u);  // 12.8 kB embedding + 61.7 kB per layer, packed into 40 kB shards
  const std::string last = wm["lm_head.weight"];
  EXPECT_EQ(wm["model.embed_tokens.weight"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(last, "model-00004-of-00004.safetensors");
  EXPECT_FALSE(fs::exists(tmp / "hf/model.safetensors"));
  EXPECT_EQ(json::parse(read_text(tmp / "hf/config.json"))["torch_dtype"], "bfloat16");

  std::vector<float> q(t.total());
  load_hf_checkpoint(tmp / "hf", c, t, q.data());
  const auto& head = t.at("lm_head.weight");
  for (int64_t i = 0; i < 100 * 64; ++i)
    ASSERT_EQ(q[head.offset + i], bf16_to_f32(f32_to_bf16(p[head.offset + i])));

  // Saving again unsharded into the same folder removes the shards and the index.
  save_hf_checkpoint(tmp / "hf", c, t, p.data());
  EXPECT_TRUE(fs::exists(tmp / "hf/model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "hf/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(tmp / ("hf/" + last)));

  ASSERT_TRUE(have_numpy()) << "/usr/bin/python3 with numpy is needed: run scripts/setup.sh";
  save_hf_checkpoint(tmp / "hf", c, t, p.data(), options(StDType::f32, 60000));
  const json idx = json::parse(read_text(tmp / "hf/model.safetensors.index.json"));
  const std::string shard = idx["weight_map"]["model.layers.1.mlp.gate_proj.weight"];
  const json out = json::parse(run("/usr/bin/python3 " + kPyRef + " read " + tmp / "hf/" + shard));
  EXPECT_GT(out["tensors"].size(), 1u);
  for (const auto& [name, v] : out["tensors"].items()) {
    const auto& info = t.at(name);
    ASSERT_EQ(v["values"].size(), size_t(info.numel)) << name;
    for (int64_t i = 0; i < info.numel; i += 97)
      ASSERT_EQ(v["values"][i].get<double>(), double(p[info.offset + i])) << name;
  }
}

TEST(HfCheckpoint, LoadsPythonWrittenBf16ShardedTiedCheckpoint) {
  ASSERT_TRUE(have_numpy()) << "/usr/bin/python3 with numpy is needed: run scripts/setup.sh";
  TempDir tmp;
  run("/usr/bin/python3 " + kPyRef + " write-llama " + tmp / "py" +
      " --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 120 --dtype bf16"
      " --shard-bytes 30000 --tie --extra");
  ASSERT_TRUE(fs::exists(tmp / "py/model.safetensors.index.json"));
  const HfConfig hc = read_hf_config(tmp / "py");
  EXPECT_EQ(hc.rope_theta, 500000.0);
  EXPECT_EQ(hc.rms_norm_eps, 1e-5);
  EXPECT_TRUE(hc.tie_word_embeddings);
  EXPECT_EQ(*hc.eos_token_id, 2);  // first of Llama 3.1's eos list

  const LlamaConfig c = tiny();  // tokenizer vocab 100 <= checkpoint 120 <= padded 128
  const ParamTable t(c);
  std::vector<float> q(t.total(), 9.0f);
  load_hf_checkpoint(tmp / "py", c, t, q.data());
  for (const auto& info : t.params()) {
    const bool head = info.name == "lm_head.weight";
    const std::string src = head ? "model.embed_tokens.weight" : info.name;  // tied
    const int64_t kept = info.shape[0] == 128 ? 120 * 64 : info.numel;
    for (int64_t i = 0; i < info.numel; ++i)
      ASSERT_EQ(q[info.offset + i], i < kept ? py_pattern(src, i) : 0.0f) << info.name << i;
  }

  // f16, one file.
  run("/usr/bin/python3 " + kPyRef + " write-llama " + tmp / "f16" +
      " --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 100 --dtype f16");
  load_hf_checkpoint(tmp / "f16", c, t, q.data());
  const auto& k = t.at("model.layers.1.self_attn.k_proj.weight");
  for (int64_t i = 0; i < k.numel; ++i) ASSERT_EQ(q[k.offset + i], py_pattern(k.name, i));
}

TEST(HfCheckpoint, ShapeMismatchNamesTensorShapesAndFlag) {
  TempDir tmp;
  const LlamaConfig c = tiny(96);
  const ParamTable t(c);
  const std::vector<float> p = random_params(t, 3);
  save_hf_checkpoint(tmp / "hf", c, t, p.data());

  const LlamaConfig wide = tiny(128);
  const ParamTable tw(wide);
  std::vector<float> q(tw.total());
  expect_user_error(
      [&] { load_hf_checkpoint(tmp / "hf", wide, tw, q.data()); },
      {"model.layers.0.mlp.gate_proj.weight", "[96, 64]", "[128, 64]", "--ffn-hidden-size 96"});

  LlamaConfig gqa = tiny();
  gqa.num_key_value_heads = 4;
  const ParamTable tg(gqa);
  q.assign(tg.total(), 0.0f);
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", gqa, tg, q.data()); },
                    {"model.layers.0.self_attn.k_proj.weight", "[32, 64]", "[64, 64]",
                     "--num-key-value-heads 2"});

  LlamaConfig deep = tiny();
  deep.num_layers = 3;
  const ParamTable td(deep);
  q.assign(td.total(), 0.0f);
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", deep, td, q.data()); },
                    {"has 2 layers", "--num-layers 2"});

  LlamaConfig small_vocab = tiny();  // the checkpoint's 100 rows exceed this padded vocab
  small_vocab.vocab_size = 50;
  small_vocab.finalize(64);
  const ParamTable ts(small_vocab);
  q.assign(ts.total(), 0.0f);
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", small_vocab, ts, q.data()); },
                    {"model.embed_tokens.weight", "100 vocabulary rows", "padded vocabulary (64)"});

  LlamaConfig big_vocab = tiny();  // the tokenizer has more tokens than the checkpoint rows
  big_vocab.vocab_size = 110;
  big_vocab.finalize(64);
  const ParamTable tb(big_vocab);
  q.assign(tb.total(), 0.0f);
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", big_vocab, tb, q.data()); },
                    {"100 vocabulary rows", "tokenizer has 110"});
}

TEST(HfCheckpoint, MissingTensorOrFilesAreNamed) {
  TempDir tmp;
  const LlamaConfig c = tiny();
  const ParamTable t(c);
  const std::vector<float> p = random_params(t, 4);
  save_hf_checkpoint(tmp / "hf", c, t, p.data());
  // Rewrite the weights without one tensor (config.json stays untied).
  std::vector<TensorToWrite> ts;
  for (const auto& info : t.params()) {
    if (info.name == "model.layers.1.mlp.up_proj.weight") continue;
    std::vector<int64_t> shape = info.shape;
    if (shape[0] == 128) shape[0] = 100;
    ts.push_back({info.name, shape, p.data() + info.offset});
  }
  write_safetensors(tmp / "hf/model.safetensors", ts);
  std::vector<float> q(t.total());
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", c, t, q.data()); },
                    {"no tensor 'model.layers.1.mlp.up_proj.weight'", "[96, 64]"});
  // An untied checkpoint without lm_head is incomplete, not tied.
  ts.clear();
  for (const auto& info : t.params()) {
    if (info.name == "lm_head.weight") continue;
    std::vector<int64_t> shape = info.shape;
    if (shape[0] == 128) shape[0] = 100;
    ts.push_back({info.name, shape, p.data() + info.offset});
  }
  write_safetensors(tmp / "hf/model.safetensors", ts);
  expect_user_error([&] { load_hf_checkpoint(tmp / "hf", c, t, q.data()); },
                    {"no tensor 'lm_head.weight'"});

  // Sharded: an index naming a missing shard.
  save_hf_checkpoint(tmp / "sh", c, t, p.data(), options(StDType::f32, 60000));
  const json idx = json::parse(read_text(tmp / "sh/model.safetensors.index.json"));
  const std::string shard = idx["weight_map"]["model.layers.1.mlp.up_proj.weight"];
  fs::remove(tmp / "sh/" + shard);
  expect_user_error([&] { load_hf_checkpoint(tmp / "sh", c, t, q.data()); },
                    {"model.safetensors.index.json", shard, "missing"});
  expect_user_error([&] { load_hf_checkpoint(tmp.path.string(), c, t, q.data()); },
                    {"model.safetensors", "not a Hugging Face"});
  write_bytes(tmp / "config.json", R"({"model_type": "gpt2", "hidden_size": 8})");
  expect_user_error([&] { read_hf_config(tmp.path.string()); }, {"config.json", "gpt2"});
  write_bytes(tmp / "config.json", R"({"model_type": "llama", "hidden_size": 8})");
  expect_user_error([&] { read_hf_config(tmp.path.string()); },
                    {"config.json", "num_hidden_layers"});
  write_bytes(tmp / "config.json",
              R"({"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96,
                  "num_attention_heads": 4, "vocab_size": 100,
                  "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})");
  expect_user_error([&] { read_hf_config(tmp.path.string()); }, {"rope_scaling", "llama3"});
}

TEST(CheckpointDir, SaveRenamesIntoPlaceThenMarksLatest) {
  TempDir tmp;
  const LlamaConfig c = tiny();
  const ParamTable t(c);
  std::vector<float> p = random_params(t, 5);
  EXPECT_EQ(iter_dir_name(100), "iter_0000100");
  EXPECT_EQ(iter_dir_name(12345678), "iter_12345678");

  const TrainState s{100, 6400, json{{"lr", 3e-4}, {"seq_length", 16}}};
  const std::string d = save_checkpoint(tmp / "save", s, c, t, p.data());
  EXPECT_EQ(d, tmp / "save/iter_0000100");
  EXPECT_EQ(read_text(tmp / "save/latest_checkpointed_iteration.txt"), "100");
  EXPECT_TRUE(fs::exists(tmp / "save/iter_0000100/model.safetensors"));
  EXPECT_TRUE(fs::exists(tmp / "save/iter_0000100/config.json"));
  for (const auto& e : fs::directory_iterator(tmp / "save"))  // no tmp dir or tmp file left
    EXPECT_TRUE(e.path().filename() == "iter_0000100" ||
                e.path().filename() == "latest_checkpointed_iteration.txt")
        << e.path();
  const auto st = read_train_state(d);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->iteration, 100);
  EXPECT_EQ(st->consumed_samples, 6400);
  EXPECT_EQ(st->args["seq_length"], 16);

  // A later save moves latest; overwriting iteration 100 replaces its contents.
  save_checkpoint(tmp / "save", {200, 12800, json::object()}, c, t, p.data());
  EXPECT_EQ(read_text(tmp / "save/latest_checkpointed_iteration.txt"), "200");
  EXPECT_EQ(resolve_load_dir(tmp / "save"), tmp / "save/iter_0000200");
  p[0] = 123.0f;
  fs::create_directories(tmp / "save/.iter_0000100.tmp/junk");  // left by a crashed save
  save_checkpoint(tmp / "save", {100, 1, json::object()}, c, t, p.data());
  EXPECT_EQ(read_text(tmp / "save/latest_checkpointed_iteration.txt"), "100");
  EXPECT_FALSE(fs::exists(tmp / "save/.iter_0000100.tmp"));
  EXPECT_EQ(read_train_state(tmp / "save/iter_0000100")->consumed_samples, 1);
  std::vector<float> q(t.total());
  load_hf_checkpoint(resolve_load_dir(tmp / "save"), c, t, q.data());
  EXPECT_EQ(q[0], 123.0f);
  EXPECT_FALSE(read_train_state(tmp.path.string()).has_value());
}

TEST(CheckpointDir, ResolveLoadDirFollowsMegatronConvention) {
  TempDir tmp;
  fs::create_directories(tmp / "m/iter_0000050");
  write_bytes(tmp / "m/latest_checkpointed_iteration.txt", "50\n");
  EXPECT_EQ(resolve_load_dir(tmp / "m"), tmp / "m/iter_0000050");

  write_bytes(tmp / "m/latest_checkpointed_iteration.txt", "release");
  expect_user_error([&] { resolve_load_dir(tmp / "m"); }, {"release", "does not exist"});
  fs::create_directories(tmp / "m/release");
  EXPECT_EQ(resolve_load_dir(tmp / "m"), tmp / "m/release");

  write_bytes(tmp / "m/latest_checkpointed_iteration.txt", "60");
  expect_user_error([&] { resolve_load_dir(tmp / "m"); },
                    {"latest_checkpointed_iteration.txt", "iter_0000060", "does not exist"});
  write_bytes(tmp / "m/latest_checkpointed_iteration.txt", "step-50");
  expect_user_error([&] { resolve_load_dir(tmp / "m"); }, {"iteration number", "step-50"});

  fs::create_directories(tmp / "hf");
  write_bytes(tmp / "hf/config.json", "{}");
  EXPECT_EQ(resolve_load_dir(tmp / "hf"), tmp / "hf");

  fs::create_directories(tmp / "empty");
  expect_user_error([&] { resolve_load_dir(tmp / "empty"); },
                    {"--load", "latest_checkpointed_iteration.txt", "config.json"});
  expect_user_error([&] { resolve_load_dir(tmp / "nope"); }, {"--load", "no such folder"});
}
