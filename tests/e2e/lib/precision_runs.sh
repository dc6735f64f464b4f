# Sourced by the mixed-precision scripts (train_bf16.sh, train_fp16.sh), after lib/common.sh:
# Brown tokenized, the small model both train (4 layers, hidden 64, GQA 8/4, seq 64, 12
# iterations) and run NAME NP [flags...], which trains it on NP processes into $TMP/NAME
# (checkpoint), NAME.jsonl, NAME.log and NAME.err, and checks the banner's memory.
require_command mpirun
require_command timeout
source "$SRC/tests/e2e/lib/comm_bytes.sh"
preprocess_brown
export OMP_NUM_THREADS=1
MPIRUN=(timeout 300 mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
COMPARE=$SRC/tests/e2e/lib/compare_runs.py
TRAIN=(--num-layers 4 --hidden-size 64 --num-attention-heads 8 --num-key-value-heads 4
       --seq-length 64 --micro-batch-size 2 --global-batch-size 8
       "${TOK[@]}" --data-path "$TMP/brown_text_document" --data-cache-path "$TMP/cache"
       --split 969,30,1 --seed 1234 --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine
       --lr-warmup-iters 2 --weight-decay 0.1 --clip-grad 1.0 --train-iters 12 --log-interval 1
       --eval-interval 6 --eval-iters 1)

run() {  # run NAME NP [flags...]
  local name=$1 np=$2
  shift 2
  local cmd=("$MDS" train "${TRAIN[@]}" --save "$TMP/$name" --log-json "$TMP/$name.jsonl" "$@")
  ((np == 1)) || cmd=("${MPIRUN[@]}" -np "$np" "${cmd[@]}")
  "${cmd[@]}" > "$TMP/$name.log" 2> "$TMP/$name.err" ||
    fail "$name: mds train exited $?: $(tail -3 "$TMP/$name.err")"
  grep -q "allocated .* after prepare(), as its row says" "$TMP/$name.log" ||
    fail "$name: the banner's memory is not what rank 0 allocated: $(grep allocated "$TMP/$name.log")"
}
