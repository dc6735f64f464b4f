# tests/cuda/gpu_train_parity.sh on the CPU emulator's GPU: mds-emu (the mds binary on the
# emulated device, tests/cuda_emu/device) trains the small model (MDS_PARITY_SIZE=small) with
# MDS_DEVICE=cuda and MDS_DEVICE=cpu, and the script's checks hold: fp32 reproduces the CPU's
# losses to 1e-4 and its weights to 1e-3, recomputation reproduces the run without, bf16 and
# fp16 reproduce the CPU's 16-bit references, the mma and WMMA attention train like the
# CUDA-core kernels, and shuffled threads with late-landing cp.async copies train the same bits.
#   bash tests/cuda_emu/train_parity.sh MDS_EMU_BINARY SOURCE_DIR
MDS_E2E_TOKENIZER=sentencepiece
source "$(dirname "$0")/../e2e/lib/common.sh" "$@"
preprocess_brown
ln -s "$DATA/brown-sp.model" "$TMP/"
OMP_NUM_THREADS=1 MDS_DATA_DIR=$TMP MDS_PARITY_SIZE=small PYTHON=$PY \
  bash "$SRC/tests/cuda/gpu_train_parity.sh" "$MDS" "$TMP/parity"
