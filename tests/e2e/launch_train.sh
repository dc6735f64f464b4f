#!/usr/bin/env bash
# `mds launch --np 2 train ...` trains a tiny model with D = 2 through OpenMPI on this machine:
# the launcher line it prints is the one it runs, rank 0 alone logs, and the run's loss matches
# `mpirun -np 2 mds train` (the same command by hand). A failing run's exit code comes back
# through mds launch (exec, not a wrapper that swallows it).
#   bash tests/e2e/launch_train.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
unset PBS_NODEFILE SLURM_JOB_ID SLURM_JOB_NODELIST SLURM_NODELIST MDS_DEVICE MDS_BACKEND
preprocess_brown

TRAIN=(--num-layers 2 --hidden-size 64 --num-attention-heads 4 --num-key-value-heads 2
       --seq-length 32 --micro-batch-size 2 --global-batch-size 8
       "${TOK[@]}" --data-path "$TMP/brown_text_document"
       --data-cache-path "$TMP/cache" --split 969,30,1 --seed 1234
       --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine --lr-warmup-iters 2 --weight-decay 0.1
       --clip-grad 1.0 --train-iters 6 --log-interval 1 --eval-interval 6 --eval-iters 1)

"$MDS" launch --np 2 train "${TRAIN[@]}" --log-json "$TMP/launch.jsonl" > "$TMP/launch.log" \
  2> "$TMP/launch.err" || fail "mds launch failed: $(tail "$TMP/launch.err" "$TMP/launch.log")"
head -1 "$TMP/launch.log" | grep -q "mpirun .*-np 2 -npernode 2 .*-x OMP_NUM_THREADS=[0-9]* -x MDS_BACKEND=mpi $(readlink -f "$MDS") train --num-layers 2 " ||
  fail "first line is not the launcher line: $(head -1 "$TMP/launch.log")"
grep -q "x 2 data-parallel = global 8" "$TMP/launch.log" || fail "not D=2: $(head -30 "$TMP/launch.log")"
[[ $(grep -c " iteration=" "$TMP/launch.log") == 6 ]] ||
  fail "want 6 iteration lines from rank 0 alone: $(cat "$TMP/launch.log")"

# The same run by hand: the same losses (the launcher adds nothing but placement and threads).
mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -np 2 "$MDS" train "${TRAIN[@]}" \
  --log-json "$TMP/hand.jsonl" > "$TMP/hand.log" 2>&1 || fail "mpirun failed: $(tail "$TMP/hand.log")"
"$PY" - "$TMP/launch.jsonl" "$TMP/hand.jsonl" << 'PYEOF'
import json, sys
def losses(path):
    return [r["lm_loss"] for r in map(json.loads, open(path)) if "lm_loss" in r]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == 6 and len(a) == len(b), (a, b)
for x, y in zip(a, b):
    assert abs(x - y) <= 1e-5 * abs(y), (a, b)
PYEOF

# A run that fails (a global batch micro x D does not divide): its exit code 2 comes back.
set +e
"$MDS" launch --np 2 train "${TRAIN[@]}" --global-batch-size 6 > /dev/null 2> "$TMP/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "exit $rc (want 2) through mds launch: $(cat "$TMP/err")"
grep -q "mds train: error: --global-batch-size (6)" "$TMP/err" || fail "no error line: $(cat "$TMP/err")"
[[ -n ${MDS_E2E_SHOW:-} ]] && head -3 "$TMP/launch.log" && grep " iteration=" "$TMP/launch.log" | tail -2 && cat "$TMP/launch.err"
echo "PASS"
