#!/usr/bin/env bash
# Every parallel layout trains the same model as one process: tensor (T), Ulysses sequence (S),
# 1F1B pipeline (P) and data (D) parallelism, alone and combined, on up to 8 ranks
# (mpirun -np T*S*P*D, --tensor-model-parallel-size T --ds-sequence-parallel-size S
# --pipeline-model-parallel-size P). Each layout logs the same loss at every iteration as the
# one-process baseline (relative 1e-5), the same validation losses, and saves the same full
# logical weights (relative 1e-4 in each tensor's L2 norm; see lib/compare_runs.py). The tiny
# Llama has GQA (8 heads, 4 kv heads) and 4 layers, so that T4, T2xS2 and P4 all divide it.
# Every group's bytes per training iteration equal the count rank 0 derives from the model
# (parallel_context.cpp), and a one-process checkpoint resumes as T2xS2xP2 exactly as on one
# process. Layouts that cannot work are rejected, naming the flag: exit 2, one error line from rank 0,
# no hang. Prints a parity table, one layout's communication summary and the total time.
#   bash tests/e2e/parallel_4d.sh MDS_BINARY SOURCE_DIR
# MDS_PARITY_ONLY="T2 P2 rejections" runs only those layouts (and the rejection checks), for
# working on one dimension; CI runs everything, and again T2, S2, P2 and D2 with MDS_DEVICE=cuda
# on the CPU emulator's GPUs (tests/cuda_emu/train_parallel.sh).
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
require_command timeout
suite_start=$EPOCHREALTIME
preprocess_brown
export OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
COMPARE=$SRC/tests/e2e/lib/compare_runs.py
source "$SRC/tests/e2e/lib/comm_bytes.sh"

TRAIN=(--num-layers 4 --hidden-size 64 --num-attention-heads 8 --num-key-value-heads 4
       --seq-length 32 --micro-batch-size 2 --global-batch-size 8
       "${TOK[@]}" --data-path "$TMP/brown_text_document"
       --data-cache-path "$TMP/cache" --split 969,30,1 --seed 1234
       --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine --lr-warmup-iters 2 --weight-decay 0.1
       --clip-grad 1.0 --train-iters 12 --log-interval 1 --eval-interval 6 --eval-iters 1)

# Single dimensions first, then pairs, then the 8-rank combinations.
LAYOUTS=(T2 S2 P2 D2 T2xS2 T2xP2 P2xD2 S2xD2 P4 T4 T2xS2xP2 T2xP2xD2 S2xP2xD2)
COMM_LAYOUT=T2xS2xP2  # the one whose communication summary is printed
if [[ -n ${MDS_PARITY_ONLY:-} ]]; then
  read -ra only <<< "$MDS_PARITY_ONLY"
  for name in "${only[@]}"; do
    [[ $name == rejections || " ${LAYOUTS[*]} " == *" $name "* ]] ||
      fail "MDS_PARITY_ONLY: unknown '$name' (layouts: ${LAYOUTS[*]}; or 'rejections')"
  done
  LAYOUTS=()
  for name in "${only[@]}"; do [[ $name == rejections ]] || LAYOUTS+=("$name"); done
  [[ " ${LAYOUTS[*]} " == *" $COMM_LAYOUT "* || ${#LAYOUTS[@]} == 0 ]] || COMM_LAYOUT=${LAYOUTS[-1]}
fi
wants_rejections() { [[ -z ${MDS_PARITY_ONLY:-} || " $MDS_PARITY_ONLY " == *" rejections "* ]]; }

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

ROWS=()
row() { ROWS+=("$(printf '%-10s %5s %12s %12s %12s %8s  %s' "$@")"); }
row layout ranks "loss diff" "valid diff" "weight diff" seconds ""

start=$EPOCHREALTIME
"$MDS" train "${TRAIN[@]}" --save "$TMP/one" --log-json "$TMP/one.jsonl" > "$TMP/one.log" ||
  fail "the one-process baseline failed (exit $?): $(tail "$TMP/one.log")"
row "1 process" 1 - - - "$(seconds_since "$start")" baseline
if [[ ${MDS_DEVICE:-cpu} == cuda ]]; then  # tests/cuda_emu/train_parallel.sh: on (emulated) GPUs
  grep -q "^> parameters: .* on CPU" "$TMP/one.log" && fail "MDS_DEVICE=cuda trained on the CPU"
fi

# Which of the groups ("NAME SIZE [DIM]": tp 2, sdp 4 2) rank 0's communication summary in LOG
# shows without traffic, among those whose dimension (DIM, default SIZE) is above 1. Parity
# alone cannot tell a layout in use from one ignored (every rank training the whole model); its
# groups' traffic can. Byte counts are not checked here.
idle_groups() {
  local log=$1 g size dim idle=""
  shift
  for g in "$@"; do
    read -r g size dim <<< "$g"
    ((${dim:-$size} > 1)) || continue
    grep -Eq "^> $g group \($size ranks\): [1-9][0-9]* bytes per iteration" "$log" || idle+=" $g"
  done
  echo "$idle"
}

# Runs one layout (T2xP2xD2: T=2, P=2, D=2, S=1) and compares it with the baseline. A failure
# is reported and recorded, and the next layout runs: the table shows every layout's state.
failed=()
run_layout() {
  local name=$1 t=1 s=1 p=1 d=1 dim
  for dim in ${name//x/ }; do
    case $dim in
      T*) t=${dim#T} ;; S*) s=${dim#S} ;; P*) p=${dim#P} ;; D*) d=${dim#D} ;;
      *) fail "layout $name: unknown dimension $dim" ;;
    esac
  done
  local np=$((t * s * p * d)) start=$EPOCHREALTIME rc=0
  timeout 300 "${MPIRUN[@]}" -np "$np" "$MDS" train "${TRAIN[@]}" \
    --tensor-model-parallel-size "$t" --pipeline-model-parallel-size "$p" \
    --ds-sequence-parallel-size "$s" --save "$TMP/$name" --log-json "$TMP/$name.jsonl" \
    > "$TMP/$name.log" 2> "$TMP/$name.err" || rc=$?
  local took why="" line idle
  took=$(seconds_since "$start")
  if ((rc == 124)); then
    why="timed out after 300 s (a hang?): $(tail -3 "$TMP/$name.log")"
  elif ((rc != 0)); then
    why="mds train exited $rc: $(grep -m1 "mds train" "$TMP/$name.err" ||
      tail -3 "$TMP/$name.err")"
  elif ! grep -q "x $d data-parallel = global 8" "$TMP/$name.log"; then
    why="not D=$d: $(grep -m1 '^> batch' "$TMP/$name.log")"
  elif [[ $(grep -c " iteration=" "$TMP/$name.log") != 12 ]]; then
    why="want 12 iteration lines, from one rank: got $(grep -c " iteration=" "$TMP/$name.log")"
  elif ! line=$("$PY" "$COMPARE" "$TMP" one "$name" 2> "$TMP/$name.cmp"); then
    why=$(cat "$TMP/$name.cmp")
  elif idle=$(idle_groups "$TMP/$name.log" "tp $t" "sp $s" "pp $p" "sdp $((s * d)) $d")
       [[ -n $idle ]]; then
    why="rank 0's$idle group moved no bytes: is the layout in use? $(
      grep '^> .* group' "$TMP/$name.log" | paste -sd ';')"
  elif ! why=$(bytes_differ "$TMP/$name.log"); then
    :
  fi
  local loss=- valid=- weights=-
  if [[ -n $line ]]; then
    echo "$line"
    read -r loss valid weights <<< "$(sed -E \
      's/.*loss difference ([^,]*), validation ([^,]*), weights (.*)$/\1 \2 \3/' <<< "$line")"
  fi
  if [[ -n $why ]]; then
    echo "FAIL: $name (-np $np): $why" >&2
    failed+=("$name")
  fi
  row "$name" "$np" "$loss" "$valid" "$weights" "$took" "$([[ -z $why ]] && echo ok || echo FAIL)"
}
for name in "${LAYOUTS[@]}"; do run_layout "$name"; done

# A layout that cannot work: exit 2 (124 would be a hang), one error line, from rank 0 (mpirun
# --tag-output marks each line with its rank), naming the flag.
#   expect_rejected NP FRAGMENT TRAIN_FLAGS...
expect_rejected() {
  local np=$1 fragment=$2 rc=0 why=""
  shift 2
  timeout 120 "${MPIRUN[@]}" --tag-output -np "$np" "$MDS" train "${TRAIN[@]}" "$@" \
    > /dev/null 2> "$TMP/err" || rc=$?
  if ((rc != 2)); then
    why="exit $rc (want 2; 124: hung)"
  elif [[ $(grep -c "mds train:" "$TMP/err") != 1 ]]; then
    why="want one error line"
  elif ! grep -E '^\[[0-9]+,0\]<stderr>: ?mds train: error: ' "$TMP/err" |
       grep -qF -- "$fragment"; then
    why="want 'mds train: error: ...$fragment...' from rank 0"
  fi
  if [[ -n $why ]]; then
    echo "FAIL: -np $np $*: $why: $(cat "$TMP/err")" >&2
    failed+=("rejection of -np $np $*")
  else
    echo "rejected: -np $np $*"
  fi
  rejections=$((rejections + 1))
}
rejections=0
if wants_rejections; then
  expect_rejected 3 \
    "the world size (3 processes) must be divisible by --tensor-model-parallel-size (2)" \
    --tensor-model-parallel-size 2
  # Heads not divisible by T implies kv heads not divisible either (kv divides heads): the heads
  # check comes first.
  expect_rejected 4 \
    "--num-attention-heads (6) must be divisible by --tensor-model-parallel-size (4)" \
    --hidden-size 48 --num-attention-heads 6 --num-key-value-heads 2 --tensor-model-parallel-size 4
  expect_rejected 2 \
    "--num-key-value-heads (1) must be divisible by --tensor-model-parallel-size (2)" \
    --num-attention-heads 4 --num-key-value-heads 1 --tensor-model-parallel-size 2
  # 6 heads, 2 kv heads: both divide by T = 2, but the 3 heads per TP rank do not split over S = 2.
  expect_rejected 4 "--num-attention-heads / --tensor-model-parallel-size (6 / 2) must be \
divisible by --ds-sequence-parallel-size (2)" \
    --hidden-size 48 --num-attention-heads 6 --num-key-value-heads 2 \
    --tensor-model-parallel-size 2 --ds-sequence-parallel-size 2
  expect_rejected 2 "--seq-length (33) must be divisible by --ds-sequence-parallel-size (2)" \
    --seq-length 33 --ds-sequence-parallel-size 2
  expect_rejected 2 "--num-layers (1) must be at least --pipeline-model-parallel-size (2)" \
    --num-layers 1 --pipeline-model-parallel-size 2
fi

# A checkpoint holds logical tensors, so it loads under any layout: the one-process checkpoint
# of iteration 12, resumed for 2 more iterations as T2xS2xP2 and as one process (both with
# fresh optimizer moments), gives the same losses and weights.
if [[ -z ${MDS_PARITY_ONLY:-} ]]; then
  RESUME=(--load "$TMP/one" --train-iters 14)
  "$MDS" train "${TRAIN[@]}" "${RESUME[@]}" --save "$TMP/resume1" \
    --log-json "$TMP/resume1.jsonl" > "$TMP/resume1.log" || fail "resume on one process failed"
  timeout 300 "${MPIRUN[@]}" -np 8 "$MDS" train "${TRAIN[@]}" "${RESUME[@]}" \
    --tensor-model-parallel-size 2 --ds-sequence-parallel-size 2 \
    --pipeline-model-parallel-size 2 --save "$TMP/resume8" --log-json "$TMP/resume8.jsonl" \
    > "$TMP/resume8.log" 2> "$TMP/resume8.err" || fail "resume as T2xS2xP2 failed: $(tail -3 "$TMP/resume8.err")"
  grep -q "continuing at iteration 12" "$TMP/resume8.log" || fail "did not resume: $(head "$TMP/resume8.log")"
  "$PY" "$COMPARE" "$TMP" resume1 resume8 --iteration 14 ||
    fail "the one-process checkpoint resumed as T2xS2xP2 differs from resuming it on one process"
  groups=$(grep -cE '^> (tp|sp|pp|sdp) group ' "$TMP/resume8.log" || true)
  [[ $groups == 4 ]] || fail "want tp, sp, pp and sdp summaries: $(grep '^> .* group' "$TMP/resume8.log")"
  bytes_differ "$TMP/resume8.log" > /dev/null || fail "$(bytes_differ "$TMP/resume8.log")"
  echo "resumed the one-process checkpoint as T2xS2xP2: same losses and weights"
fi

echo
echo "Parity with one process (relative differences: loss and validation loss, the worst"
echo "iteration; weights, the worst tensor's L2 norm):"
printf '%s\n' "${ROWS[@]}" | sed 's/ *$//'
if [[ -e $TMP/$COMM_LAYOUT.log ]]; then
  echo
  echo "Communication, $COMM_LAYOUT (rank 0's groups; bytes and calls per training iteration):"
  grep -E '^> (tp|sp|pp|dp|sdp) group ' "$TMP/$COMM_LAYOUT.log" ||
    echo "(no communication summary)"
fi
echo
echo "parallel_4d: ${#LAYOUTS[@]} layouts and $rejections rejections," \
  "$(seconds_since "$suite_start") s in all"
((${#failed[@]} == 0)) || fail "$(printf '%s, ' "${failed[@]}" | sed 's/, $//') (details above)"
echo "PASS"
