# Activation recomputation end to end: `mds train` with Megatron's --recompute-* flags and
# Megatron-DeepSpeed's --checkpoint-activations trains bitwise the same model as without them
# (every iteration's loss, the validation losses, the saved weights), on one process and under
# T2xS2 and P2, while the banner's activation memory (checked against the real buffers by the
# banner itself) shrinks, and the recomputed forward's extra traffic equals the theory.
#   bash tests/e2e/recompute.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
require_command timeout
source "$SRC/tests/e2e/lib/comm_bytes.sh"
preprocess_brown
export OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
COMPARE=$SRC/tests/e2e/lib/compare_runs.py

TRAIN=(--num-layers 4 --hidden-size 64 --num-attention-heads 8 --num-key-value-heads 4
       --seq-length 128 --micro-batch-size 2 --global-batch-size 4
       "${TOK[@]}" --data-path "$TMP/brown_text_document"
       --data-cache-path "$TMP/cache" --split 969,30,1 --seed 1234
       --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine --lr-warmup-iters 2 --weight-decay 0.1
       --clip-grad 1.0 --train-iters 6 --log-interval 1 --eval-interval 3 --eval-iters 1)

# run NAME NP [flags...]: one training run, its log, metrics and checkpoint under $TMP/NAME.
run() {
  local name=$1 np=$2
  shift 2
  local cmd=("$MDS" train "${TRAIN[@]}" --save "$TMP/$name" --log-json "$TMP/$name.jsonl" "$@")
  ((np == 1)) || cmd=(timeout 300 "${MPIRUN[@]}" -np "$np" "${cmd[@]}")
  "${cmd[@]}" > "$TMP/$name.log" 2> "$TMP/$name.err" ||
    fail "$name: mds train exited $?: $(tail -3 "$TMP/$name.err")"
  grep -q "allocated .* after prepare(), as its row says" "$TMP/$name.log" ||
    fail "$name: the banner's memory is not what rank 0 allocated: $(grep allocated "$TMP/$name.log")"
}

# Rank 0's activation MiB from the banner's memory table (the row of stage 0).
activations() { awk '/^>   stage  layers/ { getline; print $8; exit }' "$TMP/$1.log"; }
# Bytes per iteration rank 0's GROUP moved.
group_bytes() { sed -nE "s/^> $2 group .*: ([0-9]+) bytes per iteration.*/\1/p" "$TMP/$1.log"; }

# same BASELINE OTHER: bitwise the same losses, validation losses and weights.
same() {
  "$PY" "$COMPARE" "$TMP" "$1" "$2" --iteration 6 --loss-rtol 0 --weight-rtol 0 ||
    fail "$2 is not bitwise $1"
}

# smaller BASELINE OTHER: OTHER keeps fewer activation bytes than BASELINE.
smaller() {
  local a b
  a=$(activations "$1") b=$(activations "$2")
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a) }' ||
    fail "$2 keeps $b MiB of activations, not less than $1's $a"
  echo "activations: $1 $a MiB, $2 $b MiB"
}

PLANS=("full1:--checkpoint-activations"
       "full2:--recompute-granularity full --recompute-method uniform --recompute-num-layers 2"
       "block3:--recompute-granularity full --recompute-method block --recompute-num-layers 3"
       "selective:--recompute-granularity selective")

run keep 1
for plan in "${PLANS[@]}"; do
  read -ra flags <<< "${plan#*:}"
  run "${plan%%:*}" 1 "${flags[@]}"
  same keep "${plan%%:*}"
  smaller keep "${plan%%:*}"
done

# T2xS2: the recomputed forward repeats its all-reduces (TP) and all-to-alls (SP).
LAYOUT=(--tensor-model-parallel-size 2 --ds-sequence-parallel-size 2)
run t2s2 4 "${LAYOUT[@]}"
for plan in full1 selective; do
  read -ra flags <<< "$(printf '%s\n' "${PLANS[@]}" | sed -n "s/^$plan://p")"
  run "t2s2_$plan" 4 "${LAYOUT[@]}" "${flags[@]}"
  same t2s2 "t2s2_$plan"
  smaller t2s2 "t2s2_$plan"
  bytes_differ "$TMP/t2s2_$plan.log" > /dev/null || fail "t2s2_$plan: $(bytes_differ "$TMP/t2s2_$plan.log")"
  grep '^> \(tp\|sp\) group' "$TMP/t2s2_$plan.log"
done
(($(group_bytes t2s2_full1 tp) > $(group_bytes t2s2 tp))) ||
  fail "full recomputation moved no more TP bytes than none: is the forward repeated?"
(($(group_bytes t2s2_selective sp) > $(group_bytes t2s2 sp))) ||
  fail "selective recomputation moved no more SP bytes than none under S=2"
(($(group_bytes t2s2_selective tp) == $(group_bytes t2s2 tp))) ||
  fail "selective recomputation changed the TP traffic: it recomputes the attention core only"

# P2 (2 layers per stage): a pipeline is bitwise the one-process run, with or without.
run p2_block 2 --pipeline-model-parallel-size 2 --recompute-granularity full \
  --recompute-method block --recompute-num-layers 1
same keep p2_block

# More recomputed layers than a stage has: one line from rank 0, exit 2.
rc=0
timeout 120 "${MPIRUN[@]}" --tag-output -np 2 "$MDS" train "${TRAIN[@]}" \
  --pipeline-model-parallel-size 2 --checkpoint-activations --checkpoint-num-layers 3 \
  > "$TMP/reject.log" 2>&1 || rc=$?
((rc == 2)) || fail "--checkpoint-num-layers 3 on 2-layer stages: exit $rc, want 2: $(tail -3 "$TMP/reject.log")"
errors=$(grep -c "error:" "$TMP/reject.log" || true)
((errors == 1)) && grep -q "\[1,0\]<stderr>:.*--recompute-num-layers (3) exceeds the layers of a pipeline stage" \
  "$TMP/reject.log" || fail "want one error line from rank 0: $(cat "$TMP/reject.log")"
echo "recompute: all plans bitwise equal to keeping every activation"
