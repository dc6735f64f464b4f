# The shared start of every end-to-end script (sourced, not a test itself):
#   source "$(dirname "$0")/lib/common.sh" "$@"      # args: MDS_BINARY SOURCE_DIR
# Sets MDS, SRC, DATA, PY, a private TMP removed on exit, TOK (the GPT-2 tokenizer flags),
# preprocess_brown and fail(). The data and tools come from scripts/setup.sh and
# scripts/prepare_data.sh, which scripts/test.sh runs first: a missing one is a broken setup,
# so the test fails, never skips.
set -euo pipefail
MDS=$1
SRC=$2
DATA=${MDS_DATA_DIR:-$SRC/data}
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
require_data() {
  for f in "$@"; do [[ -e $DATA/$f ]] || fail "$DATA/$f is missing: run scripts/prepare_data.sh"; done
}
require_command() { command -v "$1" > /dev/null || fail "$1 is not installed: run scripts/setup.sh"; }
require_data brown.jsonl gpt2-vocab.json gpt2-merges.txt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TOK=(--tokenizer-type GPT2BPETokenizer --vocab-file "$DATA/gpt2-vocab.json"
     --merge-file "$DATA/gpt2-merges.txt")
# MDS_E2E_TOKENIZER=sentencepiece: Brown's own SentencePiece model (vocab 8005, not GPT-2's
# 50257), for the CPU emulator's GPU runs (tests/cuda_emu), where the output layer's size is
# most of a small model's time.
if [[ ${MDS_E2E_TOKENIZER:-gpt2} == sentencepiece ]]; then
  require_data brown-sp.model
  TOK=(--tokenizer-type SentencePieceTokenizer --tokenizer-model "$DATA/brown-sp.model")
fi
# Brown tokenized with GPT-2's BPE into $TMP/brown_text_document.{bin,idx}.
preprocess_brown() {
  "$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" --json-keys text \
    "${TOK[@]}" --append-eod --workers 2 2> /dev/null
}
