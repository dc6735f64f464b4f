// HFTokenizer: tokenizer.json loading, added-token splitting, normalizers, pre-tokenizers, the
// BPE model (heap of merges over a linked list of symbols) and post-processing.
#include "mds/data/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "mds/core/error.h"
#include "mds/data/gpt2_bpe.h"  // repair_utf8
#include "mds/data/unicode_normalize.h"

namespace mds::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// GPT-2's byte <-> printable character map (bytes_to_unicode), as UTF-8 strings.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> sym(256);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const unsigned cp = printable ? unsigned(b) : 256u + unsigned(n++);
    std::string s;
    if (cp < 0x80) {
      s.push_back(char(cp));
    } else {
      s.push_back(char(0xC0 | (cp >> 6)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    }
    sym[b] = s;
  }
  return sym;
}

size_t utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = s.find(from, pos)) != std::string::npos; pos = at + from.size())
    out.append(s, pos, at - pos).append(to);
  s = out.append(s, pos, std::string::npos);
}

// The GPT-2 pattern ByteLevel uses when use_regex is true.
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Regex {
  pcre2_code* code = nullptr;
  Regex(const std::string& pattern, const std::string& where) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      MDS_FAIL("{}: cannot compile the pre-tokenizer regex at offset {}: {}", where, offset,
               reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  Regex(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code); }

  // Isolated split: every match is a piece, and so is every gap between matches.
  void split(const std::string& text, std::vector<std::string>& out) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t start = 0, gap = 0;
    while (start < text.size()) {
      const int rc =
          pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      MDS_ASSERT(rc > 0, "PCRE2 match failed with code {}", rc);
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      if (ov[1] == ov[0]) {  // empty match: not a piece; move on one character
        start = ov[0] + utf8_len(static_cast<unsigned char>(text[ov[0]]));
        continue;
      }
      if (ov[0] > gap) out.push_back(text.substr(gap, ov[0] - gap));
      out.push_back(text.substr(ov[0], ov[1] - ov[0]));
      start = gap = ov[1];
    }
    if (gap < text.size()) out.push_back(text.substr(gap));
  }
};

struct NormStep {
  enum Kind { prepend, replace, unicode } kind;
  std::string a, b;
  UnicodeForm form = UnicodeForm::nfc;  // unicode
};

struct Added {
  std::string content;
  int32_t id;
};

// Finds added tokens in text: at each position the longest token that starts there, scanning
// left to right (Hugging Face's leftmost-longest match).
struct AddedMatcher {
  std::vector<Added> tokens;                // sorted by content length, longest first
  std::vector<const Added*> by_first[256];  // the same, by first byte (points into tokens)
  AddedMatcher() = default;
  AddedMatcher(const AddedMatcher&) = delete;
  void build() {
    std::stable_sort(tokens.begin(), tokens.end(), [](const Added& x, const Added& y) {
      return x.content.size() > y.content.size();
    });
    for (const Added& a : tokens)
      if (!a.content.empty()) by_first[static_cast<unsigned char>(a.content[0])].push_back(&a);
  }
  bool empty() const { return tokens.empty(); }
  const Added* match(const std::string& text, size_t i) const {
    for (const Added* a : by_first[static_cast<unsigned char>(text[i])])
      if (a->content.size() <= text.size() - i &&
          text.compare(i, a->content.size(), a->content) == 0)
        return a;  // the longest: they are sorted longest first
    return nullptr;
  }
};

struct PreStep {
  enum Kind { split, byte_level, metaspace } kind;
  std::shared_ptr<Regex> regex;   // split; byte_level with use_regex
  bool add_prefix_space = false;  // byte_level
  std::string replacement;        // metaspace: spaces become it, and it is prepended ...
  enum Prepend { always, first, never } prepend = always;  // ... to every / the first segment
};

}  // namespace

struct HFTokenizer::Impl {
  std::string file;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;  // "" for ids that are not in the vocabulary
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a,b) -> (rank, merged id)
  bool ignore_merges = false, byte_fallback = false, fuse_unk = false, byte_level = false;
  int32_t unk = -1;
  int32_t byte_ids[256];  // the id of <0xXX>, or -1

  std::vector<Added> added;  // every added token, as the file lists them
  // Added tokens with "normalized": false are found in the raw text; those with true are found,
  // by their normalized content, in the normalized text between the first kind (as both the
  // Rust crate's AddedVocabulary and the JS implementation do).
  AddedMatcher raw_added, normalized_added;
  std::vector<std::string> added_by_id;
  std::vector<NormStep> normalizers;
  std::vector<PreStep> pre;
  std::vector<std::string> bytes_sym = byte_symbols();
  std::unordered_map<std::string, unsigned char> sym_byte;
  std::vector<int32_t> template_before, template_after;  // post-processor around the sequence
  int32_t strip_start = 0;                               // decoder Strip
  int64_t vocab_size = 0;
  int32_t eod = -1;

  [[noreturn]] void unsupported(const std::string& what, const json& j) const {
    MDS_FAIL(
        "--tokenizer-model {}: unsupported {} '{}' (HFTokenizer supports BPE with "
        "NFC/NFD/NFKC/NFKD/Prepend/Replace normalizers, Split/ByteLevel/Metaspace "
        "pre-tokenizers, TemplateProcessing)",
        file, what, j.value("type", j.dump().substr(0, 60)));
  }

  int32_t token_id(const std::string& t) const {
    for (const Added& a : added)
      if (a.content == t) return a.id;
    auto it = vocab.find(t);
    return it == vocab.end() ? -1 : it->second;
  }

  void load_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "Sequence") {
      for (const json& s : n.at("normalizers")) load_normalizer(s);
    } else if (type == "Prepend") {
      normalizers.push_back({NormStep::prepend, n.at("prepend").get<std::string>(), ""});
    } else if (type == "Replace" && n.at("pattern").contains("String")) {
      normalizers.push_back({NormStep::replace, n.at("pattern").at("String").get<std::string>(),
                             n.at("content").get<std::string>()});
    } else if (const auto form = unicode_form(type)) {
      normalizers.push_back({NormStep::unicode, "", "", *form});
    } else {
      unsupported("normalizer", n);
    }
  }

  void load_pre_tokenizer(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const json& s : p.at("pretokenizers")) load_pre_tokenizer(s);
    } else if (type == "Split" && p.at("pattern").contains("Regex") &&
               p.value("behavior", "") == "Isolated" && !p.value("invert", false)) {
      pre.push_back({PreStep::split,
                     std::make_shared<Regex>(p.at("pattern").at("Regex").get<std::string>(), file),
                     false,
                     {}});
    } else if (type == "ByteLevel") {
      byte_level = true;
      PreStep s{PreStep::byte_level, nullptr, p.value("add_prefix_space", false), {}};
      if (p.value("use_regex", true)) s.regex = std::make_shared<Regex>(kGpt2Pattern, file);
      pre.push_back(s);
    } else if (type == "Metaspace") {
      // Llama/Mistral exports use split false; with split true Rust cuts at every replacement,
      // which Hugging Face's JS does not do, so there is no agreed answer to match.
      MDS_CHECK(!p.value("split", false),
                "--tokenizer-model {}: Metaspace with split true is not supported", file);
      PreStep s{PreStep::metaspace, nullptr, false, p.value("replacement", "\u2581"),
                PreStep::always};
      const std::string scheme =
          p.contains("prepend_scheme")
              ? p.at("prepend_scheme").get<std::string>()
              : (p.value("add_prefix_space", true) ? "always" : "never");  // older files
      if (scheme == "first")
        s.prepend = PreStep::first;
      else if (scheme == "never")
        s.prepend = PreStep::never;
      else
        MDS_CHECK(scheme == "always", "--tokenizer-model {}: unknown Metaspace prepend_scheme '{}'",
                  file, scheme);
      pre.push_back(s);
    } else {
      unsupported("pre_tokenizer", p);
    }
  }

  void load_post_processor(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const json& s : p.at("processors")) load_post_processor(s);
    } else if (type == "TemplateProcessing") {
      bool seen_sequence = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          seen_sequence = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        for (const json& id : p.at("special_tokens").at(name).at("ids"))
          (seen_sequence ? template_after : template_before).push_back(id.get<int32_t>());
      }
    } else if (type != "ByteLevel") {
      unsupported("post_processor", p);
    }
  }

  void load_decoder(const json& d) {
    if (d.is_null()) return;
    if (d.value("type", "") == "Sequence")
      for (const json& s : d.at("decoders")) load_decoder(s);
    if (d.value("type", "") == "Strip") strip_start = d.value("start", 0);
  }

  // --- encoding ---------------------------------------------------------------------------

  // BPE over one pre-token (already byte-mapped for byte-level models), appending ids.
  void bpe(const std::string& word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges) {
      if (auto it = vocab.find(word); it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Sym {
      int32_t id;  // -1: not in the vocabulary (byte fallback or unk)
      uint32_t begin, len;
      int32_t prev, next;
    };
    std::vector<Sym> syms;
    for (size_t i = 0; i < word.size();) {
      const size_t n = std::min(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
      auto it = vocab.find(word.substr(i, n));
      syms.push_back({it == vocab.end() ? -1 : it->second, uint32_t(i), uint32_t(n),
                      int32_t(syms.size()) - 1, int32_t(syms.size()) + 1});
      i += n;
    }
    syms.back().next = -1;
    struct Cand {
      int32_t rank, pos, left_id, right_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int32_t l) {
      if (l < 0) return;
      const int32_t r = syms[l].next;
      if (r < 0 || syms[l].id < 0 || syms[r].id < 0) return;
      auto it = merges.find((uint64_t(uint32_t(syms[l].id)) << 32) | uint32_t(syms[r].id));
      if (it != merges.end()) heap.push({it->second.first, l, syms[l].id, syms[r].id});
    };
    for (int32_t i = 0; i < int32_t(syms.size()); ++i) push(i);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& l = syms[c.pos];
      if (l.len == 0 || l.id != c.left_id || l.next < 0) continue;  // stale
      Sym& r = syms[l.next];
      if (r.id != c.right_id) continue;
      l.id = merges.at((uint64_t(uint32_t(c.left_id)) << 32) | uint32_t(c.right_id)).second;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = c.pos;
      push(l.prev);
      push(c.pos);
    }
    bool last_unk = false;
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
      const Sym& s = syms[i];
      if (s.id >= 0) {
        out.push_back(s.id);
        last_unk = false;
        continue;
      }
      // Byte fallback when every byte of the character has its <0xXX> token, else unk.
      bool bytes_known = byte_fallback;
      for (uint32_t b = s.begin; bytes_known && b < s.begin + s.len; ++b)
        bytes_known = byte_ids[static_cast<unsigned char>(word[b])] >= 0;
      if (bytes_known) {
        for (uint32_t b = s.begin; b < s.begin + s.len; ++b)
          out.push_back(byte_ids[static_cast<unsigned char>(word[b])]);
        last_unk = false;
        continue;
      }
      MDS_CHECK(unk >= 0,
                "--tokenizer-model {}: '{}' is not in the vocabulary and the model has "
                "no unk_token or byte_fallback",
                file, word.substr(s.begin, s.len));
      if (!(fuse_unk && last_unk)) out.push_back(unk);
      last_unk = true;
    }
  }

  // The normalizer's steps in order (a Sequence's are flattened).
  void normalize(std::string& text) const {
    for (const NormStep& n : normalizers) {
      if (n.kind == NormStep::prepend)
        text.insert(0, n.a);
      else if (n.kind == NormStep::replace)
        replace_all(text, n.a, n.b);
      else
        unicode_normalize(text, n.form);
    }
  }

  // Normalize one stretch of raw text between unnormalized added tokens, find the normalized
  // added tokens in it, and encode the text between those. at_start: the stretch begins the text
  // (Metaspace's prepend_scheme "first", which in the Rust crate applies at original offset 0).
  void encode_segment(std::string text, bool at_start, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    normalize(text);
    if (normalized_added.empty()) {
      encode_normalized(std::move(text), at_start, out);
      return;
    }
    size_t seg = 0;
    for (size_t i = 0; i < text.size();) {
      const Added* hit = normalized_added.match(text, i);
      if (!hit) {
        ++i;
        continue;
      }
      if (i > seg) encode_normalized(text.substr(seg, i - seg), at_start && seg == 0, out);
      out.push_back(hit->id);
      i += hit->content.size();
      seg = i;
    }
    if (seg < text.size()) encode_normalized(text.substr(seg), at_start && seg == 0, out);
  }

  // Pre-tokenize and BPE normalized text that holds no added token.
  void encode_normalized(std::string text, bool at_start, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<std::string> pieces{std::move(text)};
    for (const PreStep& p : pre) {
      std::vector<std::string> next;
      for (std::string& piece : pieces) {
        if (p.kind == PreStep::metaspace) {
          replace_all(piece, " ", p.replacement);
          if (piece.compare(0, p.replacement.size(), p.replacement) != 0 &&
              (p.prepend == PreStep::always || (p.prepend == PreStep::first && at_start)))
            piece.insert(0, p.replacement);
        }
        if (p.kind == PreStep::byte_level && p.add_prefix_space && !piece.empty() &&
            piece[0] != ' ')
          piece.insert(0, 1, ' ');
        if (p.regex)
          p.regex->split(piece, next);
        else
          next.push_back(std::move(piece));
      }
      pieces = std::move(next);
    }
    for (const std::string& piece : pieces) {
      if (!byte_level) {
        bpe(piece, out);
        continue;
      }
      std::string mapped;
      for (unsigned char c : piece) mapped += bytes_sym[c];
      bpe(mapped, out);
    }
  }
};

HFTokenizer::HFTokenizer(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  fs::path file = path;
  if (fs::is_directory(file)) file /= "tokenizer.json";
  m.file = file.string();
  std::ifstream in(file);
  MDS_CHECK(
      in.is_open(),
      "--tokenizer-model {}: file not found (a Hugging Face tokenizer.json, or its directory)",
      m.file);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    MDS_FAIL("--tokenizer-model {}: not valid JSON ({})", m.file, e.what());
  }
  try {
    const json& model = j.at("model");
    if (model.value("type", "BPE") != "BPE") m.unsupported("model", model);
    // An empty prefix or suffix (Qwen2/3 write "") is the same as none.
    auto none = [&](const char* key) {
      const json v = model.value(key, json());
      return v.is_null() || (v.is_string() && v.get<std::string>().empty());
    };
    MDS_CHECK(none("continuing_subword_prefix") && none("end_of_word_suffix"),
              "--tokenizer-model {}: BPE with continuing_subword_prefix/end_of_word_suffix is "
              "not supported",
              m.file);
    int32_t max_id = -1;
    for (const auto& [tok, id] : model.at("vocab").items()) {
      m.vocab[tok] = id.get<int32_t>();
      max_id = std::max(max_id, id.get<int32_t>());
    }
    m.id_to_token.resize(size_t(max_id + 1));
    for (const auto& [tok, id] : m.vocab) m.id_to_token[size_t(id)] = tok;
    int32_t rank = 0;
    for (const json& mj : model.at("merges")) {
      std::string a, b;
      if (mj.is_array()) {
        a = mj.at(0).get<std::string>();
        b = mj.at(1).get<std::string>();
      } else {
        const std::string s = mj.get<std::string>();
        const size_t sp = s.find(' ');
        MDS_CHECK(sp != std::string::npos, "--tokenizer-model {}: merge '{}' is not 'a b'", m.file,
                  s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      }
      const auto ia = m.vocab.find(a), ib = m.vocab.find(b), iab = m.vocab.find(a + b);
      MDS_CHECK(ia != m.vocab.end() && ib != m.vocab.end() && iab != m.vocab.end(),
                "--tokenizer-model {}: merge '{} {}' uses tokens not in the vocabulary", m.file, a,
                b);
      m.merges.emplace((uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second),
                       std::make_pair(rank++, iab->second));
    }
    m.ignore_merges = model.value("ignore_merges", false);
    m.byte_fallback = model.value("byte_fallback", false);
    m.fuse_unk = model.value("fuse_unk", false);
    if (const json& u = model.value("unk_token", json()); u.is_string())
      m.unk = m.vocab.count(u.get<std::string>()) ? m.vocab.at(u.get<std::string>()) : -1;
    // <0xXX> ids; a model may lack some (Gemma has "\t" itself, not <0x09>): -1 then.
    for (int b = 0; b < 256; ++b) {
      auto it =
          m.vocab.find(strfmt("<0x{}{}>", "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15]));
      m.byte_ids[b] = it == m.vocab.end() ? -1 : it->second;
    }
    m.load_normalizer(j.value("normalizer", json()));
    for (const json& a : j.value("added_tokens", json::array())) {
      MDS_CHECK(
          !a.value("lstrip", false) && !a.value("rstrip", false) && !a.value("single_word", false),
          "--tokenizer-model {}: added token '{}' uses lstrip/rstrip/single_word, which "
          "HFTokenizer does not support",
          m.file, a.value("content", ""));
      m.added.push_back({a.at("content").get<std::string>(), a.at("id").get<int32_t>()});
      max_id = std::max(max_id, m.added.back().id);
      // A normalized token is looked for as the normalizer writes it (GPT-NeoX's runs of
      // spaces are such tokens). Absent, "normalized" is the opposite of "special", as in JS.
      if (a.value("normalized", !a.value("special", false))) {
        Added n = m.added.back();
        m.normalize(n.content);
        m.normalized_added.tokens.push_back(std::move(n));
      } else {
        m.raw_added.tokens.push_back(m.added.back());
      }
    }
    m.raw_added.build();
    m.normalized_added.build();
    m.added_by_id.resize(size_t(max_id + 1));
    for (const auto& a : m.added) m.added_by_id[size_t(a.id)] = a.content;
    m.vocab_size = max_id + 1;
    m.load_pre_tokenizer(j.value("pre_tokenizer", json()));
    m.load_post_processor(j.value("post_processor", json()));
    m.load_decoder(j.value("decoder", json()));
  } catch (const json::exception& e) {
    MDS_FAIL("--tokenizer-model {}: not a Hugging Face tokenizer.json ({})", m.file, e.what());
  }
  for (int b = 0; b < 256; ++b) m.sym_byte[m.bytes_sym[b]] = static_cast<unsigned char>(b);

  // eod: eos_token from tokenizer_config.json (a string or {"content": ...}), else a known name.
  const fs::path config = file.parent_path() / "tokenizer_config.json";
  if (std::ifstream cin(config); cin.is_open()) {
    const json c = json::parse(cin, nullptr, false);
    if (!c.is_discarded() && c.contains("eos_token")) {
      const json& e = c["eos_token"];
      const std::string name = e.is_string() ? e.get<std::string>() : e.value("content", "");
      m.eod = m.token_id(name);
      MDS_CHECK(m.eod >= 0, "{}: eos_token '{}' is not a token of {}", config.string(), name,
                m.file);
    }
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"})
    if (m.eod < 0) m.eod = m.token_id(name);
  MDS_CHECK(m.eod >= 0,
            "--tokenizer-model {}: no eos token found (put the model's tokenizer_config.json, "
            "with eos_token, beside tokenizer.json)",
            m.file);
}

HFTokenizer::~HFTokenizer() = default;

std::vector<int32_t> HFTokenizer::encode(std::string_view raw) const {
  const Impl& m = *impl_;
  const std::string text = repair_utf8(raw);
  std::vector<int32_t> out = m.template_before;
  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    const Added* hit = m.raw_added.match(text, i);
    if (!hit) {
      ++i;
      continue;
    }
    m.encode_segment(text.substr(seg, i - seg), seg == 0, out);
    out.push_back(hit->id);
    i += hit->content.size();
    seg = i;
  }
  m.encode_segment(text.substr(seg), seg == 0, out);
  out.insert(out.end(), m.template_after.begin(), m.template_after.end());
  return out;
}

std::string HFTokenizer::decode(const std::vector<int32_t>& ids) const {
  const Impl& m = *impl_;
  std::string out;
  for (int32_t id : ids) {
    MDS_CHECK(id >= 0 && id < m.vocab_size, "token id {} is outside the vocabulary [0, {})", id,
              m.vocab_size);
    if (size_t(id) < m.added_by_id.size() && !m.added_by_id[size_t(id)].empty()) {
      out += m.added_by_id[size_t(id)];
      continue;
    }
    MDS_CHECK(size_t(id) < m.id_to_token.size() && !m.id_to_token[size_t(id)].empty(),
              "token id {} is not in the vocabulary of {}", id, m.file);
    const std::string& tok = m.id_to_token[size_t(id)];
    if (m.byte_level) {
      for (size_t i = 0; i < tok.size();) {
        const size_t n = utf8_len(static_cast<unsigned char>(tok[i]));
        auto it = m.sym_byte.find(tok.substr(i, n));
        if (it != m.sym_byte.end())
          out.push_back(char(it->second));
        else
          out.append(tok, i, n);
        i += n;
      }
    } else if (m.byte_fallback && tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 &&
               tok[5] == '>') {
      out.push_back(char(std::stoi(tok.substr(3, 2), nullptr, 16)));
    } else {
      std::string t = tok;
      replace_all(t, "\u2581", " ");
      out += t;
    }
  }
  for (int32_t k = 0; k < m.strip_start && !out.empty() && out[0] == ' '; ++k) out.erase(0, 1);
  return repair_utf8(out);
}

int64_t HFTokenizer::vocab_size() const {
  return impl_->vocab_size;
}
int32_t HFTokenizer::eod() const {
  return impl_->eod;
}

}  // namespace mds::data
