#include "mds/infer/checkpoint_model.h"

#include <filesystem>
#include <sstream>

#include "mds/ckpt/checkpoint_dir.h"
#include "mds/core/error.h"
#include "mds/model/params.h"

namespace fs = std::filesystem;

namespace mds::infer {

namespace {

// The tokenizer flags of a recorded `mds train` command line ("--flag value" or "--flag=value").
std::optional<data::TokenizerOptions> recorded_tokenizer(const std::string& command_line) {
  std::istringstream in(command_line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  data::TokenizerOptions o;
  for (size_t i = 0; i < words.size(); ++i) {
    std::string flag = words[i], value;
    if (const size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (i + 1 < words.size()) {
      value = words[i + 1];
    }
    if (flag == "--tokenizer-type") o.type = value;
    if (flag == "--vocab-file") o.vocab_file = value;
    if (flag == "--merge-file") o.merge_file = value;
    if (flag == "--tokenizer-model") o.tokenizer_model = value;
    if (flag == "--vocab-size") o.vocab_size = std::atoll(value.c_str());
  }
  if (o.type.empty()) return std::nullopt;
  for (const std::string* f : {&o.vocab_file, &o.merge_file, &o.tokenizer_model})
    if (!f->empty() && !fs::exists(*f)) return std::nullopt;
  return o;
}

}  // namespace

CheckpointModel open_checkpoint(const std::string& load) {
  CheckpointModel cm;
  cm.load = load;
  MDS_CHECK(fs::is_directory(load), "--load {}: no such directory", load);
  cm.dir = ckpt::resolve_load_dir(load);
  cm.hf = ckpt::read_hf_config(cm.dir);
  model::LlamaConfig& c = cm.config;
  c.num_layers = cm.hf.num_layers;
  c.hidden_size = cm.hf.hidden_size;
  c.ffn_hidden_size = cm.hf.ffn_hidden_size;
  c.num_attention_heads = cm.hf.num_attention_heads;
  c.num_key_value_heads = cm.hf.num_key_value_heads;
  c.max_position_embeddings = cm.hf.max_position_embeddings;
  c.seq_length = cm.hf.max_position_embeddings;
  c.rope_theta = cm.hf.rope_theta;
  c.norm_eps = float(cm.hf.rms_norm_eps);
  c.vocab_size = cm.hf.vocab_size;
  c.finalize(128);  // the padding mds train uses; padded rows load as zeros and are masked
  return cm;
}

std::vector<float> load_weights(const CheckpointModel& cm) {
  const model::ParamTable table(cm.config);
  std::vector<float> params(size_t(table.total()));
  ckpt::load_hf_checkpoint(cm.dir, cm.config, table, params.data());
  return params;
}

ResolvedTokenizer checkpoint_tokenizer(const CheckpointModel& cm,
                                       const data::TokenizerOptions& flags) {
  if (!flags.type.empty()) return {data::build_tokenizer(flags), "--tokenizer-type " + flags.type};
  for (const fs::path& dir : {fs::path(cm.dir), fs::path(cm.load)}) {
    data::TokenizerOptions o;
    if (fs::exists(dir / "tokenizer.json")) {
      o.type = "HFTokenizer";
      o.tokenizer_model = (dir / "tokenizer.json").string();
    } else if (fs::exists(dir / "tokenizer.model")) {
      o.type = "Llama2Tokenizer";
      o.tokenizer_model = (dir / "tokenizer.model").string();
    } else {
      continue;
    }
    return {data::build_tokenizer(o), o.type + " " + o.tokenizer_model};
  }
  if (const auto state = ckpt::read_train_state(cm.dir)) {
    if (state->args.contains("command_line") && state->args["command_line"].is_string()) {
      if (const auto o = recorded_tokenizer(state->args["command_line"].get<std::string>()))
        return {data::build_tokenizer(*o),
                o->type + " as recorded in " + (fs::path(cm.dir) / "mds_state.json").string()};
    }
  }
  return {};
}

std::optional<int32_t> stop_token(const CheckpointModel& cm, const data::Tokenizer* tokenizer) {
  if (cm.hf.eos_token_id) return int32_t(*cm.hf.eos_token_id);
  if (tokenizer) return tokenizer->eod();
  return std::nullopt;
}

}  // namespace mds::infer
