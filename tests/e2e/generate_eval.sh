#!/usr/bin/env bash
# mds eval and mds generate end to end, on a model that mds train has just trained and saved:
#  - eval --data-path equals an independent float64 PyTorch computation on the saved HF folder
#    (tests/reference/llama_eval.py), and shows that the model learned (loss well below ln V);
#  - eval --text-file equals eval --data-path on the same text tokenized by mds preprocess;
#  - generate: the same seed gives the same text, another seed another text; greedy decoding
#    needs no seed; the tokenizer defaults to the one recorded in the checkpoint;
#  - bad input (no config.json, a prompt longer than the context, too short a text, ...) is one
#    line on stderr and exit code 2.
#   bash tests/e2e/generate_eval.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
export OMP_NUM_THREADS=2

"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" "${TOK[@]}" \
  --append-eod --workers 2 2> /dev/null
"$MDS" train --num-layers 2 --hidden-size 64 --num-attention-heads 4 --num-key-value-heads 2 \
  --seq-length 64 --micro-batch-size 4 --global-batch-size 8 "${TOK[@]}" \
  --data-path "$TMP/brown_text_document" --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine \
  --lr-warmup-iters 3 --train-iters 30 --split 969,30,1 --log-interval 10 --eval-interval 1000 \
  --eval-iters 1 --seed 1234 --save "$TMP/ckpt" > "$TMP/train.log"
CKPT=$TMP/ckpt/iter_0000030
[[ -f $CKPT/config.json ]] || fail "no checkpoint: $(tail -3 "$TMP/train.log")"

# 1. eval on a dataset (two documents of Brown, EOD included) against the PyTorch reference.
head -n 2 "$DATA/brown.jsonl" > "$TMP/two.jsonl"
"$MDS" preprocess --input "$TMP/two.jsonl" --output-prefix "$TMP/two" "${TOK[@]}" --append-eod \
  2> /dev/null
"$MDS" eval --load "$TMP/ckpt" --data-path "$TMP/two_text_document" --seq-length 64 \
  --micro-batch-size 3 > "$TMP/eval.txt" 2> "$TMP/eval.err"
[[ $(wc -l < "$TMP/eval.txt") == 1 ]] || fail "eval printed more than one line: $(cat "$TMP/eval.txt")"
grep -qE '^windows=[0-9]+ tokens=[0-9]+ loss=[0-9.]+ ppl=[0-9.]+$' "$TMP/eval.txt" ||
  fail "eval line: $(cat "$TMP/eval.txt")"
$PY "$SRC/tests/reference/llama_eval.py" "$CKPT" "$TMP/two_text_document" --megatron \
  --seq-length 64 > "$TMP/ref.json"
$PY - "$TMP/eval.txt" "$TMP/ref.json" <<'PY'
import json, math, re, sys
line = open(sys.argv[1]).read().strip()
ref = json.load(open(sys.argv[2]))
got = dict(kv.split("=") for kv in line.split())
assert int(got["windows"]) == ref["windows"] and int(got["tokens"]) == ref["tokens"], (line, ref)
assert int(got["tokens"]) == 64 * int(got["windows"])
loss, ppl = float(got["loss"]), float(got["ppl"])
assert abs(loss - ref["loss"]) <= 1e-5 * ref["loss"] + 1e-6, (line, ref)
assert abs(ppl - math.exp(loss)) <= 1e-4 * ppl, line
assert loss < math.log(50257) - 2.0, f"the trained model did not learn: {line}"
print(f"eval {line}; reference loss {ref['loss']:.6f}")
PY

# 2. eval --text-file: the same numbers as the dataset preprocess makes of that text.
$PY - "$TMP/two.jsonl" "$TMP/text.txt" "$TMP/text.jsonl" <<'PY'
import json, sys
text = "\n\n".join(json.loads(l)["text"] for l in open(sys.argv[1]))
open(sys.argv[2], "w").write(text)
open(sys.argv[3], "w").write(json.dumps({"text": text}) + "\n")
PY
"$MDS" preprocess --input "$TMP/text.jsonl" --output-prefix "$TMP/text" "${TOK[@]}" 2> /dev/null
"$MDS" eval --load "$TMP/ckpt" --text-file "$TMP/text.txt" --seq-length 48 "${TOK[@]}" \
  > "$TMP/t1.txt" 2> /dev/null
"$MDS" eval --load "$TMP/ckpt" --data-path "$TMP/text_text_document" --seq-length 48 \
  > "$TMP/t2.txt" 2> /dev/null
cmp -s "$TMP/t1.txt" "$TMP/t2.txt" || fail "text $(cat "$TMP/t1.txt") vs data $(cat "$TMP/t2.txt")"
# Without tokenizer flags, the one recorded in the checkpoint's mds_state.json is used.
"$MDS" eval --load "$TMP/ckpt" --text-file "$TMP/text.txt" --seq-length 48 > "$TMP/t3.txt" 2> /dev/null
cmp -s "$TMP/t1.txt" "$TMP/t3.txt" || fail "default tokenizer: $(cat "$TMP/t3.txt")"
echo "eval --text-file $(cat "$TMP/t1.txt")"

# 3. generate: deterministic for a seed, different across seeds, the prompt comes first.
gen() { "$MDS" generate --load "$TMP/ckpt" --prompt "The jury said" --max-new-tokens 24 "$@"; }
gen --seed 7 > "$TMP/g1.txt" 2> "$TMP/g1.err"
gen --seed 7 > "$TMP/g2.txt" 2> /dev/null
gen --seed 8 > "$TMP/g3.txt" 2> /dev/null
cmp -s "$TMP/g1.txt" "$TMP/g2.txt" || fail "same seed, different text: $(cat "$TMP/g1.txt") // $(cat "$TMP/g2.txt")"
cmp -s "$TMP/g1.txt" "$TMP/g3.txt" && fail "seeds 7 and 8 gave the same text: $(cat "$TMP/g1.txt")"
head -c 13 "$TMP/g1.txt" | grep -qx "The jury said" || fail "output does not start with the prompt"
grep -q "tokens/s" "$TMP/g1.err" || fail "no timing line: $(cat "$TMP/g1.err")"
gen --temperature 0 --seed 1 > "$TMP/greedy1.txt" 2> /dev/null
gen --temperature 0 --seed 2 "${TOK[@]}" > "$TMP/greedy2.txt" 2> /dev/null
cmp -s "$TMP/greedy1.txt" "$TMP/greedy2.txt" || fail "greedy decoding depends on the seed"
gen --top-k 1 --seed 3 > "$TMP/top1.txt" 2> /dev/null
cmp -s "$TMP/greedy1.txt" "$TMP/top1.txt" || fail "top-k 1 differs from greedy"
# A plain Hugging Face folder loads as well (the iteration folder itself).
"$MDS" generate --load "$CKPT" --prompt "The jury said" --max-new-tokens 24 --seed 7 \
  > "$TMP/g4.txt" 2> /dev/null
cmp -s "$TMP/g1.txt" "$TMP/g4.txt" || fail "loading the HF folder directly gave other text"
echo "generate: $(tr '\n' ' ' < "$TMP/g1.txt" | head -c 200)"

# 4. Bad input: one line, exit 2.
expect_error() {  # expected-substring, then the mds arguments
  local want=$1; shift
  set +e; "$MDS" "$@" > /dev/null 2> "$TMP/err"; local rc=$?; set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for: $* :: $(cat "$TMP/err")"
  [[ $(wc -l < "$TMP/err") == 1 ]] || fail "not one line for: $* :: $(cat "$TMP/err")"
  grep -q -- "$want" "$TMP/err" || fail "error lacks '$want': $(cat "$TMP/err")"
}
mkdir -p "$TMP/empty"
expect_error "config.json" generate --load "$TMP/empty" --prompt "hi"
expect_error "config.json" eval --load "$TMP/empty" --data-path "$TMP/two_text_document" --seq-length 8
expect_error "no such" generate --load "$TMP/missing" --prompt "hi"
LONG=$(printf 'the %.0s' $(seq 80))
expect_error "longer than the model's context of 64" generate --load "$TMP/ckpt" --prompt "$LONG"
expect_error "prompt is empty" generate --load "$TMP/ckpt" --prompt ""
expect_error "--prompt" generate --load "$TMP/ckpt"
expect_error "--top-p" generate --load "$TMP/ckpt" --prompt "hi" --top-p 0
expect_error "--temperature" generate --load "$TMP/ckpt" --prompt "hi" --temperature -1
expect_error "--seq-length 65" eval --load "$TMP/ckpt" --data-path "$TMP/two_text_document" --seq-length 65
printf 'Too short.' > "$TMP/short.txt"
expect_error "fewer than one window" eval --load "$TMP/ckpt" --text-file "$TMP/short.txt" --seq-length 64
expect_error "--text-file" eval --load "$TMP/ckpt" --seq-length 8
expect_error "excludes" eval --load "$TMP/ckpt" --seq-length 8 --text-file "$TMP/short.txt" \
  --data-path "$TMP/two_text_document"
expect_error "$TMP/nope" eval --load "$TMP/ckpt" --data-path "$TMP/nope" --seq-length 8
# A tokenizer for another vocabulary: its ids do not fit the model.
echo "[60000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]" > "$TMP/big.ids"
$PY "$SRC/tests/reference/megatron_indexed_writer.py" "$TMP/big.ids" "$TMP/big" --vocab-size 60001 --eod 0
expect_error "vocabulary" eval --load "$TMP/ckpt" --data-path "$TMP/big" --seq-length 8
echo "PASS"
