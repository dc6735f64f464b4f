#!/usr/bin/env bash
# Data parallelism is invariant: `mpirun -np 2 mds train` (D = 2, same global batch, small
# --ddp-bucket-size so gradients go in many buckets) and `-np 4` (D = 4) log the same loss at every iteration as
# one process (relative 1e-5), the same validation loss, and saves the same weights (relative
# 1e-4 in each tensor's L2 norm: an element whose gradient is round-off noise, here a rare
# token's embedding, gets Adam's full-size step of either sign, so single elements may differ
# by ~lr while the tensor agrees to 1e-6). Also: a global batch not divisible by micro x D is rejected, naming the flag.
#   bash tests/e2e/parallel_dp.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
# The corpus tokenized here, so the test never depends on what the quick start left behind.
"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" --json-keys text \
  "${TOK[@]}" --append-eod --workers 2 2> /dev/null
export OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)

TRAIN=(--num-layers 2 --hidden-size 64 --num-attention-heads 4 --num-key-value-heads 2
       --seq-length 32 --micro-batch-size 2 --global-batch-size 8
       "${TOK[@]}" --data-path "$TMP/brown_text_document"
       --data-cache-path "$TMP/cache" --split 969,30,1 --seed 1234
       --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine --lr-warmup-iters 2 --weight-decay 0.1
       --clip-grad 1.0 --train-iters 12 --log-interval 1 --eval-interval 6 --eval-iters 1)

"$MDS" train "${TRAIN[@]}" --save "$TMP/one" --log-json "$TMP/one.jsonl" > "$TMP/one.log"
"${MPIRUN[@]}" -np 2 "$MDS" train "${TRAIN[@]}" --ddp-bucket-size 10000 --save "$TMP/two" \
  --log-json "$TMP/two.jsonl" > "$TMP/two.log"
"${MPIRUN[@]}" -np 4 "$MDS" train "${TRAIN[@]}" --save "$TMP/four" \
  --log-json "$TMP/four.jsonl" > "$TMP/four.log"
grep -q "x 4 data-parallel = global 8" "$TMP/four.log" || fail "not D=4: $(head -20 "$TMP/four.log")"
grep -q "x 2 data-parallel = global 8" "$TMP/two.log" || fail "not D=2: $(head -20 "$TMP/two.log")"
[[ $(grep -c " iteration=" "$TMP/two.log") == 12 ]] || fail "rank 0 alone should log: $(cat "$TMP/two.log")"
grep -q "^time (ms) | forward-backward: .* | dp-comm: " "$TMP/two.log" || fail "no timers line"
# The gradient all-reduce moves exactly 4 bytes per parameter per step, in buckets of 10000.
theory=$(sed -n 's/^> gradient all-reduce per iteration in theory: .* = \([0-9]*\) bytes$/\1/p' "$TMP/two.log")
[[ -n $theory ]] || fail "no communication summary: $(tail "$TMP/two.log")"
grep -q "^> sdp group (2 ranks): $theory bytes per iteration, all-reduce x$(((theory / 4 + 9999) / 10000))\$" \
  "$TMP/two.log" || fail "gradient bytes differ from $theory: $(grep '^> sdp' "$TMP/two.log")"

for N in two four; do
$PY - "$TMP" "$N" <<'PY'
import json, struct, sys
import numpy as np
d, other = sys.argv[1], sys.argv[2]
def losses(name):
    rows = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
    return [r for r in rows if "lm_loss" in r]
one, two = losses("one"), losses(other)
assert len(one) == len(two) == 12, (len(one), len(two))
worst = 0.0
for a, b in zip(one, two):
    assert a["consumed_samples"] == b["consumed_samples"]
    rel = abs(a["lm_loss"] - b["lm_loss"]) / abs(a["lm_loss"])
    worst = max(worst, rel)
    assert rel < 1e-5, f"iteration {a['iteration']}: loss {a['lm_loss']} vs {b['lm_loss']}"
def valid(name):
    return [l for l in open(f"{d}/{name}.log") if "validation loss" in l]
va, vb = valid("one"), valid(other)
assert len(va) == len(vb) == 3, (va, vb)
for x, y in zip(va, vb):
    lx, ly = (float(l.split("lm loss value=")[1].split(" ")[0]) for l in (x, y))
    assert abs(lx - ly) <= 1e-5 * abs(lx), (x, y)
def tensors(name):
    raw = open(f"{d}/{name}/iter_0000012/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "F32", v
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.float32)
    return out
ta, tb = tensors("one"), tensors(other)
assert ta.keys() == tb.keys()
wmax = 0.0
for k in ta:
    rel = float(np.linalg.norm(ta[k] - tb[k]) / max(np.linalg.norm(ta[k]), 1e-30))
    wmax = max(wmax, rel)
    assert rel < 1e-4, f"{k}: relative difference {rel}"
print(f"{other} ranks vs 1 process: max relative loss difference {worst:.2e}, weights {wmax:.2e}")
PY
done

# A global batch that micro x D does not divide: rejected (exit 2), naming the flag.
set +e
"${MPIRUN[@]}" -np 2 "$MDS" train "${TRAIN[@]}" --global-batch-size 6 > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "exit $rc (want 2) for --global-batch-size 6 on D=2: $(cat "$TMP/err")"
[[ $(grep -c "mds train: error: --global-batch-size (6)" "$TMP/err") == 1 ]] ||
  fail "want one error line from rank 0: $(cat "$TMP/err")"

# Rank 0 alone writes checkpoints; when it fails, MPI_Abort ends its waiting peer (exit 2).
set +e
timeout 120 "${MPIRUN[@]}" -np 2 "$MDS" train "${TRAIN[@]}" --train-iters 2 --lr-warmup-iters 0 \
  --eval-iters 0 --save /proc/mds-no-such-dir > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "exit $rc (want 2: MPI_Abort, not a hang) for an unwritable --save: $(cat "$TMP/err")"
grep -q "mds train: error on rank 0: .*--save" "$TMP/err" || fail "no error line: $(cat "$TMP/err")"
echo "PASS"
