#include "mds/ckpt/hf_checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "mds/ckpt/file_io.h"
#include "mds/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mds::ckpt {

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

bool is_vocab_tensor(const std::string& name) {
  return name == "model.embed_tokens.weight" || name == "lm_head.weight";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  MDS_CHECK(in, "cannot open {}", path.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    MDS_FAIL("{} is not valid JSON: {}", path.string(), e.what());
  }
}

// A token id in config.json: an integer, or (Llama 3.1's eos) a list whose first entry is used.
std::optional<int64_t> token_id(const json& j, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
  return std::nullopt;
}

// What to change when dimension `dim` of tensor `name` is `got` in the checkpoint: the model
// flag that decides that dimension, with the value that would match where it is unambiguous.
std::string flag_hint(const std::string& name, size_t dim, int64_t got,
                      const model::LlamaConfig& cfg) {
  std::string hidden = strfmt("--hidden-size {}", got);
  if (ends_with(name, "layernorm.weight") || name == "model.norm.weight") return hidden;
  if (is_vocab_tensor(name)) return hidden;  // dim 0 (vocab) is checked separately
  if (ends_with(name, "q_proj.weight") || ends_with(name, "o_proj.weight")) {
    const size_t q_dim = ends_with(name, "q_proj.weight") ? 0 : 1;
    if (dim != q_dim) return hidden;
    return strfmt("--hidden-size / --num-attention-heads (heads x head dim = {} in the checkpoint)",
                  got);
  }
  if (ends_with(name, "k_proj.weight") || ends_with(name, "v_proj.weight")) {
    if (dim == 1) return hidden;
    if (got % cfg.head_dim() == 0)
      return strfmt("--num-key-value-heads {} (kv heads x head dim {} = {})", got / cfg.head_dim(),
                    cfg.head_dim(), got);
    return strfmt("--num-key-value-heads (kv heads x head dim = {} in the checkpoint)", got);
  }
  if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight"))
    return dim == 0 ? strfmt("--ffn-hidden-size {}", got) : hidden;
  if (ends_with(name, "down_proj.weight"))
    return dim == 1 ? strfmt("--ffn-hidden-size {}", got) : hidden;
  return "the model flags to match the checkpoint's config.json";
}

// The tensors of a checkpoint folder, wherever they live (one file or shards).
class TensorSource {
 public:
  explicit TensorSource(const fs::path& dir) {
    if (fs::exists(dir / kSingle)) {
      files_.push_back(std::make_unique<SafetensorsFile>((dir / kSingle).string()));
      for (const auto& [name, _] : files_[0]->tensors()) where_[name] = files_[0].get();
      return;
    }
    const fs::path index = dir / kIndex;
    MDS_CHECK(fs::exists(index),
              "{} holds neither {} nor {}: not a Hugging Face safetensors checkpoint (PyTorch "
              ".bin weights: re-save them with save_pretrained(..., safe_serialization=True))",
              dir.string(), kSingle, kIndex);
    const json j = read_json_file(index);
    MDS_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
              "{} has no weight_map object", index.string());
    std::map<std::string, SafetensorsFile*> opened;
    for (const auto& [name, file] : j["weight_map"].items()) {
      MDS_CHECK(file.is_string(), "{}: weight_map entry '{}' is not a file name", index.string(),
                name);
      const std::string fname = file.get<std::string>();
      auto it = opened.find(fname);
      if (it == opened.end()) {
        MDS_CHECK(fs::exists(dir / fname), "{} lists {} for tensor '{}', but that file is missing",
                  index.string(), fname, name);
        files_.push_back(std::make_unique<SafetensorsFile>((dir / fname).string()));
        it = opened.emplace(fname, files_.back().get()).first;
      }
      MDS_CHECK(it->second->has(name), "{} puts tensor '{}' in {}, but that file does not hold it",
                index.string(), name, fname);
      where_[name] = it->second;
    }
  }

  const std::map<std::string, SafetensorsFile*>& tensors() const { return where_; }
  const SafetensorsFile* find(const std::string& name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : it->second;
  }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, SafetensorsFile*> where_;
};

// Layers present in the checkpoint: 1 + the largest N of "model.layers.N.", or 0.
int64_t checkpoint_layers(const TensorSource& src) {
  static const std::regex layer_re(R"(^model\.layers\.(\d+)\.)");
  int64_t n = 0;
  std::smatch m;
  for (const auto& [name, _] : src.tensors())
    if (std::regex_search(name, m, layer_re)) n = std::max<int64_t>(n, std::stoll(m[1].str()) + 1);
  return n;
}

// The double that prints like the float: config.json shows 1e-05, not 9.999999747378752e-06.
double shortest_double(float f) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, f);
  return std::stod(std::string(buf, res.ptr));
}

void remove_stale_weights(const fs::path& dir) {
  static const std::regex shard_re(R"(^model-\d+-of-\d+\.safetensors$)");
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f == kSingle || f == kIndex || std::regex_match(f, shard_re)) fs::remove(e.path());
  }
}

}  // namespace

HfConfig read_hf_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  MDS_CHECK(fs::exists(path), "{} not found: a Hugging Face checkpoint folder needs config.json",
            path.string());
  const json j = read_json_file(path);
  MDS_CHECK(j.is_object(), "{} is not a JSON object", path.string());
  if (j.contains("model_type"))
    MDS_CHECK(j["model_type"] == "llama", "{} has model_type {}: mds loads Llama models only",
              path.string(), j["model_type"].dump());
  auto get_int = [&](const char* key, std::optional<int64_t> fallback) -> int64_t {
    if (!j.contains(key) || j[key].is_null()) {
      MDS_CHECK(fallback.has_value(), "{} has no '{}'", path.string(), key);
      return *fallback;
    }
    MDS_CHECK(j[key].is_number_integer() && j[key].get<int64_t>() > 0,
              "{}: '{}' must be a positive integer (got {})", path.string(), key, j[key].dump());
    return j[key].get<int64_t>();
  };
  auto get_num = [&](const char* key, double fallback) -> double {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    MDS_CHECK(j[key].is_number(), "{}: '{}' must be a number (got {})", path.string(), key,
              j[key].dump());
    return j[key].get<double>();
  };
  HfConfig c;
  c.num_layers = get_int("num_hidden_layers", std::nullopt);
  c.hidden_size = get_int("hidden_size", std::nullopt);
  c.ffn_hidden_size = get_int("intermediate_size", std::nullopt);
  c.num_attention_heads = get_int("num_attention_heads", std::nullopt);
  c.num_key_value_heads = get_int("num_key_value_heads", c.num_attention_heads);
  c.vocab_size = get_int("vocab_size", std::nullopt);
  c.max_position_embeddings = get_int("max_position_embeddings", 2048);  // HF LlamaConfig default
  c.rope_theta = get_num("rope_theta", 10000.0);
  c.rms_norm_eps = get_num("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  MDS_CHECK(c.hidden_size % c.num_attention_heads == 0,
            "{}: hidden_size ({}) is not divisible by num_attention_heads ({})", path.string(),
            c.hidden_size, c.num_attention_heads);
  if (j.contains("head_dim") && !j["head_dim"].is_null())
    MDS_CHECK(j["head_dim"] == c.hidden_size / c.num_attention_heads,
              "{}: head_dim {} differs from hidden_size / num_attention_heads ({}); mds supports "
              "only head_dim = hidden / heads",
              path.string(), j["head_dim"].dump(), c.hidden_size / c.num_attention_heads);
  MDS_CHECK(!j.contains("rope_scaling") || j["rope_scaling"].is_null(),
            "{}: rope_scaling {} is not supported by mds (plain RoPE only)", path.string(),
            j["rope_scaling"].dump());
  return c;
}

void save_hf_checkpoint(const std::string& dir_str, const model::LlamaConfig& cfg,
                        const model::ParamTable& table, const float* params,
                        const HfSaveOptions& options) {
  MDS_ASSERT(options.dtype == StDType::f32 || options.dtype == StDType::bf16,
             "HF checkpoints are saved in F32 or BF16, not {}", st_dtype_name(options.dtype));
  MDS_ASSERT(cfg.vocab_size > 0 && cfg.vocab_size <= cfg.padded_vocab_size,
             "vocab {} / padded {}: finalize() the config first", cfg.vocab_size,
             cfg.padded_vocab_size);
  const fs::path dir(dir_str);
  std::error_code ec;
  fs::create_directories(dir, ec);
  MDS_CHECK(!ec && fs::is_directory(dir), "cannot create checkpoint folder {}: {}", dir_str,
            ec.message());
  remove_stale_weights(dir);

  json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", cfg.hidden_size},
      {"intermediate_size", cfg.ffn_hidden_size},
      {"num_hidden_layers", cfg.num_layers},
      {"num_attention_heads", cfg.num_attention_heads},
      {"num_key_value_heads", cfg.kv_heads()},
      {"max_position_embeddings", cfg.max_position_embeddings},
      {"rms_norm_eps", shortest_double(cfg.norm_eps)},
      {"rope_theta", cfg.rope_theta},
      {"rope_scaling", nullptr},
      {"vocab_size", cfg.vocab_size},
      {"tie_word_embeddings", false},
      {"hidden_act", "silu"},
      {"torch_dtype", options.dtype == StDType::bf16 ? "bfloat16" : "float32"},
      {"initializer_range", shortest_double(cfg.init_method_std)},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"use_cache", true},
  };
  if (options.bos_token_id) config["bos_token_id"] = *options.bos_token_id;
  if (options.eos_token_id) config["eos_token_id"] = *options.eos_token_id;
  write_file_durably((dir / "config.json").string(), config.dump(2) + "\n");

  // Tensors in table order, greedily packed into shards of at most max_shard_bytes (a tensor
  // larger than that gets a shard of its own), as transformers' shard_checkpoint does.
  std::vector<std::vector<TensorToWrite>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (const auto& p : table.params()) {
    TensorToWrite t{p.name, p.shape, params + p.offset};
    if (is_vocab_tensor(p.name)) t.shape[0] = cfg.vocab_size;  // drop the padding rows
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    const int64_t bytes = st_tensor_bytes(numel, options.dtype);
    if (!shards.back().empty() && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(std::move(t));
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  if (shards.size() == 1) {
    write_safetensors((dir / kSingle).string(), shards[0], options.dtype);
  } else {
    json weight_map = json::object();
    const size_t n = shards.size();
    for (size_t k = 0; k < n; ++k) {
      char fname[64];
      std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", k + 1, n);
      write_safetensors((dir / fname).string(), shards[k], options.dtype);
      for (const auto& t : shards[k]) weight_map[t.name] = fname;
    }
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_durably((dir / kIndex).string(), index.dump(2) + "\n");
  }
  sync_directory(dir.string());
}

void load_hf_checkpoint(const std::string& dir_str, const model::LlamaConfig& cfg,
                        const model::ParamTable& table, float* params) {
  const fs::path dir(dir_str);
  MDS_CHECK(fs::is_directory(dir), "checkpoint folder {} does not exist", dir_str);
  const bool tied = fs::exists(dir / "config.json") && read_hf_config(dir_str).tie_word_embeddings;
  const TensorSource src(dir);

  const int64_t layers = checkpoint_layers(src);
  MDS_CHECK(layers == cfg.num_layers,
            "the checkpoint in {} has {} layers but the model has {}: set --num-layers {}", dir_str,
            layers, cfg.num_layers, layers);

  const int64_t h = cfg.hidden_size;
  bool copy_tied_head = false;
  for (const auto& p : table.params()) {
    const SafetensorsFile* file = src.find(p.name);
    if (!file && p.name == "lm_head.weight" && tied) {
      copy_tied_head = true;
      continue;
    }
    MDS_CHECK(file, "the checkpoint in {} has no tensor '{}' (shape {} in the model)", dir_str,
              p.name, shape_str(p.shape));
    const StTensorInfo& t = file->info(p.name);
    MDS_CHECK(t.shape.size() == p.shape.size(),
              "tensor '{}' has shape {} in {} but {} in the model: set the model flags to match "
              "the checkpoint's config.json",
              p.name, shape_str(t.shape), file->path(), shape_str(p.shape));
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (is_vocab_tensor(p.name) && d == 0) continue;
      MDS_CHECK(t.shape[d] == p.shape[d],
                "tensor '{}' has shape {} in {} but {} in the model: set {} to match the "
                "checkpoint",
                p.name, shape_str(t.shape), file->path(), shape_str(p.shape),
                flag_hint(p.name, d, t.shape[d], cfg));
    }
    if (is_vocab_tensor(p.name)) {
      const int64_t rows = t.shape[0];
      MDS_CHECK(rows >= cfg.vocab_size,
                "tensor '{}' in {} has {} vocabulary rows but the tokenizer has {} tokens: use the "
                "tokenizer the checkpoint was trained with",
                p.name, file->path(), rows, cfg.vocab_size);
      MDS_CHECK(rows <= cfg.padded_vocab_size,
                "tensor '{}' in {} has {} vocabulary rows, more than the model's padded vocabulary "
                "({}): check the tokenizer flags or --make-vocab-size-divisible-by",
                p.name, file->path(), rows, cfg.padded_vocab_size);
      file->read_f32(p.name, params + p.offset);
      // Rows past the checkpoint's vocabulary belong to no token: zero, see the header.
      std::fill(params + p.offset + rows * h, params + p.offset + p.numel, 0.0f);
    } else {
      file->read_f32(p.name, params + p.offset);
    }
  }
  if (copy_tied_head) {
    const auto& emb = table.at("model.embed_tokens.weight");
    const auto& head = table.at("lm_head.weight");
    std::memcpy(params + head.offset, params + emb.offset, size_t(emb.numel) * sizeof(float));
  }
}

}  // namespace mds::ckpt
