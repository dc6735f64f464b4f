#!/usr/bin/env bash
# mds preprocess at scale, end to end on a slice of Brown: every way in (one file, a glob over
# plain and .gz shards, stdin, 1 or 2 workers) writes the same bytes; preprocessing shards and
# merging them (--merge with prefixes or a directory) equals preprocessing the concatenation;
# bad lines name file and line (exit 2, no output) or, with --skip-bad-lines, are reported
# and left out; the progress line has MB/s and, for files, an ETA.
#   bash tests/e2e/preprocess_scale.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
TOK+=(--append-eod)
same() {  # same PREFIX_A PREFIX_B WHAT
  cmp -s "$1.bin" "$2.bin" || fail "$3: .bin differs"
  cmp -s "$1.idx" "$2.idx" || fail "$3: .idx differs"
}

# 150 Brown documents (~1.8 MB), cut into three shards; the middle one gzipped.
head -n 150 "$DATA/brown.jsonl" > "$TMP/all.jsonl"
mkdir "$TMP/in"
head -n 40 "$TMP/all.jsonl" > "$TMP/in/s1.jsonl"
sed -n 41,100p "$TMP/all.jsonl" | gzip -c > "$TMP/in/s2.jsonl.gz"
tail -n +101 "$TMP/all.jsonl" > "$TMP/in/s3.jsonl"

# 1. The reference: one file, 2 workers. Progress has MB, MB/s and an ETA (the size is known).
"$MDS" preprocess --input "$TMP/all.jsonl" --output-prefix "$TMP/ref" "${TOK[@]}" --workers 2 \
  --log-interval 50 2> "$TMP/log"
grep -Eq "^Processed 50 documents, [0-9.]+ MB, [0-9.]+ MB/s, ETA [0-9]+:[0-9]{2}:[0-9]{2}" \
  "$TMP/log" || fail "progress line lacks MB, MB/s or ETA: $(cat "$TMP/log")"
grep -q "^Done: 150 documents" "$TMP/log" || fail "no summary: $(cat "$TMP/log")"
REF=$TMP/ref_text_document

# 2. Other ways in, same bytes.
"$MDS" preprocess --input "$TMP/all.jsonl" --output-prefix "$TMP/w1" "${TOK[@]}" --workers 1 2> /dev/null
same "$TMP/w1_text_document" "$REF" "--workers 1 vs 2"
"$MDS" preprocess --input "$TMP/in/s*" --output-prefix "$TMP/glob" "${TOK[@]}" --workers 2 2> /dev/null
same "$TMP/glob_text_document" "$REF" "glob over plain + .gz shards"
"$MDS" preprocess --input "$TMP/in/s1.jsonl" "$TMP/in/s2.jsonl.gz" "$TMP/in/s3.jsonl" \
  --output-prefix "$TMP/list" "${TOK[@]}" 2> /dev/null
same "$TMP/list_text_document" "$REF" "three --input values"
gzip -c "$TMP/all.jsonl" | "$MDS" preprocess --input - --output-prefix "$TMP/stdin" "${TOK[@]}" \
  --log-interval 50 2> "$TMP/log"
same "$TMP/stdin_text_document" "$REF" "gzip on stdin"
grep -q "^Processed 50 documents" "$TMP/log" || fail "no progress on stdin: $(cat "$TMP/log")"
grep -q "ETA" "$TMP/log" && fail "an ETA for stdin, whose size is unknown: $(cat "$TMP/log")"

# 3. Shards preprocessed apart, then merged: by prefixes, and by directory.
mkdir "$TMP/parts"
for s in s1 s2 s3; do
  f=$(ls "$TMP/in/$s".*)
  "$MDS" preprocess --input "$f" --output-prefix "$TMP/parts/$s" "${TOK[@]}" 2> /dev/null
done
"$MDS" preprocess --merge --input "$TMP/parts/s1_text_document" "$TMP/parts/s2_text_document.bin" \
  "$TMP/parts/s3_text_document" --output-prefix "$TMP/merged" 2> "$TMP/log"
grep -q "^Merged 3 datasets: 150 documents" "$TMP/log" || fail "merge summary: $(cat "$TMP/log")"
same "$TMP/merged" "$REF" "merge of prefixes"
"$MDS" preprocess --merge --input "$TMP/parts" --output-prefix "$TMP/merged_dir" 2> /dev/null
same "$TMP/merged_dir" "$REF" "merge of a directory"
left=$(find "$TMP" -name '*.tmp*')
[[ -z $left ]] || fail "temporary files left: $left"

# 4. Bad lines. In the second file, line 3 is not JSON and line 5 has no "text".
head -n 2 "$TMP/all.jsonl" > "$TMP/b1.jsonl"
{ sed -n 3,4p "$TMP/all.jsonl"; echo '{"text": broken'; sed -n 5p "$TMP/all.jsonl";
  echo '{"body": "no text"}'; sed -n 6,8p "$TMP/all.jsonl"; } > "$TMP/b2.jsonl"
head -n 8 "$TMP/all.jsonl" > "$TMP/good8.jsonl"
"$MDS" preprocess --input "$TMP/good8.jsonl" --output-prefix "$TMP/good8" "${TOK[@]}" 2> /dev/null
set +e
"$MDS" preprocess --input "$TMP/b1.jsonl" "$TMP/b2.jsonl" --output-prefix "$TMP/bad" "${TOK[@]}" \
  --workers 2 > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "a bad line exits $rc, want 2: $(cat "$TMP/err")"
[[ $(wc -l < "$TMP/err") == 1 ]] || fail "stderr is not one line: $(cat "$TMP/err")"
grep -q "b2.jsonl line 3: not valid JSON" "$TMP/err" || fail "error lacks file and line: $(cat "$TMP/err")"
ls "$TMP" | grep -q "^bad" && fail "a failed run left output: $(ls "$TMP")"
"$MDS" preprocess --input "$TMP/b1.jsonl" "$TMP/b2.jsonl" --output-prefix "$TMP/skip" "${TOK[@]}" \
  --workers 2 --skip-bad-lines 2> "$TMP/err"
grep -q "^warning: skipped .*b2.jsonl line 3: not valid JSON" "$TMP/err" || fail "$(cat "$TMP/err")"
grep -q "^warning: skipped .*b2.jsonl line 5: no key \"text\"" "$TMP/err" || fail "$(cat "$TMP/err")"
grep -q "^Done: 8 documents.*2 bad lines skipped" "$TMP/err" || fail "$(cat "$TMP/err")"
same "$TMP/skip_text_document" "$TMP/good8_text_document" "--skip-bad-lines"

# 5. Input mistakes: one line, exit 2.
for args in "--input $TMP/in/nomatch*.jsonl" "--input $TMP/in" "--merge --input $TMP/in"; do
  set +e
  # shellcheck disable=SC2086
  "$MDS" preprocess $args --output-prefix "$TMP/x" "${TOK[@]}" > /dev/null 2> "$TMP/err"
  rc=$?
  set -e
  [[ $rc == 2 && $(wc -l < "$TMP/err") == 1 ]] || fail "'$args': exit $rc, stderr: $(cat "$TMP/err")"
done
echo "preprocess_scale: OK (file, glob, .gz, stdin, workers and merge give the same bytes; bad lines)"
