#!/usr/bin/env bash
# Blended training data end to end: Brown split into six shards of three corpora, listed in a
# Megatron-DeepSpeed DATA_FILE_LIST, trains; the per-corpus table is printed and logged as the
# first --log-json line; a second start loads every index map from the cache; inspect-data
# shows the same table, a shard's statistics and a document; bad lists fail with FILE:LINE.
#   bash tests/e2e/data_blend.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
export OMP_NUM_THREADS=2
# Six shards of ~80 documents, two per corpus.
mkdir -p "$TMP/shards"
split -n l/6 -d "$DATA/brown.jsonl" "$TMP/shards/part" 
for f in "$TMP"/shards/part0?; do
  "$MDS" preprocess --input "$f" --output-prefix "$f" "${TOK[@]}" --append-eod --workers 2 \
    2> /dev/null > /dev/null
done
S=$TMP/shards
cat > "$TMP/list.txt" <<LIST
# weight prefix corpus (Megatron-DeepSpeed DATA_FILE_LIST)
0.3 $S/part00_text_document news
0.2 $S/part01_text_document.bin news

0.25 $S/part02_text_document fiction   # a trailing comment
0.05 $S/part03_text_document fiction
0.1 $S/part04_text_document science
0.1 $S/part05_text_document science
LIST

MODEL=(--num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 64
       --micro-batch-size 2 --global-batch-size 4 --lr 3e-3 --seed 1234 --split 90,10,0
       --log-interval 1 --eval-interval 5 --eval-iters 1 "${TOK[@]}")
"$MDS" train "${MODEL[@]}" --train-iters 10 --data-file-list "$TMP/list.txt" \
  --log-json "$TMP/a.jsonl" > "$TMP/a.log" || fail "training failed: $(tail "$TMP/a.log")"
[[ $(grep -c " iteration=" "$TMP/a.log") == 10 ]] || fail "expected 10 log lines: $(cat "$TMP/a.log")"
for c in news fiction science total; do
  grep -qE "^>   $c +[0-9.]+ +[0-9]+ " "$TMP/a.log" || fail "no table row for $c: $(cat "$TMP/a.log")"
done
grep -q "> index maps: built 12, loaded cached index 0" "$TMP/a.log" || fail "first start: $(grep '> index' "$TMP/a.log")"
$PY - "$TMP/a.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
d = rows[0]["data"]
names = [c["name"] for c in d["corpora"]]
assert names == ["fiction", "news", "science"], names
w = {c["name"]: c["weight"] for c in d["corpora"]}
assert abs(w["news"] - 0.5) < 1e-9 and abs(w["fiction"] - 0.3) < 1e-9, w
assert d["requested"] == {"train": 40, "valid": 12, "test": 4}, d["requested"]
# Megatron's per-shard counts: ceil(40 * w * 1.005) summed per corpus.
shard_w = {"news": [0.3, 0.2], "fiction": [0.25, 0.05], "science": [0.1, 0.1]}
for c in d["corpora"]:
    assert c["shards"] == 2 and c["documents"] > 0 and c["tokens"] > 0, c
    want = sum(math.ceil(40 * x * 1.005) for x in shard_w[c["name"]])
    assert c["samples"]["train"] == want, (c, want)
assert d["total"]["shards"] == 6 and d["total"]["documents"] == 500, d["total"]
its = [r for r in rows[1:] if "iteration" in r]
assert len(its) == 10 and all(math.isfinite(r["lm_loss"]) for r in its)
print("table ok:", {c["name"]: c["samples"]["train"] for c in d["corpora"]})
PY

# A second start builds nothing and trains the same.
"$MDS" train "${MODEL[@]}" --train-iters 10 --data-file-list "$TMP/list.txt" \
  --log-json "$TMP/b.jsonl" > "$TMP/b.log"
grep -q "> index maps: built 0, loaded cached index 12" "$TMP/b.log" || fail "second start built maps: $(grep '> index' "$TMP/b.log")"
[[ $(grep -c " iteration=" "$TMP/b.log") == 10 ]] || fail "second run"
diff <(grep -o "lm loss=[0-9.]*" "$TMP/a.log") <(grep -o "lm loss=[0-9.]*" "$TMP/b.log") \
  || fail "cached index maps changed the losses"
ls "$S/index-cache"/*.mdsidx > /dev/null || fail "no index-cache beside the data"

# inspect-data: the same table, shard statistics, one document.
"$MDS" inspect-data --data-file-list "$TMP/list.txt" --seq-length 64 --global-batch-size 4 \
  --train-iters 10 --eval-interval 5 --eval-iters 1 --split 90,10,0 > "$TMP/inspect.txt"
corpus_table() { sed -n '/^>   corpus /,/^>   total /p' "$1"; }
[[ -n $(corpus_table "$TMP/a.log") ]] || fail "no corpus table: $(cat "$TMP/a.log")"
diff <(corpus_table "$TMP/a.log") <(corpus_table "$TMP/inspect.txt") || fail "inspect-data table differs"
grep -q "loaded cached index 12" "$TMP/inspect.txt" || fail "inspect-data rebuilt the maps"
"$MDS" inspect-data --data-path "$S/part00_text_document" > "$TMP/stats.txt"
grep -qx "documents: [0-9]*" "$TMP/stats.txt" && grep -qx "dtype: uint16" "$TMP/stats.txt" &&
  grep -qx "tokens: [0-9]*" "$TMP/stats.txt" && grep -qx "sequences: [0-9]*" "$TMP/stats.txt" &&
  grep -qx "vocabulary: ids [0-9]*\.\.50256" "$TMP/stats.txt" || fail "stats: $(cat "$TMP/stats.txt")"
"$MDS" inspect-data --data-path "$S/part00_text_document" --doc 0 "${TOK[@]}" > "$TMP/doc.txt"
$PY - "$TMP/doc.txt" "$S/part00" <<'PY'
import json, sys
ids, text = [json.loads(l) for l in open(sys.argv[1])]
doc = json.loads(open(sys.argv[2]).readline())["text"]
assert ids[-1] == 50256, "the document should end in EOD"
assert text.startswith(doc[:200]), (text[:100], doc[:100])
print(f"doc 0: {len(ids)} ids")
PY

# Bad lists: one line on stderr naming FILE:LINE, exit code 2.
expect_error() {
  local want=$1; shift
  set +e; "$MDS" "$@" > /dev/null 2> "$TMP/err"; local rc=$?; set -e
  [[ $rc == 2 ]] || fail "expected exit 2, got $rc for: $* ($(cat "$TMP/err"))"
  grep -qF -- "$want" "$TMP/err" || fail "expected '$want' in: $(cat "$TMP/err")"
}
printf '0.5 %s news\n0.5 %s\n' "$S/part00_text_document" "$S/part01_text_document" > "$TMP/bad.txt"
expect_error "$TMP/bad.txt:2: expected 3 fields" train "${MODEL[@]}" --train-iters 2 --data-file-list "$TMP/bad.txt"
printf '0.5 %s news\nx %s news\n' "$S/part00_text_document" "$S/part01_text_document" > "$TMP/bad.txt"
expect_error "$TMP/bad.txt:2: weight 'x'" train "${MODEL[@]}" --train-iters 2 --data-file-list "$TMP/bad.txt"
printf '\n0.5 %s news\n' "$S/nope" > "$TMP/bad.txt"
expect_error "$TMP/bad.txt:2: shard $S/nope not found" inspect-data --data-file-list "$TMP/bad.txt"
expect_error "exactly one of --data-path" train "${MODEL[@]}" --train-iters 2
echo "data_blend: ok"
