// SentencePieceTokenizer / Llama2Tokenizer over libsentencepiece, with Megatron's wrapper rules.
#include "mds/data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>

#include "mds/core/error.h"

namespace mds::data {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file,
                                               SentencePieceFlavor flavor)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), flavor_(flavor) {
  MDS_CHECK(std::filesystem::is_regular_file(model_file),
            "--tokenizer-model {}: file not found (a SentencePiece .model, e.g. Llama 2's "
            "tokenizer.model)",
            model_file);
  const auto status = sp_->Load(model_file);
  MDS_CHECK(status.ok(), "--tokenizer-model {}: not a SentencePiece model ({})", model_file,
            status.ToString());
  const int pieces = sp_->GetPieceSize();
  if (flavor == SentencePieceFlavor::llama2) {
    MDS_CHECK(sp_->bos_id() >= 0 && sp_->eos_id() >= 0,
              "--tokenizer-model {}: Llama2Tokenizer needs a model with bos and eos pieces "
              "(bos_id {}, eos_id {}); use SentencePieceTokenizer for this model",
              model_file, sp_->bos_id(), sp_->eos_id());
    vocab_size_ = pieces;
    bos_ = sp_->bos_id();
    eod_ = sp_->eos_id();
    return;
  }
  // Megatron's _SentencePieceTokenizer._initalize: a token the model lacks gets the next id.
  int32_t next = pieces;
  auto add = [&](const std::string& t) {
    const int id = sp_->PieceToId(t);
    // PieceToId answers unk for unknown pieces; only an exact piece counts as present.
    const bool present = id >= 0 && id < pieces && sp_->IdToPiece(id) == t;
    for (const auto& [name, sid] : specials_)
      if (name == t) return;  // already added (e.g. a model whose pad piece is "<MASK>")
    specials_.emplace_back(t, present ? id : next++);
  };
  auto piece_or = [&](int id, const char* fallback) {
    return id >= 0 && id < pieces ? sp_->IdToPiece(id) : std::string(fallback);
  };
  for (const char* t : {"<CLS>", "<SEP>", "<EOD>", "<MASK>"}) add(t);
  add(piece_or(sp_->pad_id(), "<PAD>"));
  add(piece_or(sp_->bos_id(), "<BOS>"));
  add(piece_or(sp_->eos_id(), "<EOS>"));
  vocab_size_ = next;
  eod_ = specials_[2].second;
  bos_ = sp_->bos_id();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

void SentencePieceTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  MDS_ASSERT(status.ok(), "sentencepiece encode failed: {}", status.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  if (flavor_ == SentencePieceFlavor::llama2) {
    out.push_back(bos_);
    encode_plain(text, out);
    return out;
  }
  size_t pos = 0;
  for (;;) {
    size_t best = std::string_view::npos;
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& s : specials_) {
      const size_t at = text.find(s.first, pos);
      if (at < best) best = at, hit = &s;
    }
    if (!hit) break;
    encode_plain(text.substr(pos, best - pos), out);
    out.push_back(hit->second);
    pos = best + hit->first.size();
  }
  encode_plain(text.substr(pos), out);
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  auto plain = [&](size_t from, size_t to) {
    std::vector<int> run(ids.begin() + from, ids.begin() + to);
    std::string text;
    const auto status = sp_->Decode(run, &text);
    MDS_ASSERT(status.ok(), "sentencepiece decode failed: {}", status.ToString());
    return text;
  };
  for (int32_t id : ids)
    MDS_CHECK(id >= 0 && id < vocab_size_, "token id {} is outside the vocabulary [0, {})", id,
              vocab_size_);
  if (flavor_ == SentencePieceFlavor::llama2) return plain(0, ids.size());
  std::string text;
  size_t last = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    for (const auto& [name, sid] : specials_) {
      if (sid != ids[i]) continue;
      text += plain(last, i) + " " + name + " ";
      last = i + 1;
      break;
    }
  }
  return text + plain(last, ids.size());
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return vocab_size_;
}

}  // namespace mds::data
