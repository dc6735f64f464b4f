#!/usr/bin/env bash
# What a run shows, end to end through the binary:
#  - the start-up banner's memory table per pipeline stage, rank 0's buffers equal to its row
#    (one process, and T2 x P2 on 4 ranks);
#  - the log line's MFU (against --peak-tflops) and ETA fields, the same numbers in --log-json;
#  - --tensorboard-dir: the event file read back by an independent decoder
#    (tests/reference/tfevents_decode.py: its own CRC-32C, protobuf wire format by hand), every
#    tag, step and value checked against the --log-json of the same run;
#  - the end-of-run summary (printed and in the JSON log), the loss-curve PNG beside the JSON
#    log (decoded with PIL: size, not blank, the training line falling) and the terminal chart
#    (decoded from its braille: falling like the losses);
#  - bad --tensorboard-dir and --peak-tflops are one line and exit code 2.
#   bash tests/e2e/train_report.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
export OMP_NUM_THREADS=2
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)

"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" "${TOK[@]}" \
  --append-eod --workers 2 2> /dev/null
TRAIN=(--num-layers 2 --hidden-size 64 --num-attention-heads 4 --num-key-value-heads 2
       --seq-length 64 --micro-batch-size 2 --global-batch-size 4 "${TOK[@]}"
       --data-path "$TMP/brown_text_document" --split 98,1,1 --lr 3e-3 --lr-decay-style cosine
       --lr-warmup-iters 2 --seed 1234 --log-interval 1 --eval-interval 4 --eval-iters 1)

# 1. One process, every output on.
"$MDS" train "${TRAIN[@]}" --train-iters 12 --peak-tflops 0.05 --log-json "$TMP/run.jsonl" \
  --tensorboard-dir "$TMP/tb" > "$TMP/run.log"
grep -q "^> memory per rank in MiB" "$TMP/run.log" || fail "no memory table: $(head -20 "$TMP/run.log")"
grep -Eq "^>       0     0-1 " "$TMP/run.log" || fail "no stage row: $(grep '^>' "$TMP/run.log")"
grep -q "^> rank 0 allocated .* MiB after prepare(), as its row says" "$TMP/run.log" ||
  fail "rank 0's buffers differ from the table: $(grep 'rank 0 allocated' "$TMP/run.log")"
events=("$TMP"/tb/events.out.tfevents.*)
[[ ${#events[@]} == 1 && -s ${events[0]} ]] || fail "want one event file: ${events[*]}"
[[ -f $TMP/run.loss.png ]] || fail "no PNG beside --log-json: $(ls "$TMP")"
$PY "$SRC/tests/reference/tfevents_decode.py" "${events[0]}" > "$TMP/events.jsonl" ||
  fail "the independent decoder rejected the event file"
# The decoder can fail: one flipped bit anywhere breaks a CRC.
for at in 5 30 200; do
  $PY -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[$at] ^= 4
open(sys.argv[2], 'wb').write(b)" "${events[0]}" "$TMP/bad.tfevents"
  if $PY "$SRC/tests/reference/tfevents_decode.py" "$TMP/bad.tfevents" > /dev/null 2>&1; then
    fail "the decoder accepted an event file with byte $at corrupted"
  fi
done

$PY - "$TMP/run.jsonl" "$TMP/events.jsonl" "$TMP/run.log" "$TMP/run.loss.png" <<'PY'
import json, math, re, struct, sys
from PIL import Image

rows = [json.loads(l) for l in open(sys.argv[1])]
its = [r for r in rows if "iteration" in r]
valid = [r["validation"] for r in rows if "validation" in r]
test = [r["test"] for r in rows if "test" in r]
summary = [r["summary"] for r in rows if "summary" in r]
events = [json.loads(l) for l in open(sys.argv[2])]
log = open(sys.argv[3]).read()
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]

# --- The log line's MFU and ETA, and the JSON's.
lines = [l for l in log.splitlines() if l.startswith(" iteration=")]
assert len(its) == 12 and len(lines) == 12, (len(its), len(lines))
for line, r in zip(lines, its):
    m = re.search(r"\| TFLOPs=\S+ \| MFU=([0-9.]+)% \| ETA=(\d+):(\d\d):(\d\d) \|$", line)
    assert m, f"no MFU/ETA at the end of: {line}"
    mfu = r["TFLOPs"] * 1e12 / 0.05e12 * 100  # --peak-tflops 0.05
    assert math.isclose(r["MFU"], mfu, rel_tol=1e-9), (r["MFU"], mfu)
    assert m.group(1) == f"{r['MFU']:.2f}", (line, r["MFU"])
    h, mi, s = map(int, m.group(2, 3, 4))
    assert h * 3600 + mi * 60 + s == round(r["eta_seconds"]) and r["ETA"] == m.group(0).split("ETA=")[1][:-2]
assert its[-1]["eta_seconds"] == 0 and its[0]["eta_seconds"] > 0, (its[0], its[-1])

# --- TensorBoard: the first event names the format; then every scalar as the JSON says.
assert events[0].get("file_version") == "brain.Event:2", events[0]
scalars = {}
for e in events[1:]:
    key = (e["tag"], e["step"])
    assert key not in scalars or e["tag"].startswith("lm-loss-validation/"), f"duplicate {key}"
    scalars.setdefault(key, []).append(e["value"])
wall = [e["wall_time"] for e in events]
assert wall == sorted(wall) and abs(wall[0] - __import__("time").time()) < 3600, "wall times"

def expect(tag, step, value):
    got = scalars.get((tag, step))
    assert got is not None, f"missing {tag!r} at step {step}; tags: {sorted({t for t, _ in scalars})}"
    assert f32(value) in got, f"{tag!r} at {step}: {got} != {f32(value)}"

seen = set()
def three(tag, r, value, samples, tokens):
    for t, step in ((tag, r), (tag + " vs samples", samples), (tag + " vs tokens", tokens)):
        expect(t, step, value)
        seen.add(t)

for r in its:
    i, smp, tok = r["iteration"], r["consumed_samples"], r["consumed_tokens"]
    three("lm-loss-training/lm loss", i, r["lm_loss"], smp, tok)
    three("learning-rate/learning-rate", i, r["learning_rate"], smp, tok)
    three("grad-norm/grad-norm", i, r["grad_norm"], smp, tok)
    three("loss-scale/loss-scale", i, r["loss_scale"], smp, tok)
    three("iteration-time/iteration-time", i, r["elapsed_time_per_iteration_ms"] / 1e3, smp, tok)
    for t, step, v in (("steps-vs-samples/y=steps,x=samples", smp, i),
                       ("steps-vs-samples/y=samples,x=steps", i, smp),
                       ("steps-vs-tokens/y=steps,x=tokens", tok, i),
                       ("steps-vs-tokens/y=tokens,x=steps", i, tok),
                       ("throughput/samples_per_sec", i, r["samples_per_second"]),
                       ("throughput/tokens_per_sec", i, r["samples_per_second"] * 64),
                       ("throughput/tokens_per_gpu_per_sec", i, r["tokens_per_gpu_per_second_tgs"]),
                       ("throughput/tflops-lm", i, r["TFLOPs"]),
                       ("throughput/MFU", i, r["MFU"])):
        expect(t, step, v)
        seen.add(t)
assert len(valid) == 4, valid  # iterations 4, 8, 12 and the end of training
for split, evals in (("validation", valid), ("test", test)):
    assert evals, f"no {split} evaluation in the JSON log"
    for v in evals:
        smp, tok = v["consumed_samples"], v["consumed_tokens"]
        three(f"lm-loss-validation/lm loss {split}", v["iteration"], v["lm_loss"], smp, tok)
        three(f"lm-loss-validation/lm loss {split} ppl", v["iteration"], v["ppl"], smp, tok)
        assert math.isclose(v["ppl"], math.exp(min(20, v["lm_loss"]))), v
unexpected = {t for t, _ in scalars} - seen
assert not unexpected, f"tags the JSON log does not explain: {unexpected}"

# --- The summary: printed and the JSON log's last line.
assert len(summary) == 1 and "summary" in rows[-1], "the summary is not the last JSON line"
s = summary[0]
assert s["tokens"] == 12 * 4 * 64 and s["last_iteration"] == 12 and s["first_iteration"] == 0, s
assert s["final_train_loss"] == its[-1]["lm_loss"], (s, its[-1])
assert s["final_valid_loss"] == valid[-1]["lm_loss"], (s, valid[-1])
assert math.isclose(s["tokens_per_second"], s["tokens"] / s["train_seconds"]), s
assert math.isclose(s["MFU"], s["TFLOPs"] * 1e12 / 0.05e12 * 100, rel_tol=1e-9), s
assert s["wall_seconds"] >= s["train_seconds"] > 0, s
assert f"> run summary: iterations 1-12 (12), {s['tokens']} tokens" in log
assert f"final train {s['final_train_loss']:.6f}, final validation {s['final_valid_loss']:.6f}" in log

# --- The terminal chart, decoded from its braille cells: it falls as the losses do.
chart = log[log.index("  lm loss\n"):].splitlines()[1:16]
assert len(chart) == 15 and all(len(l) >= 11 for l in chart), chart
dots = set()  # (x, y) of every dot
for r, l in enumerate(chart):
    for c, ch in enumerate(l[11:]):
        b = ord(ch) - 0x2800
        if 0 <= b < 256:
            for k, (dy, dx) in enumerate(((0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (3, 0), (3, 1))):
                if b >> k & 1:
                    dots.add((2 * c + dx, 4 * r + dy))
losses = [r["lm_loss"] for r in its]
hi, lo = max(losses + [v["lm_loss"] for v in valid]), min(losses + [v["lm_loss"] for v in valid])
marks = {(r, c) for r, l in enumerate(chart) for c, ch in enumerate(l[11:]) if ch == "o"}
checked = 0
for i, loss in enumerate(losses):  # every iteration's dot, where no validation mark covers it
    x, y = round(i / 11 * 119), round((hi - loss) / (hi - lo) * 59)
    if (y // 4, x // 2) in marks:
        continue
    assert any((x, yy) in dots for yy in (y - 1, y, y + 1)), f"no dot for iteration {i + 1}"
    checked += 1
assert checked >= 8, checked
quarter = lambda a, b: [y for x, y in dots if a <= x < b]
assert sum(quarter(0, 30)) / len(quarter(0, 30)) < sum(quarter(90, 120)) / len(quarter(90, 120)), \
    "the chart does not fall"
assert len(marks) >= 3, f"validation marks: {marks}"

# --- The PNG: decodes, its size, not blank, the training line (blue) falls left to right.
im = Image.open(sys.argv[4])
assert im.format == "PNG" and im.size == (960, 540), (im.format, im.size)
px = im.convert("RGB").load()
blue = [(x, y) for x in range(100, 760) for y in range(540)
        if abs(px[x, y][0] - 31) < 12 and abs(px[x, y][1] - 120) < 14 and abs(px[x, y][2] - 181) < 14]
nonwhite = sum(1 for x in range(0, 960, 3) for y in range(0, 540, 3) if px[x, y] != (255, 255, 255))
assert nonwhite > 960 * 540 / 9 / 100, "the PNG is blank"
assert len(blue) > 300, f"no training line ({len(blue)} blue pixels)"
left = [y for x, y in blue if x < 300]
right = [y for x, y in blue if x > 560]
assert left and right and sum(left) / len(left) < sum(right) / len(right), "the line does not fall"
print(f"MFU/ETA, {len(events) - 1} TensorBoard scalars, summary, chart and PNG agree with the JSON log")
PY

# 2. --plot names the PNG; without --log-json nothing else is written.
"$MDS" train "${TRAIN[@]}" --train-iters 3 --eval-iters 0 --plot "$TMP/plots/curve.png" > "$TMP/p.log"
[[ -s $TMP/plots/curve.png ]] || fail "--plot wrote nothing: $(tail -3 "$TMP/p.log")"
grep -q "^> loss curve: $TMP/plots/curve.png" "$TMP/p.log" || fail "the PNG's path is not printed"

# 3. T2 x P2 on 4 ranks: a row per stage, rank 0 (stage 0) as its row; one event file.
"${MPIRUN[@]}" -np 4 "$MDS" train "${TRAIN[@]}" --train-iters 3 --eval-iters 0 \
  --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --tensorboard-dir "$TMP/tb4" \
  > "$TMP/four.log" || fail "T2 x P2 failed: $(tail -3 "$TMP/four.log")"
grep -Eq "^>       0       0 " "$TMP/four.log" && grep -Eq "^>       1       1 " "$TMP/four.log" ||
  fail "want a row per stage: $(grep '^>' "$TMP/four.log")"
grep -q "after prepare(), as its row says" "$TMP/four.log" || fail "rank 0 differs from its row"
[[ $(ls "$TMP"/tb4/events.out.tfevents.* | wc -l) == 1 ]] || fail "want one event file from rank 0: $(ls "$TMP/tb4")"

# 4. Bad input: one line, exit 2.
expect_error() {  # expected-substring, then the mds arguments
  local want=$1; shift
  set +e; "$MDS" "$@" > /dev/null 2> "$TMP/err"; local rc=$?; set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for: $* :: $(cat "$TMP/err")"
  [[ $(wc -l < "$TMP/err") == 1 ]] || fail "not one line for: $* :: $(cat "$TMP/err")"
  grep -q -- "$want" "$TMP/err" || fail "error lacks '$want': $(cat "$TMP/err")"
}
expect_error "--tensorboard-dir" train "${TRAIN[@]}" --train-iters 4 --tensorboard-dir /proc/mds-no
expect_error "--peak-tflops" train "${TRAIN[@]}" --train-iters 4 --peak-tflops -3
expect_error "--plot" train "${TRAIN[@]}" --train-iters 4 --plot /proc/mds-no/loss.png
echo "PASS"
