# Mixed precision end to end (--bf16: Megatron's bf16 weights and activations, fp32 master
# weights, gradients and optimizer), on the CPU backend's bf16 reference kernels:
#   - the bf16 loss curve stays within 1e-2 relative of the fp32 run's, every iteration, and
#     the banner's memory (bf16 weights and activations, the fp32 master) is what is allocated;
#   - bf16 under T2xS2 and under P2 reproduces one bf16 process (loss within 1e-3: bf16 sums
#     in the TP all-reduces round differently; P2 is bitwise), with the bytes each group moves
#     equal to the theory in 2-byte activations;
#   - recomputation in bf16 is bitwise the same run; a bf16 checkpoint (its fp32 master)
#     resumes. (--fp16: train_fp16.sh.)
#   bash tests/e2e/train_bf16.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
source "$SRC/tests/e2e/lib/precision_runs.sh"  # TRAIN, run NAME NP [flags...]

run fp32 1
run bf16 1 --bf16
grep -q "bf16 (fp32 master weights and gradients) on " "$TMP/bf16.log" ||
  fail "the --bf16 run does not say it trains in bf16: $(grep -m1 '^> parameters' "$TMP/bf16.log")"
"$PY" "$COMPARE" "$TMP" fp32 bf16 --iteration 12 --loss-rtol 1e-2 --weight-rtol 5e-2 ||
  fail "the bf16 loss curve left fp32's by more than 1e-2"
fp32_params=$(awk '/^>   stage  layers/ { getline; print $5; exit }' "$TMP/fp32.log")
bf16_params=$(awk '/^>   stage  layers/ { getline; print $5; exit }' "$TMP/bf16.log")
# (the banner rounds MiB to 0.1: twice a rounded value is within 0.1 of twice the value)
awk -v a="$fp32_params" -v b="$bf16_params" \
  'BEGIN { exit !(b * 2 > a * 0.99 - 0.1 && b * 2 < a * 1.01 + 0.1) }' ||
  fail "bf16 weights take $bf16_params MiB, not half of fp32's $fp32_params"

run bf16_t2s2 4 --bf16 --tensor-model-parallel-size 2 --ds-sequence-parallel-size 2
run bf16_p2 2 --bf16 --pipeline-model-parallel-size 2
"$PY" "$COMPARE" "$TMP" bf16 bf16_t2s2 --iteration 12 --loss-rtol 1e-3 --weight-rtol 2e-2 ||
  fail "bf16 T2xS2 does not reproduce one bf16 process"
"$PY" "$COMPARE" "$TMP" bf16 bf16_p2 --iteration 12 --loss-rtol 0 --weight-rtol 0 ||
  fail "bf16 P2 is not bitwise one bf16 process"
for r in bf16_t2s2 bf16_p2; do
  bytes_differ "$TMP/$r.log" > /dev/null || fail "$r: $(bytes_differ "$TMP/$r.log")"
done
grep '^> \(tp\|sp\|pp\) group' "$TMP/bf16_t2s2.log" "$TMP/bf16_p2.log"

# Activation recomputation in bf16 repeats the same bf16 kernels: bitwise the same run.
run bf16_full 1 --bf16 --checkpoint-activations
run bf16_selective 1 --bf16 --recompute-granularity selective
for r in bf16_full bf16_selective; do
  "$PY" "$COMPARE" "$TMP" bf16 "$r" --iteration 12 --loss-rtol 0 --weight-rtol 0 ||
    fail "$r is not bitwise the bf16 run without recomputation"
done

# The unfused attention (--attention-backend unfused, NO_FLASH_ATTN) computes the same function
# as the flash kernels, rounded differently: fp32 and bf16 runs reproduce the flash ones.
run unfused 1 --attention-backend unfused
run bf16_unfused 1 --bf16 --attention-backend unfused
grep -q "^> attention: unfused" "$TMP/unfused.log" || fail "the unfused run does not say so"
"$PY" "$COMPARE" "$TMP" fp32 unfused --iteration 12 --loss-rtol 1e-5 --weight-rtol 1e-3 ||
  fail "unfused attention does not reproduce the flash run"
"$PY" "$COMPARE" "$TMP" bf16 bf16_unfused --iteration 12 --loss-rtol 1e-3 --weight-rtol 3e-2 ||
  fail "bf16 unfused attention does not reproduce the bf16 flash run"
rc=0
"$MDS" train "${TRAIN[@]}" --attention-backend fused > "$TMP/fused.log" 2>&1 || rc=$?
((rc == 2)) && grep -q "mds has flash (auto) and unfused" "$TMP/fused.log" ||
  fail "--attention-backend fused: exit $rc: $(cat "$TMP/fused.log")"

# Resume: the checkpoint holds the fp32 master; a bf16 run continues from it.
"$MDS" train "${TRAIN[@]}" --bf16 --load "$TMP/bf16" --train-iters 14 --log-json "$TMP/resumed.jsonl" \
  > "$TMP/resumed.log" 2>&1 || fail "bf16 resume exited $?: $(tail -3 "$TMP/resumed.log")"
grep -q "continuing at iteration 12" "$TMP/resumed.log" || fail "the bf16 run did not resume"

echo "train_bf16: PASS"
