#!/usr/bin/env bash
# train_llama.sh: Megatron-DeepSpeed's train_aGPT_7B.sh for mds. The same environment variables,
# with the defaults of ALCF/helpers.sh, resolved into `mds launch ... train ...` flags:
#
#   TP=2 NLAYERS=10 DATA_FILE_LIST=books.txt bash train_llama.sh [extra mds train flags]
#   MODEL_ARCH=tiny TRAIN_ITERS=100 bash train_llama.sh          # a model two CPU cores train
#   DRY_RUN=1 MODEL_ARCH=70B TP=8 PP=4 WORLD_SIZE=64 bash train_llama.sh   # print, run nothing
#
# It prints every setting with where its value came from (env, preset, default, derived), the
# features asked for that mds does not have yet, and the command; then runs the command, or with
# DRY_RUN=1 stops (showing `mds launch --dry-run`'s launcher line). Extra arguments go to
# `mds train` last, so they override (the last value of a repeated flag wins, as with argparse).
# A bad value is one line on stderr and exit code 2. The README's "train_llama.sh" section has
# the table of variables, flags and defaults, and where mds departs from Megatron-DeepSpeed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=train_llama.sh
die() { echo "$PROG: $*" >&2; exit 2; }
_notes=()
note() { _notes+=("$*"); }  # printed after the settings: features asked for that mds lacks

# ---- Resolution: every setting remembers where its value came from -------------------------
_order=()
declare -A _src
# setting NAME VALUE SOURCE: set the shell variable NAME and record its source.
setting() {
  printf -v "$1" '%s' "$2"
  [[ -n ${_src[$1]+x} ]] || _order+=("$1")
  _src[$1]=$3
}
# take NAME DEFAULT SOURCE [ALIAS...]: NAME from the environment (it or its first non-empty
# alias), else DEFAULT. An empty variable counts as unset, as with helpers.sh's ${X:-default}.
take() {
  local name=$1 def=$2 src=$3 n
  shift 3
  for n in "$name" "$@"; do
    if [[ -n ${!n:-} ]]; then
      if [[ $n == "$name" ]]; then setting "$name" "${!n}" env; else setting "$name" "${!n}" "env $n"; fi
      return
    fi
  done
  setting "$name" "$def" "$src"
}
from_env() { [[ ${_src[$1]} == env* ]]; }

is_int() { [[ $1 =~ ^[0-9]{1,18}$ ]]; }
is_num() { [[ $1 =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]]; }
# need_*: check, and write integers in plain decimal (so "08" is 8, never octal, below).
need_pos_int() {
  for v; do
    is_int "${!v}" && ((10#${!v} > 0)) || die "$v=${!v}: must be a positive integer"
    printf -v "$v" '%d' "$((10#${!v}))"
  done
}
need_int() {
  for v; do
    is_int "${!v}" || die "$v=${!v}: must be a non-negative integer"
    printf -v "$v" '%d' "$((10#${!v}))"
  done
}
need_num() { for v; do is_num "${!v}" || die "$v=${!v}: must be a number"; done; }
is_on() {  # NAME: 1/true/yes/on -> 0, 0/false/no/off/unset -> 1, else exit 2
  local v=${!1:-}
  case ${v,,} in
    1 | true | yes | on) return 0 ;;
    0 | false | no | off | "") return 1 ;;
    *) die "$1=$v: must be 1/true or 0/false" ;;
  esac
}

# ---- The binary and what this build of it supports -------------------------------------------
take MDS "$HERE/build/mds" "default (beside this script)"
[[ -x $MDS && ! -d $MDS ]] || die "MDS=$MDS: no mds binary there (build it: cmake -B build -S . && cmake --build build --target mds, or set MDS)"
TRAIN_HELP=$("$MDS" train --help 2>&1) || die "MDS=$MDS: '$MDS train --help' failed"
has_flag() { grep -Eq -- "(^|[ ,])$1([ ,=]|$)" <<< "$TRAIN_HELP"; }
choices() { sed -n "s/.*$1 TEXT:{\([^}]*\)}.*/\1/p" <<< "$TRAIN_HELP" | head -1; }  # "a,b,c"
HAVE_LAUNCH=0
"$MDS" launch --help > /dev/null 2>&1 && HAVE_LAUNCH=1
DRY=0
is_on DRY_RUN && DRY=1

# ---- Model: MODEL_ARCH presets, each number overridable -------------------------------------
# heads layers hidden kv-heads ffn seq, as in ALCF/helpers.sh (where only 7B honours the
# variables below; here every preset does). tiny is mds's: scripts/quickstart.sh's model.
take MODEL_ARCH 7B "default"
case ${MODEL_ARCH,,} in
  7b) preset=(32 32 4096 8 11008 4096) ;;
  2b) preset=(16 12 2048 4 11008 8192) ;;
  llama3-3b) preset=(24 28 3072 8 8192 8192) ;;
  smollm3-3b) preset=(16 24 2048 4 11008 8192) ;;
  phi4-mini) preset=(32 24 3072 8 8192 8192) ;;
  70b) preset=(64 80 8192 8 28672 8192) ;;
  tiny) preset=(8 4 256 4 640 256) ;;
  *) die "MODEL_ARCH=$MODEL_ARCH: unknown preset (7B, 2B, llama3-3B, smollm3-3B, phi4-mini, 70B, tiny)" ;;
esac
take HEADS "${preset[0]}" "preset $MODEL_ARCH" NHEADS
take NLAYERS "${preset[1]}" "preset $MODEL_ARCH" NUM_LAYERS
take HIDDEN "${preset[2]}" "preset $MODEL_ARCH"
take NUM_KV_HEAD "${preset[3]}" "preset $MODEL_ARCH"
take FFN_HIDDEN_SIZE "${preset[4]}" "preset $MODEL_ARCH"
take SEQ "${preset[5]}" "preset $MODEL_ARCH"
need_pos_int HEADS NLAYERS HIDDEN NUM_KV_HEAD FFN_HIDDEN_SIZE SEQ
take MAX_POSITION_EMBEDDINGS $((16 * SEQ)) "derived: 16 x SEQ"
need_pos_int MAX_POSITION_EMBEDDINGS
take ROPE_THETA 50000 "default"
# helpers.sh always passes --init-method-std=sqrt(2/(5*HIDDEN)).
take INIT_METHOD_STD "$(awk -v h="$HIDDEN" 'BEGIN { printf "%.6g", sqrt(2 / (5 * h)) }')" \
  "derived: sqrt(2 / (5 x HIDDEN))"
need_num ROPE_THETA INIT_METHOD_STD
[[ -z ${NO_LLAMA:-} ]] || die "NO_LLAMA=$NO_LLAMA: mds builds Llama models only (unset NO_LLAMA)"

# ---- Devices, hosts and the world size --------------------------------------------------------
# MDS_DEVICE is mds launch's override. The default is cpu: the GPU trainer runs one process
# (multi-GPU needs its NCCL groups), so GPUs are asked for explicitly.
take MDS_DEVICE cpu "default (the GPU trainer is one process for now)"
[[ $MDS_DEVICE == cpu || $MDS_DEVICE == cuda ]] || die "MDS_DEVICE=$MDS_DEVICE: must be cpu or cuda"
take TP 1 "default"
take PP 1 "default"
take SP 1 "default"
need_pos_int TP PP SP
MP=$((TP * PP * SP))
# Hosts: HOSTFILE (passed to mds launch), else the scheduler's list, which mds launch reads
# itself; only their number matters here.
# Lines `host`, `host slots=N` or `host:N`; a host listed twice (PBS: once per slot) counts once.
count_hosts() { awk '{ sub(/#.*/, "") } NF { sub(/:.*/, "", $1); print $1 }' "$1" | sort -u | wc -l; }
if [[ -n ${HOSTFILE:-} ]]; then
  [[ -f $HOSTFILE ]] || die "HOSTFILE=$HOSTFILE: no such file"
  setting NHOSTS "$(count_hosts "$HOSTFILE")" "derived: hosts in HOSTFILE"
elif [[ -n ${PBS_NODEFILE:-} && -f ${PBS_NODEFILE:-} ]]; then
  setting NHOSTS "$(count_hosts "$PBS_NODEFILE")" "derived: hosts in PBS_NODEFILE"
elif [[ -n ${SLURM_NNODES:-${SLURM_JOB_NUM_NODES:-}} ]]; then
  setting NHOSTS "${SLURM_NNODES:-$SLURM_JOB_NUM_NODES}" "derived: SLURM_NNODES"
else
  setting NHOSTS 1 "default (this machine)"
fi
need_pos_int NHOSTS
# Ranks per host: on GPUs one per GPU; on the CPU one per host (all its cores as threads),
# raised to what the layout needs when TP x PP x SP ranks do not fit one per host. A WORLD_SIZE
# given spreads evenly over the hosts.
if [[ -n ${WORLD_SIZE:-${NGPUS:-}} ]]; then
  take WORLD_SIZE "" "" NGPUS
  need_pos_int WORLD_SIZE
  take NGPU_PER_HOST $(((WORLD_SIZE + NHOSTS - 1) / NHOSTS)) "derived: ceil(WORLD_SIZE / NHOSTS)" RANKS_PER_HOST
  need_pos_int NGPU_PER_HOST
elif [[ $MDS_DEVICE == cuda ]]; then
  gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
  take NGPU_PER_HOST "${gpus:-0}" "derived: GPUs on this host (nvidia-smi -L)" RANKS_PER_HOST
  ((${NGPU_PER_HOST:-0} > 0)) || die "MDS_DEVICE=cuda but nvidia-smi lists no GPU here: set NGPU_PER_HOST or WORLD_SIZE"
else
  take NGPU_PER_HOST $(((MP + NHOSTS - 1) / NHOSTS)) \
    "derived: ceil(TP x PP x SP / NHOSTS)" RANKS_PER_HOST
fi
need_pos_int NGPU_PER_HOST
[[ -n ${_src[WORLD_SIZE]+x} ]] || setting WORLD_SIZE $((NHOSTS * NGPU_PER_HOST)) "derived: NHOSTS x NGPU_PER_HOST"
((WORLD_SIZE % MP == 0)) ||
  die "WORLD_SIZE=$WORLD_SIZE is not a multiple of TP x PP x SP = $MP: change the world size or the layout"
DP=$((WORLD_SIZE / MP))

# ---- Batch and length -------------------------------------------------------------------------
take MICRO_BATCH 1 "default"
take GRAD_ACC_STEPS 1 "default"
need_pos_int MICRO_BATCH GRAD_ACC_STEPS
take GLOBAL_BATCH $((DP * MICRO_BATCH * GRAD_ACC_STEPS)) \
  "derived: WORLD_SIZE x MICRO_BATCH x GRAD_ACC_STEPS / (TP x PP x SP)"
need_pos_int GLOBAL_BATCH
per_step=$((DP * MICRO_BATCH))
((GLOBAL_BATCH % per_step == 0)) ||
  die "GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of MICRO_BATCH x data-parallel size ($MICRO_BATCH x $DP = $per_step)"
if from_env GLOBAL_BATCH; then
  if from_env GRAD_ACC_STEPS && ((GLOBAL_BATCH != per_step * GRAD_ACC_STEPS)); then
    die "GLOBAL_BATCH=$GLOBAL_BATCH but MICRO_BATCH x GRAD_ACC_STEPS x data-parallel size = $((per_step * GRAD_ACC_STEPS)): set one of GLOBAL_BATCH and GRAD_ACC_STEPS"
  fi
  setting GRAD_ACC_STEPS $((GLOBAL_BATCH / per_step)) "derived: GLOBAL_BATCH / (MICRO_BATCH x DP)"
fi
# TRAIN_TOKENS, when given, wins over TRAIN_ITERS (as in helpers.sh); neither: Megatron's total.
if [[ -n ${TRAIN_TOKENS:-} ]]; then
  take TRAIN_TOKENS "" ""
  [[ -z ${TRAIN_ITERS:-${TRAIN_ITER:-}} ]] ||
    note "TRAIN_ITERS=${TRAIN_ITERS:-$TRAIN_ITER} is ignored: TRAIN_TOKENS is set and wins, as in Megatron-DeepSpeed"
elif [[ -n ${TRAIN_ITERS:-${TRAIN_ITER:-}} ]]; then
  take TRAIN_ITERS "" "" TRAIN_ITER
else
  setting TRAIN_TOKENS 4673780159710 "default (Megatron-DeepSpeed's)"
fi
if [[ -n ${_src[TRAIN_TOKENS]+x} ]]; then
  need_pos_int TRAIN_TOKENS
  per_iter=$((SEQ * GLOBAL_BATCH))
  setting TRAIN_ITERS $((TRAIN_TOKENS / per_iter)) "derived: TRAIN_TOKENS / SEQ / GLOBAL_BATCH"
  ((TRAIN_ITERS > 0)) ||
    die "TRAIN_TOKENS=$TRAIN_TOKENS is less than one iteration (SEQ x GLOBAL_BATCH = $per_iter tokens)"
fi
need_pos_int TRAIN_ITERS

# ---- Optimizer and schedule ---------------------------------------------------------------------
take OPT adamw "default" OPTIMIZER OPTIM
opts=$(choices --optimizer)
[[ ,${opts:-adamw}, == *",$OPT,"* ]] ||
  die "OPT=$OPT: this mds has ${opts:-adamw} only (Megatron's other optimizers are not built; use OPT=adamw)"
take LR 0.0002 "default"
take LR_DECAY_STYLE cosine "default"
styles=$(choices --lr-decay-style)
[[ -z $styles || ,$styles, == *",$LR_DECAY_STYLE,"* ]] ||
  die "LR_DECAY_STYLE=$LR_DECAY_STYLE: this mds has ${styles//,/, }"
take LR_WARMUP_FRAC 0.05 "default"
take LR_DECAY_ITERS "" "default (TRAIN_ITERS)"
take WEIGHT_DECAY 0.1 "default"
take ADAM_BETA1 0.9 "default"
take ADAM_BETA2 0.95 "default"
take ADAM_EPS 0.00001 "default"
take CLIP_GRAD 1.0 "default"
need_num LR LR_WARMUP_FRAC WEIGHT_DECAY ADAM_BETA1 ADAM_BETA2 ADAM_EPS CLIP_GRAD
[[ -z $LR_DECAY_ITERS ]] || need_pos_int LR_DECAY_ITERS

# ---- Memory and precision features: accepted, used when this mds has them, else reported ------
# These change memory or speed, not the numbers trained, so a run without them goes on.
take ZERO_STAGE 0 "default (Megatron: 1; ZeRO is not built)"
[[ $ZERO_STAGE =~ ^[0-3]$ ]] || die "ZERO_STAGE=$ZERO_STAGE: must be 0, 1, 2 or 3"
ZERO_FLAGS=()
if ((ZERO_STAGE > 0)); then
  if has_flag --zero-stage; then
    ZERO_FLAGS=(--zero-stage "$ZERO_STAGE")
  else
    note "ZERO_STAGE=$ZERO_STAGE: ZeRO is not built yet; running ZeRO-0 (the same updates; optimizer state and gradients not sharded)"
    setting ZERO_STAGE 0 "${_src[ZERO_STAGE]}: $ZERO_STAGE asked, ZeRO is not built"
  fi
fi
# DTYPE: Megatron's bf16 mixed precision on GPUs. On the CPU, bf16 runs mds's reference kernels
# (slow: each converts to fp32 and back), so fp32 is the CPU's default.
if [[ $MDS_DEVICE == cuda ]]; then take DTYPE bf16 "default"; else take DTYPE fp32 "default (CPU; Megatron: bf16)"; fi
DTYPE_FLAGS=()
case $DTYPE in
  fp32) ;;
  bf16) DTYPE_FLAGS=(--bf16) ;;
  # The fp16 section of Megatron-DeepSpeed's ds_config: dynamic scaling (loss_scale 0) from
  # DeepSpeed's initial 2^16, window 1000, hysteresis 2, minimum 1.
  fp16) DTYPE_FLAGS=(--fp16 --initial-loss-scale 65536 --loss-scale-window 1000 --hysteresis 2
    --min-loss-scale 1) ;;
  *) die "DTYPE=$DTYPE: must be bf16, fp16 or fp32" ;;
esac
take USE_ACTIVATION_CHECKPOINTING 0 "default (off)"
take ACT_CKPT_NUM_LAYERS 1 "default"
need_pos_int ACT_CKPT_NUM_LAYERS
ACT_FLAGS=()
if is_on USE_ACTIVATION_CHECKPOINTING; then
  if has_flag --checkpoint-activations; then
    ACT_FLAGS=(--deepspeed-activation-checkpointing --checkpoint-activations
      --checkpoint-num-layers "$ACT_CKPT_NUM_LAYERS")
  else
    note "USE_ACTIVATION_CHECKPOINTING=$USE_ACTIVATION_CHECKPOINTING: activation checkpointing is not built yet; keeping all activations (more memory, the same numbers)"
    setting USE_ACTIVATION_CHECKPOINTING 0 "${_src[USE_ACTIVATION_CHECKPOINTING]}: $USE_ACTIVATION_CHECKPOINTING asked, not built"
  fi
fi
# NO_FLASH_ATTN: helpers.sh then leaves out --use-flash-attn, Megatron's unfused attention.
ATTN_FLAGS=()
[[ -z ${NO_FLASH_ATTN:-} ]] || ATTN_FLAGS=(--attention-backend unfused)
# Accepted for compatibility; it has no effect in mds.
[[ -z ${CPU_OPTIMIZER:-} ]] ||
  note "CPU_OPTIMIZER=$CPU_OPTIMIZER: optimizer offload is not built; the optimizer runs where the model is (on the CPU backend, the CPU)"
TIMING_FLAGS=()
if [[ -n ${TIMING_LOG_LEVEL:-} ]]; then
  [[ $TIMING_LOG_LEVEL =~ ^[0-2]$ ]] || die "TIMING_LOG_LEVEL=$TIMING_LOG_LEVEL: must be 0, 1 or 2"
  TIMING_FLAGS=(--timing-log-level "$TIMING_LOG_LEVEL")
fi
[[ -z ${LAUNCH_WITH:-} ]] ||
  note "LAUNCH_WITH=$LAUNCH_WITH: mds starts ranks with mds launch (mpirun, mpiexec or srun); no effect"

# ---- Data and tokenizer ---------------------------------------------------------------------
# DATA_PARENT holds the tokenizer files and the default data: data/ beside this script, where
# scripts/prepare_data.sh and scripts/quickstart.sh put GPT-2's files and the Brown corpus.
take DATA_PARENT "$HERE/data" "default (data/ beside this script)"
if [[ -n ${DATA_FILE_LIST:-} ]]; then
  take DATA_FILE_LIST "" ""
  [[ -f $DATA_FILE_LIST ]] || die "DATA_FILE_LIST=$DATA_FILE_LIST: no such file"
  DATA_FLAGS=(--data-file-list "$DATA_FILE_LIST")
  stem=$(basename "$DATA_FILE_LIST" .txt)
else
  brown=$DATA_PARENT/brown_text_document
  if [[ -n ${DATA_PATH:-} ]]; then
    take DATA_PATH "" ""
  elif [[ -f $brown.idx ]]; then
    setting DATA_PATH "$brown" "default (scripts/quickstart.sh's Brown corpus)"
  else
    die "no data: set DATA_FILE_LIST=FILE (lines of 'weight prefix corpus') or DATA_PATH=PREFIX, or run scripts/quickstart.sh to make $brown"
  fi
  read -r -a DATA_FLAGS <<< "$DATA_PATH"  # PREFIX, or 'w1 PREFIX1 w2 PREFIX2 ...'
  stem=$(basename "${DATA_FLAGS[-1]}")
  DATA_FLAGS=(--data-path "${DATA_FLAGS[@]}")
fi
# The tokenizer. Megatron's TOKENIZER_TYPE gpt* means GPT2BPETokenizer. Megatron's default,
# HFTokenizer with google/gemma-7B, is a Hub name mds cannot fetch; so without TOKENIZER_MODEL
# the default is GPT-2's files in DATA_PARENT, and with it HFTokenizer (a tokenizer.json or its
# folder) or Llama2Tokenizer (a SentencePiece .model file).
if [[ -n ${TOKENIZER_MODEL:-} ]]; then
  if [[ $TOKENIZER_MODEL == *.model ]]; then
    take TOKENIZER_TYPE Llama2Tokenizer "derived: TOKENIZER_MODEL is a .model file"
  else
    take TOKENIZER_TYPE HFTokenizer "default"
  fi
else
  take TOKENIZER_TYPE GPT2BPETokenizer "default (GPT-2's files in DATA_PARENT; Megatron: HFTokenizer)"
fi
[[ ${TOKENIZER_TYPE,,} != gpt* ]] || TOKENIZER_TYPE=GPT2BPETokenizer
if [[ $TOKENIZER_TYPE == GPT2BPETokenizer ]]; then
  take VOCAB_FILE "$DATA_PARENT/gpt2-vocab.json" "default (DATA_PARENT)"
  take MERGE_FILE "$DATA_PARENT/gpt2-merges.txt" "default (DATA_PARENT)"
  TOKENIZER_FLAGS=(--tokenizer-type GPT2BPETokenizer --vocab-file "$VOCAB_FILE" --merge-file "$MERGE_FILE")
  [[ -z ${TOKENIZER_MODEL:-} ]] ||
    note "TOKENIZER_MODEL=$TOKENIZER_MODEL is ignored: GPT2BPETokenizer reads VOCAB_FILE and MERGE_FILE"
elif [[ $TOKENIZER_TYPE == NullTokenizer ]]; then
  take VOCAB_SIZE "" ""
  [[ -n $VOCAB_SIZE ]] || die "TOKENIZER_TYPE=NullTokenizer needs VOCAB_SIZE (ids below it; the end-of-document id is VOCAB_SIZE)"
  need_pos_int VOCAB_SIZE
  TOKENIZER_FLAGS=(--tokenizer-type NullTokenizer --vocab-size "$VOCAB_SIZE")
else
  [[ -n ${TOKENIZER_MODEL:-} ]] ||
    die "TOKENIZER_TYPE=$TOKENIZER_TYPE needs TOKENIZER_MODEL (a tokenizer.json or its folder; a SentencePiece .model file)"
  take TOKENIZER_MODEL "" ""
  TOKENIZER_FLAGS=(--tokenizer-type "$TOKENIZER_TYPE" --tokenizer-model "$TOKENIZER_MODEL")
fi
take TRAIN_SPLIT 990 "default"
take VAL_SPLIT 10 "default"
take TEST_SPLIT 0 "default"
need_int TRAIN_SPLIT VAL_SPLIT TEST_SPLIT

# ---- Checkpoints, evaluation, logging ---------------------------------------------------------
prefix="ws${WORLD_SIZE}_ds_stage${ZERO_STAGE}_nl${NLAYERS}_hs${HIDDEN}_mb${MICRO_BATCH}"
prefix+="_seq${SEQ}_gb${GLOBAL_BATCH}_sp${SP}_pp${PP}_tp${TP}_${DTYPE}_opt${OPT}"
prefix+="_lr${LR}_lwf${LR_WARMUP_FRAC}_tok${TOKENIZER_TYPE%Tokenizer}"
[[ -z $LR_DECAY_ITERS ]] || prefix+="_ldi${LR_DECAY_ITERS}"
take CKPT_DIR "checkpoints/$prefix" "derived: checkpoints/<settings>"
take SAVE "$CKPT_DIR" "default (CKPT_DIR)"
take LOAD "$CKPT_DIR" "default (CKPT_DIR)"
take SAVE_INTERVAL 50 "default"
take EVAL_INTERVAL 100 "default"
take EVAL_ITERS 20 "default"
take LOG_INTERVAL 1 "default"
need_pos_int EVAL_INTERVAL LOG_INTERVAL
need_int SAVE_INTERVAL EVAL_ITERS
# helpers.sh always passes --load CKPT_DIR, so a rerun resumes; Megatron starts afresh when no
# checkpoint is there, while mds train refuses a folder without one, so the default LOAD is
# passed only when it holds a checkpoint. A LOAD given in the environment is always passed.
LOAD_FLAGS=()
if from_env LOAD || [[ -f $LOAD/latest_checkpointed_iteration.txt ]]; then
  LOAD_FLAGS=(--load "$LOAD")
else
  _src[LOAD]+="; no checkpoint there yet, not passed"
fi
TB_FLAGS=()
if [[ -z ${NO_TENSORBOARD:-} ]] && has_flag --tensorboard-dir; then
  TB_FLAGS=(--tensorboard-dir "$CKPT_DIR/tensorboard")
fi

# ---- The command ----------------------------------------------------------------------------
TRAIN=(
  --num-layers "$NLAYERS" --hidden-size "$HIDDEN" --ffn-hidden-size "$FFN_HIDDEN_SIZE"
  --num-attention-heads "$HEADS" --num-key-value-heads "$NUM_KV_HEAD"
  --seq-length "$SEQ" --max-position-embeddings "$MAX_POSITION_EMBEDDINGS"
  --rotary-position-embeddings-theta "$ROPE_THETA" --init-method-std "$INIT_METHOD_STD"
  --tensor-model-parallel-size "$TP" --pipeline-model-parallel-size "$PP"
  --ds-sequence-parallel-size "$SP"
  --micro-batch-size "$MICRO_BATCH" --global-batch-size "$GLOBAL_BATCH"
  --train-iters "$TRAIN_ITERS"
  --optimizer "$OPT" --lr "$LR" --lr-decay-style "$LR_DECAY_STYLE"
  --lr-warmup-fraction "$LR_WARMUP_FRAC"
)
[[ -z $LR_DECAY_ITERS ]] || TRAIN+=(--lr-decay-iters "$LR_DECAY_ITERS")
TRAIN+=(
  --weight-decay "$WEIGHT_DECAY" --adam-beta1 "$ADAM_BETA1" --adam-beta2 "$ADAM_BETA2"
  --adam-eps "$ADAM_EPS" --clip-grad "$CLIP_GRAD"
  "${ZERO_FLAGS[@]}" "${DTYPE_FLAGS[@]}" "${ACT_FLAGS[@]}" "${TIMING_FLAGS[@]}" "${ATTN_FLAGS[@]}"
  "${DATA_FLAGS[@]}" --data-cache-path "$CKPT_DIR/.cache/$stem/index-cache"
  --split "$TRAIN_SPLIT,$VAL_SPLIT,$TEST_SPLIT" "${TOKENIZER_FLAGS[@]}"
  --save "$SAVE" --save-interval "$SAVE_INTERVAL" "${LOAD_FLAGS[@]}"
  --eval-interval "$EVAL_INTERVAL" --eval-iters "$EVAL_ITERS" --log-interval "$LOG_INTERVAL"
  "${TB_FLAGS[@]}"
)
# mds launch is told the world size this script computed, so the two cannot disagree.
LAUNCH=(--np "$WORLD_SIZE" --ranks-per-host "$NGPU_PER_HOST")
[[ -z ${HOSTFILE:-} ]] || LAUNCH+=(--hostfile "$HOSTFILE")
take MDS_MPI "" "default (mds launch: auto)"
[[ -z $MDS_MPI ]] || LAUNCH+=(--mpi "$MDS_MPI")
CMD=("$MDS" launch "${LAUNCH[@]}" train "${TRAIN[@]}" "$@")

# ---- Print ------------------------------------------------------------------------------------
# Parameters without the embedding and head (their size needs the vocabulary): per layer
# q,o h^2 each, k,v h x kv-width each, gate/up/down h x ffn each, two norms.
hd=$((HIDDEN / HEADS))
block=$((2 * HIDDEN * HIDDEN + 2 * HIDDEN * NUM_KV_HEAD * hd + 3 * HIDDEN * FFN_HIDDEN_SIZE + 2 * HIDDEN))
params=$((NLAYERS * block + HIDDEN))
setting MODEL_PARAMS "$(awk -v p="$params" 'BEGIN { s = p >= 1e9 ? sprintf("%.2fB", p / 1e9) : sprintf("%.2fM", p / 1e6); print s }')" \
  "derived: transformer blocks; the embedding and head add 2 x vocabulary x HIDDEN"
if [[ $MDS_DEVICE == cpu ]]; then
  # fp32 weights, gradients and two Adam moments: 16 bytes a parameter, split over TP x PP.
  need_gib=$(((params * 16 * NGPU_PER_HOST / (TP * PP)) >> 30))
  have_gib=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2> /dev/null || echo 0) >> 20))
  if ((have_gib > 0 && need_gib > have_gib)); then
    note "MODEL_ARCH=$MODEL_ARCH needs about ${need_gib} GiB per host for fp32 weights, gradients and Adam state (before activations); this host has ${have_gib} GiB (MODEL_ARCH=tiny trains on a laptop)"
  fi
fi

echo "$PROG: settings (variable = value (source))"
for name in "${_order[@]}"; do
  printf '  %-28s = %-30s (%s)\n' "$name" "${!name:-<unset>}" "${_src[$name]}"
done
printf '  %-28s = %-30s (%s)\n' DATA_PARALLEL "$DP" "derived: WORLD_SIZE / (TP x PP x SP)"
for n in "${_notes[@]}"; do echo "$PROG: note: $n" >&2; done
(($# == 0)) || echo "$PROG: extra arguments, last so they override: $*"

# The command, one flag and its values a line, ready to paste.
quote() {  # words as a shell reads them back: plain when safe, else printf %q
  local q=() a
  for a; do
    if [[ $a =~ ^[A-Za-z0-9_./,:=+@%-]+$ ]]; then q+=("$a"); else q+=("$(printf '%q' "$a")"); fi
  done
  echo "${q[*]}"
}
echo "$PROG: command:"
line="  $(quote "$MDS" launch "${LAUNCH[@]}" train)"
for a in "${TRAIN[@]}" "$@"; do
  if [[ $a == -* ]]; then
    echo "$line \\"
    line="    $(quote "$a")"
  else
    line+=" $(quote "$a")"
  fi
done
echo "$line"

if ((DRY)); then
  if ((HAVE_LAUNCH)); then
    echo "$PROG: mds launch --dry-run:"
    "$MDS" launch --dry-run "${LAUNCH[@]}" train "${TRAIN[@]}" "$@"
  else
    echo "$PROG: (this mds has no 'launch' command yet, so no launcher line to show)"
  fi
  exit 0
fi
((HAVE_LAUNCH)) || die "MDS=$MDS has no 'launch' command: build a newer mds (or run the command above's train part under mpirun yourself)"
exec "${CMD[@]}"
