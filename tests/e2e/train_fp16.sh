# fp16 mixed precision end to end (--fp16: Megatron's fp16 weights and activations, fp32 master
# weights, gradients and optimizer, loss scaling), on the CPU backend's fp16 reference kernels:
#   - with a scale that never overflows, the fp16 loss curve stays within 1e-3 relative of the
#     fp32 run's; fp16 under T2xS2 reproduces one fp16 process (1e-3) and P2 is bitwise, with
#     the bytes each group moves equal to the theory in 2-byte activations; full recomputation
#     is bitwise the same run;
#   - the dynamic scale from Megatron's 2^32 overflows, skips those steps and backs off as
#     Megatron's DynamicGradScaler does (checked step by step from the log), grows after
#     --loss-scale-window clean steps, and a skipped step leaves the weights as they were;
#   - a checkpoint keeps the scale: the resumed run continues with it; --loss-scale is constant;
#     --bf16 with --fp16 is refused with one line.
#   bash tests/e2e/train_fp16.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
source "$SRC/tests/e2e/lib/precision_runs.sh"  # TRAIN, run NAME NP [flags...]

# The log lines' loss scales and skip counts, one "scale skipped" pair per iteration.
scales() {
  "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "loss_scale" in j and "iteration" in j:
        print(j["loss_scale"], j["number_of_skipped_iterations"])' "$1"
}

# 1. A fixed, safe scale: fp16 against fp32, and the parallel layouts against one process.
run fp32 1
run fp16 1 --fp16 --initial-loss-scale 4096
grep -q "fp16 (fp32 master weights and gradients, dynamic loss scale from 4096) on " \
  "$TMP/fp16.log" ||
  fail "the --fp16 run does not say it trains in fp16: $(grep -m1 '^> parameters' "$TMP/fp16.log")"
[[ $(scales "$TMP/fp16.jsonl" | awk '$2 != 0' | wc -l) == 0 ]] ||
  fail "fp16 at scale 4096 skipped steps: $(scales "$TMP/fp16.jsonl" | tr '\n' ' ')"
"$PY" "$COMPARE" "$TMP" fp32 fp16 --iteration 12 --loss-rtol 1e-3 --weight-rtol 1e-2 ||
  fail "the fp16 loss curve left fp32's by more than 1e-3"

run fp16_t2s2 4 --fp16 --initial-loss-scale 4096 --tensor-model-parallel-size 2 \
  --ds-sequence-parallel-size 2
run fp16_p2 2 --fp16 --initial-loss-scale 4096 --pipeline-model-parallel-size 2
"$PY" "$COMPARE" "$TMP" fp16 fp16_t2s2 --iteration 12 --loss-rtol 1e-3 --weight-rtol 1e-2 ||
  fail "fp16 T2xS2 does not reproduce one fp16 process"
"$PY" "$COMPARE" "$TMP" fp16 fp16_p2 --iteration 12 --loss-rtol 0 --weight-rtol 0 ||
  fail "fp16 P2 is not bitwise one fp16 process"
for r in fp16_t2s2 fp16_p2; do
  bytes_differ "$TMP/$r.log" > /dev/null || fail "$r: $(bytes_differ "$TMP/$r.log")"
done
# Recomputation repeats the same fp16 kernels: bitwise the same run.
run fp16_full 1 --fp16 --initial-loss-scale 4096 --checkpoint-activations
"$PY" "$COMPARE" "$TMP" fp16 fp16_full --iteration 12 --loss-rtol 0 --weight-rtol 0 ||
  fail "fp16 with full recomputation is not bitwise the fp16 run"

# 2. The dynamic scale: replay each run's logged skips through Megatron's rule (hysteresis 2)
# and demand the logged scales. From Megatron's 2^32 fp16's gradients overflow and the scale
# backs off; from 2^16 with a window of 2 it grows until it overflows.
replay() {  # replay SCALES_FILE INITIAL WINDOW: prints "skipped doublings" last
  "$PY" - "$@" << 'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
scale, window = float(sys.argv[2]), int(sys.argv[3])
growth, hyst, hysteresis, skipped, grew = 0, 2, 2, 0, 0
for i, (logged, skip) in enumerate(rows, 1):
    inf = int(skip) == 1
    if inf:
        growth, hyst = 0, hyst - 1
        if hyst <= 0: scale = max(scale / 2, 1.0)
    else:
        growth += 1
        if growth == window: growth, hyst, scale, grew = 0, hysteresis, scale * 2, grew + 1
    skipped += inf
    assert float(logged) == scale, f"iteration {i}: logged {logged}, Megatron's rule {scale}"
print(f"dynamic loss scale from {sys.argv[2]}, window {window}: {skipped} of {len(rows)} steps "
      f"skipped, {grew} doublings, final scale {scale:g}", file=sys.stderr)
print(skipped, grew)
EOF
}
run dynamic 1 --fp16 --loss-scale-window 3
scales "$TMP/dynamic.jsonl" > "$TMP/dynamic.scales"
read -r skipped grew < <(replay "$TMP/dynamic.scales" 4294967296 3) ||
  fail "the dynamic loss scale left Megatron's rule"
[[ $(head -1 "$TMP/dynamic.scales") == "4294967296.0 1" ]] && ((skipped >= 2 && skipped < 12)) ||
  fail "from 2^32: $skipped of 12 steps skipped, the first one $(head -1 "$TMP/dynamic.scales")"
run growing 1 --fp16 --initial-loss-scale 65536 --loss-scale-window 2 --train-iters 24 \
  --eval-iters 0
scales "$TMP/growing.jsonl" > "$TMP/growing.scales"
read -r skipped grew < <(replay "$TMP/growing.scales" 65536 2) ||
  fail "the growing loss scale left Megatron's rule"
((grew >= 2)) || fail "the scale did not grow after clean windows: $(tr '\n' ' ' < "$TMP/growing.scales")"
grep -q "lm loss=" "$TMP/dynamic.log" || fail "no applied step logged a loss"

# A run whose every step overflows (two steps at 2^32, hysteresis 2) keeps the initial weights:
# the same as two steps at learning rate 0 (no decay either).
run skipped 1 --fp16 --train-iters 2 --lr-warmup-iters 0
[[ $(scales "$TMP/skipped.jsonl" | awk '$2 == 1' | wc -l) == 2 ]] ||
  fail "the 2^32 run did not skip both steps: $(scales "$TMP/skipped.jsonl" | tr '\n' ' ')"
run still 1 --fp16 --initial-loss-scale 4096 --train-iters 2 --lr-warmup-iters 0 \
  --lr 0 --min-lr 0
"$PY" "$COMPARE" "$TMP" still skipped --iteration 2 --loss-rtol 1e9 --weight-rtol 0 ||
  fail "a skipped fp16 step changed the weights"

# 3. Resume keeps the scale; a constant scale stays; conflicting precisions are refused.
last=$(tail -1 "$TMP/dynamic.scales" | cut -d' ' -f1)
"$MDS" train "${TRAIN[@]}" --fp16 --loss-scale-window 3 --load "$TMP/dynamic" --train-iters 14 \
  --log-json "$TMP/resumed.jsonl" > "$TMP/resumed.log" 2>&1 ||
  fail "fp16 resume exited $?: $(tail -3 "$TMP/resumed.log")"
grep -q "continuing at iteration 12" "$TMP/resumed.log" || fail "the fp16 run did not resume"
grep -q "continuing with loss scale $(printf %.1f "$last")" "$TMP/resumed.log" ||
  fail "the resumed run did not continue at loss scale $last: $(grep 'loss scale' "$TMP/resumed.log")"

run constant 1 --fp16 --loss-scale 1024 --train-iters 4 --eval-iters 0 --lr-warmup-iters 0
[[ $(scales "$TMP/constant.jsonl" | cut -d' ' -f1 | sort -u) == 1024* ]] ||
  fail "--loss-scale 1024 changed: $(scales "$TMP/constant.jsonl" | tr '\n' ' ')"

rc=0
"$MDS" train "${TRAIN[@]}" --fp16 --bf16 > "$TMP/both.log" 2>&1 || rc=$?
((rc == 2)) && grep -q "\-\-bf16 and --fp16 exclude each other" "$TMP/both.log" &&
  [[ $(wc -l < "$TMP/both.log") == 1 ]] || fail "--fp16 --bf16: exit $rc: $(cat "$TMP/both.log")"
echo "train_fp16: PASS"
