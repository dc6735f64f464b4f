#!/usr/bin/env bash
# Data parallelism is invariant: `mpirun -np 2 mds train` (D = 2, same global batch, small
# --ddp-bucket-size so gradients go in many buckets) and `-np 4` (D = 4) log the same loss at every iteration as
# one process (relative 1e-5), the same validation loss, and saves the same weights (relative
# 1e-4 in each tensor's L2 norm: an element whose gradient is round-off noise, here a rare
# token's embedding, gets Adam's full-size step of either sign, so single elements may differ
# by ~lr while the tensor agrees to 1e-6); lib/compare_runs.py compares. Also: a global batch
# not divisible by micro x D is rejected, naming the flag.
#   bash tests/e2e/parallel_dp.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
# The corpus tokenized here, so the test never depends on what the quick start left behind.
preprocess_brown
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
# The gradient all-reduce moves exactly 4 bytes per parameter per step (the summary's theory),
# in buckets of 10000.
theory=$(sed -n 's/^> sdp group (2 ranks): .*; in theory \([0-9]*\)$/\1/p' "$TMP/two.log")
[[ -n $theory ]] || fail "no communication summary: $(tail "$TMP/two.log")"
grep -q "^> sdp group (2 ranks): $theory bytes per iteration, all-reduce x$(((theory / 4 + 9999) / 10000)); in theory $theory\$" \
  "$TMP/two.log" || fail "gradient bytes differ from $theory: $(grep '^> sdp' "$TMP/two.log")"

for N in two four; do "$PY" "$SRC/tests/e2e/lib/compare_runs.py" "$TMP" one "$N"; done

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
  --eval-iters 0 --save /proc/mds-no-such-dir --plot "$TMP/plot.png" > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "exit $rc (want 2: MPI_Abort, not a hang) for an unwritable --save: $(cat "$TMP/err")"
grep -q "mds train: error on rank 0: .*--save" "$TMP/err" || fail "no error line: $(cat "$TMP/err")"

# A setup error on rank 0 alone (its loss-plot folder, which only rank 0 writes): one line, every
# rank exits 2, no hang.
set +e
timeout 120 "${MPIRUN[@]}" -np 2 "$MDS" train "${TRAIN[@]}" --train-iters 2 --lr-warmup-iters 0 \
  --plot /proc/mds-no-such-dir/loss.png > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "exit $rc (want 2, not a hang) for a rank-0 setup error: $(cat "$TMP/err")"
[[ $(grep -c "mds train: error: cannot write the loss plot" "$TMP/err") == 1 ]] ||
  fail "want one error line: $(cat "$TMP/err")"
echo "PASS"
