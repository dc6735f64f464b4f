# `mds train --timing-log-level 2` times every kernel and prints the table at the end, and trains
# bitwise the same as without (the timing backend only forwards and synchronises); a level
# outside 0-2 is one error line and exit 2.
#   bash tests/e2e/timing_table.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
preprocess_brown
export OMP_NUM_THREADS=1
TRAIN=("$MDS" train --num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 64
       --micro-batch-size 2 --global-batch-size 4 "${TOK[@]}" --data-path "$TMP/brown_text_document"
       --data-cache-path "$TMP/cache" --lr 1e-3 --train-iters 4 --log-interval 1
       --eval-interval 2 --eval-iters 1)
"${TRAIN[@]}" --save "$TMP/plain" --log-json "$TMP/plain.jsonl" > "$TMP/plain.log" ||
  fail "plain run exited $?"
"${TRAIN[@]}" --save "$TMP/timed" --log-json "$TMP/timed.jsonl" --timing-log-level 2 \
  > "$TMP/timed.log" || fail "timed run exited $?"
"$PY" "$SRC/tests/e2e/lib/compare_runs.py" "$TMP" plain timed --iteration 4 --loss-rtol 0 \
  --weight-rtol 0 || fail "--timing-log-level 2 changed the training"
grep -q "^> kernel time on cpu over 4 training iterations" "$TMP/timed.log" ||
  fail "no kernel table: $(tail -5 "$TMP/timed.log")"
for k in linear_forward linear_backward attention_forward attention_backward adamw_step total; do
  grep -Eq "^>   $k +" "$TMP/timed.log" || fail "the kernel table has no $k row"
done
# linear_forward: 4 per block and the head's per logits chunk, 4 iterations of 2 micro-batches.
calls=$(awk '/^>   linear_forward / { print $3 }' "$TMP/timed.log")
((calls == 4 * 2 * (2 * 4 + 1))) || fail "linear_forward calls $calls, want $((4 * 2 * 9))"
! grep -q "kernel time" "$TMP/plain.log" || fail "the table printed without --timing-log-level 2"
rc=0
"${TRAIN[@]}" --timing-log-level 3 > "$TMP/bad.log" 2>&1 || rc=$?
((rc == 2)) && grep -q "timing-log-level" "$TMP/bad.log" ||
  fail "--timing-log-level 3: exit $rc: $(cat "$TMP/bad.log")"
sed -n '/^> kernel time/,/^>   total/p' "$TMP/timed.log"
echo "timing_table: PASS"
