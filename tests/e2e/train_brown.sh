#!/usr/bin/env bash
# mds train end to end on the Brown corpus, through the binary as a user runs it:
#  - the loss falls; two runs with the same seed and threads log bitwise the same numbers;
#  - --log-json carries the log line's numbers; --save writes Megatron's layout with a Hugging
#    Face model inside; --load continues from it (and loads a plain HF folder);
#  - bad input (unknown flag, invalid shape, missing or corrupt data, ids beyond the vocabulary)
#    is one line on stderr and exit code 2.
#   bash tests/e2e/train_brown.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
export OMP_NUM_THREADS=2

"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" "${TOK[@]}" \
  --append-eod --workers 2 2> /dev/null
PREFIX=$TMP/brown_text_document
MODEL=(--num-layers 2 --hidden-size 64 --num-attention-heads 4 --num-key-value-heads 2
       --seq-length 64 --micro-batch-size 2 --global-batch-size 4 "${TOK[@]}")
TRAIN=("${MODEL[@]}" --data-path "$PREFIX" --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine
       --weight-decay 0.1 --adam-beta2 0.95 --clip-grad 1.0 --seed 1234
       --split 969,30,1 --log-interval 1 --eval-interval 10 --eval-iters 2)

# 1. The loss falls, and a second run is bitwise identical.
"$MDS" train "${TRAIN[@]}" --train-iters 30 --lr-warmup-iters 3 --log-json "$TMP/a.jsonl" > "$TMP/a.log"
"$MDS" train "${TRAIN[@]}" --train-iters 30 --lr-warmup-iters 3 --log-json "$TMP/b.jsonl" > "$TMP/b.log"
[[ $(grep -c " iteration=" "$TMP/a.log") == 30 ]] || fail "expected 30 log lines: $(cat "$TMP/a.log")"
grep -q " validation loss at iteration 10 | lm loss value=" "$TMP/a.log" || fail "no validation line"
$PY - "$TMP/a.jsonl" "$TMP/b.jsonl" "$TMP/a.log" <<'PY'
import json, re, sys
# The first line is the data table ({"data": ...}); the rest are iterations.
a = [r for r in map(json.loads, open(sys.argv[1])) if "iteration" in r]
b = [r for r in map(json.loads, open(sys.argv[2])) if "iteration" in r]
first, last = a[0]["lm_loss"], sum(r["lm_loss"] for r in a[-5:]) / 5
assert 10.0 < first < 11.5, f"initial loss {first} is not ~ln(50257)"
assert last < first - 1.5, f"loss did not fall: {first} -> {last}"
for x, y in zip(a, b):
    for k in ("lm_loss", "grad_norm", "learning_rate"):
        assert x[k] == y[k], f"not deterministic at iteration {x['iteration']}: {k} {x[k]} vs {y[k]}"
# The log line shows the JSON's numbers.
lines = [l for l in open(sys.argv[3]) if l.startswith(" iteration=")]
for line, r in zip(lines, a):
    assert f"lm loss={r['lm_loss']:.6f} |" in line, (line, r)
    assert f"consumed_samples={r['consumed_samples']:12d} |" in line
    # Our two fields end the line: MFU (absent when the device's peak is unknown) and ETA.
    tail = (f" MFU={r['MFU']:.2f}% |" if r["MFU"] is not None else "") + f" ETA={r['ETA']} |"
    assert line.rstrip("\n").endswith(f" TFLOPs={r['TFLOPs']:.2f} |" + tail), (line, r)
assert a[-1]["consumed_tokens"] == 30 * 4 * 64
print(f"loss {first:.4f} -> {last:.4f}; deterministic over {len(a)} iterations")
PY

# 2. Checkpoints: Megatron's layout, HF files inside; --load continues the iteration count.
"$MDS" train "${TRAIN[@]}" --train-iters 6 --save "$TMP/ckpt" --save-interval 4 > "$TMP/s.log"
[[ $(cat "$TMP/ckpt/latest_checkpointed_iteration.txt") == 6 ]] || fail "latest is not 6"
for f in config.json model.safetensors mds_state.json; do
  [[ -f $TMP/ckpt/iter_0000004/$f && -f $TMP/ckpt/iter_0000006/$f ]] || fail "missing $f"
done
$PY - "$TMP/ckpt/iter_0000006" <<'PY'
import json, struct, sys
d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["vocab_size"] == 50257, cfg
raw = open(f"{d}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
assert hdr["model.embed_tokens.weight"]["shape"] == [50257, 64], hdr["model.embed_tokens.weight"]
assert hdr["lm_head.weight"]["shape"] == [50257, 64]
assert hdr["model.layers.1.self_attn.k_proj.weight"]["shape"] == [32, 64]
PY
"$MDS" train "${TRAIN[@]}" --train-iters 8 --load "$TMP/ckpt" > "$TMP/l.log"
grep -q "continuing at iteration 6" "$TMP/l.log" || fail "did not continue: $(cat "$TMP/l.log")"
grep -q " iteration=       7/       8 |" "$TMP/l.log" || fail "no iteration 7 after resume"
# A plain Hugging Face folder (no latest file) loads as weights, from iteration 0.
"$MDS" train "${TRAIN[@]}" --train-iters 1 --load "$TMP/ckpt/iter_0000006" --finetune > "$TMP/h.log"
grep -q " iteration=       1/       1 |" "$TMP/h.log" || fail "HF folder load failed"
# Loading into a different shape names the flag.
if "$MDS" train "${TRAIN[@]}" --hidden-size 32 --train-iters 1 --load "$TMP/ckpt" > /dev/null 2> "$TMP/e"; then
  fail "shape mismatch accepted"
fi
grep -q -- "--hidden-size" "$TMP/e" || fail "mismatch error does not name the flag: $(cat "$TMP/e")"

# 3. Bad input: one line, exit 2.
expect_error() {  # expected-substring, then the mds arguments
  local want=$1; shift
  set +e; "$MDS" "$@" > /dev/null 2> "$TMP/err"; local rc=$?; set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for: $* :: $(cat "$TMP/err")"
  [[ $(wc -l < "$TMP/err") == 1 ]] || fail "not one line for: $* :: $(cat "$TMP/err")"
  grep -q -- "$want" "$TMP/err" || fail "error lacks '$want': $(cat "$TMP/err")"
}
expect_error "--no-such-flag" train "${TRAIN[@]}" --train-iters 1 --no-such-flag 3
expect_error "divisible by --num-attention-heads" train "${TRAIN[@]}" --train-iters 1 --hidden-size 66
expect_error "divisible by --num-key-value-heads" train "${TRAIN[@]}" --train-iters 1 --num-key-value-heads 3
expect_error "global-batch-size" train "${TRAIN[@]}" --train-iters 1 --global-batch-size 5
expect_error "$TMP/missing" train "${MODEL[@]}" --data-path "$TMP/missing" --lr 1e-3 --train-iters 1
cp "$PREFIX.bin" "$TMP/cut.bin"
head -c 1000 "$PREFIX.idx" > "$TMP/cut.idx"
expect_error "cut" train "${MODEL[@]}" --data-path "$TMP/cut" --lr 1e-3 --train-iters 1
printf 'NOTMAGIC!' | dd of="$TMP/cut.idx" conv=notrunc 2> /dev/null
expect_error "cut" train "${MODEL[@]}" --data-path "$TMP/cut" --lr 1e-3 --train-iters 1
# Ids from a larger vocabulary (as if tokenized with another tokenizer).
echo "[60000, 1, 2, 3, 4, 5, 6, 7, 8, 9]" > "$TMP/big.ids"
for i in $(seq 40); do echo "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]"; done >> "$TMP/big.ids"
$PY "$SRC/tests/reference/megatron_indexed_writer.py" "$TMP/big.ids" "$TMP/big" --vocab-size 60001 --eod 0
expect_error "vocab" train "${MODEL[@]}" --data-path "$TMP/big" --lr 1e-3 --train-iters 4 --split 1,0,0
expect_error "tokenizer-type" train --num-layers 2 --hidden-size 64 --num-attention-heads 4 \
  --seq-length 64 --micro-batch-size 2 --train-iters 1 --lr 1e-3 --data-path "$PREFIX" \
  --tokenizer-type NoSuchTokenizer
# A diverging run stops with a clear line and leaves no checkpoint behind.
expect_error "diverged" train "${TRAIN[@]}" --lr 1e6 --clip-grad 0 --train-iters 20 --save "$TMP/nan"
[[ ! -e $TMP/nan/latest_checkpointed_iteration.txt ]] || fail "a diverged run marked a checkpoint"
echo "PASS"
