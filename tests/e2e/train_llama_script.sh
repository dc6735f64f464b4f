#!/usr/bin/env bash
# train_llama.sh, Megatron-DeepSpeed's env-var front door, end to end:
#  - DRY_RUN=1 resolves each variable to the right mds train / mds launch flag: the MODEL_ARCH
#    presets, variables over a preset, derived WORLD_SIZE, GLOBAL_BATCH and TRAIN_ITERS (from
#    TRAIN_TOKENS), tokenizer and data choices, extra arguments passed last; each setting's source
#    is printed; features mds lacks (ZeRO, bf16 on the CPU, activation checkpointing...) are
#    reported, never dropped silently;
#  - a bad value is one line on stderr, exit code 2, nothing printed or started;
#  - a real run: TP=2 MODEL_ARCH=tiny on 2 ranks through mds launch, from a data-file list,
#    and a second run that resumes from the first's checkpoint (LOAD defaults to CKPT_DIR).
#   bash tests/e2e/train_llama_script.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
SCRIPT=$SRC/train_llama.sh
[[ -f $SCRIPT ]] || fail "$SCRIPT is missing"
HELP=$("$MDS" train --help)
has_train_flag() { grep -Eq -- "(^|[ ,])$1([ ,=]|$)" <<< "$HELP"; }
HAVE_LAUNCH=0
"$MDS" launch --help > /dev/null 2>&1 && HAVE_LAUNCH=1

# A corpus for the script to point at: dry runs only need the files to exist.
"$MDS" preprocess --input "$DATA/brown.jsonl" --output-prefix "$TMP/brown" "${TOK[@]}" \
  --append-eod --workers 2 2> /dev/null
PREFIX=$TMP/brown_text_document
printf '# weight prefix corpus\n1.0 %s brown\n' "$PREFIX" > "$TMP/books.txt"
cd "$TMP"  # the default CKPT_DIR (checkpoints/...) is relative to where the script runs

# tl VAR=VALUE... [-- EXTRA ARGS...]: run the script in a clean environment (PATH, HOME, MDS
# and the given variables only: no scheduler variables leak in from the machine running this).
tl() {
  local vars=()
  while (($#)) && [[ $1 != -- ]]; do vars+=("$1"); shift; done
  (($#)) && shift
  env -i PATH="$PATH" HOME="$HOME" MDS="$MDS" "${vars[@]}" bash "$SCRIPT" "$@"
}
# dry VAR=VALUE... [-- EXTRA...]: a dry run that must succeed; stdout in $TMP/out, stderr in
# $TMP/err, and the printed command's words in ARGV (read back as the shell would).
dry() {
  tl DRY_RUN=1 "$@" > "$TMP/out" 2> "$TMP/err" || fail "dry run failed ($*): $(cat "$TMP/err")"
  mapfile -t ARGV < <($PY - "$TMP/out" <<'PY'
import shlex, sys
text = open(sys.argv[1]).read()
assert "train_llama.sh: command:\n" in text, text
lines, words = text.split("train_llama.sh: command:\n", 1)[1].splitlines(), []
for line in lines:
    words.append(line.rstrip("\\").strip())
    if not line.endswith("\\"):
        break
print("\n".join(shlex.split(" ".join(words))))
PY
  )
  [[ ${ARGV[1]} == launch ]] || fail "the command is not 'mds launch': ${ARGV[*]}"
}
# The value after the LAST occurrence of a flag in the train part of ARGV (the one mds uses).
train_value() {
  local i v='' seen=0
  for ((i = TRAIN_AT; i < ${#ARGV[@]}; i++)); do
    [[ ${ARGV[i]} == "$1" ]] && { v=${ARGV[i + 1]:-}; seen=1; }
  done
  ((seen)) || fail "no $1 in: ${ARGV[*]}"
  echo "$v"
}
launch_value() {
  local i
  train_at
  for ((i = 2; i < TRAIN_AT; i++)); do
    [[ ${ARGV[i]} == "$1" ]] && { echo "${ARGV[i + 1]}"; return; }
  done
  fail "no launch flag $1 in: ${ARGV[*]}"
}
train_at() { local i; for ((i = 2; i < ${#ARGV[@]}; i++)); do [[ ${ARGV[i]} == train ]] && { TRAIN_AT=$i; return; }; done; fail "no 'train' in: ${ARGV[*]}"; }
# expect FLAG VALUE...: each flag has that value in the train command.
expect() {
  train_at
  while (($#)); do
    local got
    got=$(train_value "$1")
    [[ $got == "$2" ]] || fail "$1 is '$got', want '$2' (command: ${ARGV[*]})"
    shift 2
  done
}
absent() { local a; for a in "${ARGV[@]}"; do [[ $a != "$1" ]] || fail "unexpected $1 in: ${ARGV[*]}"; done; }
# setting NAME VALUE SOURCE-PREFIX: the settings block shows NAME = VALUE (SOURCE...).
setting() {
  grep -Eq "^  $1 +=  ?$(sed 's/[.[\*^$()+?{|]/\\&/g' <<< "$2") +\($3" "$TMP/out" ||
    fail "settings lack '$1 = $2 ($3...)': $(grep -E "^  $1 " "$TMP/out")"
}
reported() { grep -qF -- "$1" "$TMP/err" || fail "not reported: '$1'; stderr: $(cat "$TMP/err")"; }

D=(DATA_PATH="$PREFIX")

# 1. Megatron-DeepSpeed's defaults: the 7B preset, one process, TRAIN_TOKENS=4673780159710.
dry "${D[@]}"
expect --num-layers 32 --hidden-size 4096 --ffn-hidden-size 11008 --num-attention-heads 32 \
  --num-key-value-heads 8 --seq-length 4096 --max-position-embeddings 65536 \
  --rotary-position-embeddings-theta 50000 --init-method-std 0.00988212 \
  --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1 --ds-sequence-parallel-size 1 \
  --micro-batch-size 1 --global-batch-size 1 --train-iters $((4673780159710 / 4096)) \
  --optimizer adamw --lr 0.0002 --lr-decay-style cosine --lr-warmup-fraction 0.05 \
  --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 --adam-eps 0.00001 --clip-grad 1.0 \
  --data-path "$PREFIX" --split 990,10,0 --tokenizer-type GPT2BPETokenizer \
  --vocab-file "$SRC/data/gpt2-vocab.json" --merge-file "$SRC/data/gpt2-merges.txt" \
  --save-interval 50 --eval-interval 100 --eval-iters 20 --log-interval 1
ckpt=checkpoints/ws1_ds_stage0_nl32_hs4096_mb1_seq4096_gb1_sp1_pp1_tp1_fp32_optadamw_lr0.0002_lwf0.05_tokGPT2BPE
expect --save "$ckpt" --data-cache-path "$ckpt/.cache/brown_text_document/index-cache"
[[ $(launch_value --np) == 1 && $(launch_value --ranks-per-host) == 1 ]] || fail "launch flags: ${ARGV[*]}"
absent --load  # no checkpoint in CKPT_DIR yet
absent --bf16
# Nothing is reported but, on a small host, that 7B does not fit its memory.
! grep "^train_llama.sh: note:" "$TMP/err" | grep -qv "MODEL_ARCH=7B needs about" ||
  fail "defaults reported: $(cat "$TMP/err")"
setting MODEL_ARCH 7B default
setting NLAYERS 32 "preset 7B"
setting TRAIN_TOKENS 4673780159710 default
setting TRAIN_ITERS $((4673780159710 / 4096)) "derived: TRAIN_TOKENS / SEQ / GLOBAL_BATCH"
setting GLOBAL_BATCH 1 "derived: WORLD_SIZE x MICRO_BATCH"
setting LR 0.0002 default
setting DATA_PATH "$PREFIX" env
if ((HAVE_LAUNCH)); then
  grep -q "^train_llama.sh: mds launch --dry-run:" "$TMP/out" || fail "no launcher line: $(cat "$TMP/out")"
  # Its line runs this mds train with the same arguments.
  sed -n '/^train_llama.sh: mds launch --dry-run:/,$p' "$TMP/out" | tail -n +2 |
    grep -qF -- "mds train --num-layers 32 --hidden-size 4096" ||
    fail "mds launch --dry-run's line lacks the train command: $(cat "$TMP/out")"
else
  grep -q "no 'launch' command yet" "$TMP/out" || fail "missing launch not said"
fi

# 2. Every preset (the numbers of ALCF/helpers.sh; tiny is mds's), names in any case.
check_preset() {  # arch heads layers hidden kv ffn seq
  dry "${D[@]}" MODEL_ARCH="$1" TRAIN_ITERS=1
  expect --num-attention-heads "$2" --num-layers "$3" --hidden-size "$4" \
    --num-key-value-heads "$5" --ffn-hidden-size "$6" --seq-length "$7" \
    --max-position-embeddings $((16 * $7))
  setting HEADS "$2" "preset $1"
}
check_preset 7B 32 32 4096 8 11008 4096
check_preset 2B 16 12 2048 4 11008 8192
check_preset llama3-3B 24 28 3072 8 8192 8192
check_preset smollm3-3B 16 24 2048 4 11008 8192
check_preset phi4-mini 32 24 3072 8 8192 8192
check_preset 70B 64 80 8192 8 28672 8192
check_preset 70b 64 80 8192 8 28672 8192
check_preset tiny 8 4 256 4 640 256

# 3. Variables over a preset (every preset honours them), and helpers.sh's aliases.
dry "${D[@]}" MODEL_ARCH=70B NLAYERS=2 FFN_HIDDEN_SIZE=1024 SEQ=128 ROPE_THETA=10000 TRAIN_ITERS=3
expect --num-layers 2 --hidden-size 8192 --ffn-hidden-size 1024 --seq-length 128 \
  --max-position-embeddings 2048 --rotary-position-embeddings-theta 10000 --train-iters 3
setting NLAYERS 2 env
setting HIDDEN 8192 "preset 70B"
dry "${D[@]}" NUM_LAYERS=6 NHEADS=16 HIDDEN=1024 NUM_KV_HEAD=4 TRAIN_ITER=5 OPTIMIZER=adamw
expect --num-layers 6 --num-attention-heads 16 --hidden-size 1024 --num-key-value-heads 4 \
  --train-iters 5 --init-method-std 0.0197642
setting NLAYERS 6 "env NUM_LAYERS"
# Optimizer, schedule and output variables.
dry "${D[@]}" TRAIN_ITERS=9 LR=3e-4 LR_DECAY_STYLE=linear LR_WARMUP_FRAC=0.1 LR_DECAY_ITERS=8 \
  WEIGHT_DECAY=0.05 ADAM_BETA1=0.8 ADAM_BETA2=0.99 ADAM_EPS=1e-8 CLIP_GRAD=0.5 \
  SAVE_INTERVAL=4 EVAL_INTERVAL=3 EVAL_ITERS=2 LOG_INTERVAL=5 TRAIN_SPLIT=98 VAL_SPLIT=1 \
  TEST_SPLIT=1 SAVE="$TMP/s" CKPT_DIR="$TMP/c"
expect --lr 3e-4 --lr-decay-style linear --lr-warmup-fraction 0.1 --lr-decay-iters 8 \
  --weight-decay 0.05 --adam-beta1 0.8 --adam-beta2 0.99 --adam-eps 1e-8 --clip-grad 0.5 \
  --save-interval 4 --eval-interval 3 --eval-iters 2 --log-interval 5 --split 98,1,1 \
  --save "$TMP/s" --data-cache-path "$TMP/c/.cache/brown_text_document/index-cache"

# 4. World size and the derived GLOBAL_BATCH = WORLD x MICRO_BATCH x GRAD_ACC_STEPS / (TP PP SP).
dry "${D[@]}" TRAIN_ITERS=1 WORLD_SIZE=8 TP=2 MICRO_BATCH=2 GRAD_ACC_STEPS=3
expect --global-batch-size 24 --micro-batch-size 2 --tensor-model-parallel-size 2
[[ $(launch_value --np) == 8 ]] || fail "--np: ${ARGV[*]}"
setting DATA_PARALLEL 4 derived
dry "${D[@]}" TRAIN_ITERS=1 NGPUS=8 TP=2 PP=2 SP=2 MICRO_BATCH=4
expect --global-batch-size 4 --pipeline-model-parallel-size 2 --ds-sequence-parallel-size 2
setting WORLD_SIZE 8 "env NGPUS"
# GLOBAL_BATCH given: the accumulation steps follow from it.
dry "${D[@]}" TRAIN_ITERS=1 WORLD_SIZE=4 MICRO_BATCH=2 GLOBAL_BATCH=16
expect --global-batch-size 16
setting GRAD_ACC_STEPS 2 "derived: GLOBAL_BATCH"
# On the CPU: one rank per host, or as many as TP x PP x SP need; hosts from the job's list.
printf 'node1 slots=2\nnode2:2\n# a comment\nnode1:1\nnode2  # again\n' > "$TMP/hosts"
dry "${D[@]}" TRAIN_ITERS=1 HOSTFILE="$TMP/hosts" TP=4
[[ $(launch_value --np) == 4 && $(launch_value --ranks-per-host) == 2 &&
   $(launch_value --hostfile) == "$TMP/hosts" ]] || fail "hostfile launch flags: ${ARGV[*]}"
setting NHOSTS 2 "derived: hosts in HOSTFILE"
printf 'a\na\nb\nb\nc\nc\n' > "$TMP/pbs_nodefile"
dry "${D[@]}" TRAIN_ITERS=1 PBS_NODEFILE="$TMP/pbs_nodefile" MICRO_BATCH=2
[[ $(launch_value --np) == 3 && $(launch_value --ranks-per-host) == 1 ]] || fail "PBS: ${ARGV[*]}"
expect --global-batch-size 6
dry "${D[@]}" TRAIN_ITERS=1 SLURM_NNODES=4 SLURM_JOB_NODELIST="nid[001-003,007]" TP=2 RANKS_PER_HOST=2
[[ $(launch_value --np) == 8 && $(launch_value --ranks-per-host) == 2 ]] || fail "Slurm: ${ARGV[*]}"
expect --global-batch-size 4

# 5. TRAIN_TOKENS -> iterations = tokens / SEQ / GLOBAL_BATCH (integer); it wins over TRAIN_ITERS.
dry "${D[@]}" TRAIN_TOKENS=1000000 SEQ=256 WORLD_SIZE=4 MICRO_BATCH=2
expect --train-iters 488 --global-batch-size 8
setting TRAIN_ITERS 488 "derived: TRAIN_TOKENS"
dry "${D[@]}" TRAIN_TOKENS=1000000 TRAIN_ITERS=7 SEQ=256
expect --train-iters 3906
reported "TRAIN_ITERS=7 is ignored"
dry "${D[@]}" TRAIN_ITERS=7
expect --train-iters 7

# 6. Extra arguments go last, so they override (mds train keeps a flag's last value).
dry "${D[@]}" TRAIN_ITERS=2 -- --lr 1e-3 --seed 7 --log-json "$TMP/x y.jsonl"
expect --lr 1e-3 --seed 7 --log-json "$TMP/x y.jsonl"
n=${#ARGV[@]}
[[ "${ARGV[*]:n-6}" == "--lr 1e-3 --seed 7 --log-json $TMP/x y.jsonl" ]] ||
  fail "extra arguments are not last: ${ARGV[*]}"
grep -q "extra arguments, last so they override: --lr 1e-3" "$TMP/out" || fail "extra args not shown"

# 7. Features mds has not built are accepted and reported, one line each; the run goes on.
dry "${D[@]}" TRAIN_ITERS=1 ZERO_STAGE=2 DTYPE=bf16 USE_ACTIVATION_CHECKPOINTING=1 \
  NO_FLASH_ATTN=1 CPU_OPTIMIZER=1 TIMING_LOG_LEVEL=2 LAUNCH_WITH=deepspeed
if has_train_flag --zero-stage; then expect --zero-stage 2; else
  reported "ZERO_STAGE=2: ZeRO is not built yet; running ZeRO-0"
  setting ZERO_STAGE 0 "env: 2 asked"
fi
train_value --bf16 > /dev/null  # DTYPE=bf16 is passed on (a flag)
if has_train_flag --checkpoint-activations; then
  expect --checkpoint-num-layers 1
  train_value --deepspeed-activation-checkpointing > /dev/null  # present (a flag)
else
  reported "USE_ACTIVATION_CHECKPOINTING=1: activation checkpointing is not built yet"
fi
expect --attention-backend unfused  # NO_FLASH_ATTN=1: Megatron's unfused attention
reported "CPU_OPTIMIZER=1:"
expect --timing-log-level 2
reported "LAUNCH_WITH=deepspeed:"
dry "${D[@]}" TRAIN_ITERS=1 DTYPE=fp16  # DeepSpeed's fp16 config, as Megatron's flags
expect --initial-loss-scale 65536 --loss-scale-window 1000 --hysteresis 2 --min-loss-scale 1
train_value --fp16 > /dev/null
absent --bf16
# A model too large for this host's memory is said to be (70B in fp32 with Adam: ~1 TiB).
dry "${D[@]}" TRAIN_ITERS=1 MODEL_ARCH=70B
reported "MODEL_ARCH=70B needs about"

# 8. Tokenizers and data.
dry "${D[@]}" TRAIN_ITERS=1 TOKENIZER_MODEL="$DATA/hf-llama2"
expect --tokenizer-type HFTokenizer --tokenizer-model "$DATA/hf-llama2"
absent --vocab-file
dry "${D[@]}" TRAIN_ITERS=1 TOKENIZER_MODEL="$DATA/brown-sp.model"
expect --tokenizer-type Llama2Tokenizer --tokenizer-model "$DATA/brown-sp.model"
setting TOKENIZER_TYPE Llama2Tokenizer "derived: TOKENIZER_MODEL is a .model file"
dry "${D[@]}" TRAIN_ITERS=1 TOKENIZER_TYPE=SentencePieceTokenizer TOKENIZER_MODEL="$DATA/brown-sp.model"
expect --tokenizer-type SentencePieceTokenizer
dry "${D[@]}" TRAIN_ITERS=1 TOKENIZER_TYPE=gpt2 VOCAB_FILE=/v.json MERGE_FILE=/m.txt
expect --tokenizer-type GPT2BPETokenizer --vocab-file /v.json --merge-file /m.txt
dry "${D[@]}" TRAIN_ITERS=1 DATA_PARENT=/dp
expect --vocab-file /dp/gpt2-vocab.json --merge-file /dp/gpt2-merges.txt
dry "${D[@]}" TRAIN_ITERS=1 TOKENIZER_TYPE=NullTokenizer VOCAB_SIZE=1000
expect --tokenizer-type NullTokenizer --vocab-size 1000
dry TRAIN_ITERS=1 DATA_FILE_LIST="$TMP/books.txt" CKPT_DIR=c
expect --data-file-list "$TMP/books.txt" --data-cache-path c/.cache/books/index-cache
absent --data-path
dry TRAIN_ITERS=1 DATA_PATH="0.3 $PREFIX 0.7 $PREFIX"
train_at
[[ "${ARGV[*]}" == *"--data-path 0.3 $PREFIX 0.7 $PREFIX --data-cache-path"* ]] || fail "blend: ${ARGV[*]}"
# No data named: scripts/quickstart.sh's corpus in DATA_PARENT, when it is there.
dry TRAIN_ITERS=1 DATA_PARENT="$TMP"
expect --data-path "$TMP/brown_text_document"
setting DATA_PATH "$TMP/brown_text_document" "default"

# 9. LOAD defaults to CKPT_DIR, passed once it holds a checkpoint; a LOAD given is always passed.
dry "${D[@]}" TRAIN_ITERS=1 CKPT_DIR="$TMP/ck0"
absent --load
mkdir -p "$TMP/ck0" && echo 3 > "$TMP/ck0/latest_checkpointed_iteration.txt"
dry "${D[@]}" TRAIN_ITERS=1 CKPT_DIR="$TMP/ck0"
expect --load "$TMP/ck0" --save "$TMP/ck0"
dry "${D[@]}" TRAIN_ITERS=1 LOAD="$TMP/elsewhere"
expect --load "$TMP/elsewhere"

# 10. Bad input: one line on stderr naming the variable, exit 2, nothing on stdout.
bad() {  # expected-substring VAR=VALUE...
  local want=$1
  shift
  set +e
  tl DRY_RUN=1 "$@" > "$TMP/bout" 2> "$TMP/berr"
  local rc=$?
  set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for: $* :: $(cat "$TMP/berr")"
  [[ $(wc -l < "$TMP/berr") == 1 ]] || fail "not one line for: $* :: $(cat "$TMP/berr")"
  [[ ! -s $TMP/bout ]] || fail "printed settings before failing: $*"
  grep -qF -- "$want" "$TMP/berr" || fail "error lacks '$want': $(cat "$TMP/berr")"
}
bad "NLAYERS=ten: must be a positive integer" "${D[@]}" NLAYERS=ten
bad "NLAYERS=0: must be a positive integer" "${D[@]}" NLAYERS=0
bad "HIDDEN=4096.5" "${D[@]}" HIDDEN=4096.5
bad "MICRO_BATCH=-1" "${D[@]}" MICRO_BATCH=-1
bad "WORLD_SIZE=4 is not a multiple of TP x PP x SP = 3" "${D[@]}" WORLD_SIZE=4 TP=3
bad "GLOBAL_BATCH=5 is not a multiple of MICRO_BATCH x data-parallel size (1 x 2 = 2)" \
  "${D[@]}" WORLD_SIZE=2 GLOBAL_BATCH=5
bad "GLOBAL_BATCH=8 but MICRO_BATCH x GRAD_ACC_STEPS x data-parallel size = 6" \
  "${D[@]}" WORLD_SIZE=2 GLOBAL_BATCH=8 GRAD_ACC_STEPS=3
bad "TRAIN_TOKENS=100 is less than one iteration" "${D[@]}" TRAIN_TOKENS=100
bad "TRAIN_ITERS=x" "${D[@]}" TRAIN_ITERS=x
bad "MODEL_ARCH=13B: unknown preset" "${D[@]}" MODEL_ARCH=13B
bad "OPT=sophiag: this mds has adamw only" "${D[@]}" OPT=sophiag
bad "LR_DECAY_STYLE=inverse-square-root" "${D[@]}" LR_DECAY_STYLE=inverse-square-root
bad "LR=fast: must be a number" "${D[@]}" LR=fast
bad "DTYPE=fp8: must be bf16, fp16 or fp32" "${D[@]}" DTYPE=fp8
bad "ZERO_STAGE=4: must be 0, 1, 2 or 3" "${D[@]}" ZERO_STAGE=4
bad "USE_ACTIVATION_CHECKPOINTING=maybe" "${D[@]}" USE_ACTIVATION_CHECKPOINTING=maybe
bad "NO_LLAMA=1: mds builds Llama models only" "${D[@]}" NO_LLAMA=1
bad "DATA_FILE_LIST=$TMP/missing.txt: no such file" DATA_FILE_LIST="$TMP/missing.txt"
bad "no data: set DATA_FILE_LIST" DATA_PARENT="$TMP/nowhere"
bad "HOSTFILE=$TMP/nohosts: no such file" "${D[@]}" HOSTFILE="$TMP/nohosts"
bad "TOKENIZER_TYPE=HFTokenizer needs TOKENIZER_MODEL" "${D[@]}" TOKENIZER_TYPE=HFTokenizer
bad "TOKENIZER_TYPE=NullTokenizer needs VOCAB_SIZE" "${D[@]}" TOKENIZER_TYPE=NullTokenizer
bad "MDS=$TMP/no-mds: no mds binary there" "${D[@]}" MDS="$TMP/no-mds"
bad "DRY_RUN=perhaps" "${D[@]}" TRAIN_ITERS=1 DRY_RUN=perhaps

# 11. A real run: TP=2 on 2 ranks through mds launch, the tiny preset, a data-file list. Then
# the same command with more iterations resumes from the checkpoint the first one saved.
((HAVE_LAUNCH)) || fail "$MDS has no 'launch' command: the real run needs it"
RUN=(MODEL_ARCH=tiny TP=2 DATA_FILE_LIST="$TMP/books.txt" CKPT_DIR="$TMP/run" TRAIN_ITERS=6
     LR=1e-3 EVAL_INTERVAL=3 EVAL_ITERS=1 SAVE_INTERVAL=0)
tl "${RUN[@]}" -- --log-json "$TMP/run.jsonl" > "$TMP/r1.log" 2>&1 || fail "run failed: $(tail -20 "$TMP/r1.log")"
[[ $(grep -c "^ iteration=" "$TMP/r1.log") == 6 ]] || fail "expected 6 log lines: $(cat "$TMP/r1.log")"
grep -q " iteration=       6/       6 |.*global_batch_size=    1 |" "$TMP/r1.log" || fail "no iteration 6 of 6"
grep -q "validation loss at iteration 3 |" "$TMP/r1.log" || fail "no validation at iteration 3"
grep -q "^> tp group (2 ranks)" "$TMP/r1.log" || fail "did not run with TP=2: $(cat "$TMP/r1.log")"
[[ $(cat "$TMP/run/latest_checkpointed_iteration.txt") == 6 ]] || fail "no checkpoint at 6"
$PY - "$TMP/run/iter_0000006/config.json" "$TMP/run.jsonl" <<'PY'
import json, math, sys
cfg = json.load(open(sys.argv[1]))
want = dict(num_hidden_layers=4, hidden_size=256, intermediate_size=640, num_attention_heads=8,
            num_key_value_heads=4, max_position_embeddings=4096, rope_theta=50000,
            initializer_range=0.0395285)
for k, v in want.items():
    assert cfg[k] == v, f"config.json {k}={cfg[k]}, want {v} (MODEL_ARCH=tiny)"
rows = [r for r in map(json.loads, open(sys.argv[2])) if "iteration" in r]
assert len(rows) == 6, rows
first = rows[0]["lm_loss"]
assert abs(first - math.log(50257)) < 0.7, f"first loss {first} is not ~ln(50257)"
assert all(math.isfinite(r["lm_loss"]) for r in rows)
print(f"tiny TP=2: loss {first:.4f} -> {rows[-1]['lm_loss']:.4f}")
PY
RUN+=(TRAIN_ITERS=8)  # the later value wins in env
tl "${RUN[@]}" > "$TMP/r2.log" 2>&1 || fail "resumed run failed: $(tail -20 "$TMP/r2.log")"
grep -q "continuing at iteration 6" "$TMP/r2.log" || fail "did not resume: $(cat "$TMP/r2.log")"
grep -q " iteration=       8/       8 |" "$TMP/r2.log" || fail "no iteration 8 after resume"
grep -Eq "^  LOAD +=  ?$TMP/run +\(default" "$TMP/r2.log" || fail "LOAD not shown as CKPT_DIR"
# A layout mds train refuses (8 heads over TP=3) is its one line, through the launcher.
set +e
tl MODEL_ARCH=tiny TP=3 DATA_FILE_LIST="$TMP/books.txt" CKPT_DIR="$TMP/bad" TRAIN_ITERS=1 \
  > "$TMP/r3.log" 2>&1
rc=$?
set -e
[[ $rc != 0 ]] || fail "TP=3 with 8 heads was accepted"
grep -q "divisible" "$TMP/r3.log" || fail "no layout error: $(cat "$TMP/r3.log")"
echo "PASS"
