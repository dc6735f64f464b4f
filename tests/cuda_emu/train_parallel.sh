# tests/e2e/parallel_4d.sh on the CPU emulator's GPUs: mds-emu (the mds binary on the emulated
# device, tests/cuda_emu/device) with MDS_DEVICE=cuda, a device per process (MDS_EMU_DEVICES)
# and the NcclCommunicator over the emulated NCCL (device/nccl.cpp: NCCL's calls over MPI).
# Tensor, sequence (Ulysses), pipeline and data parallelism, T2, S2, P2 and D2, each reproduce
# one GPU process's losses and weights, and each group moves the bytes the theory says.
#   bash tests/cuda_emu/train_parallel.sh MDS_EMU_BINARY SOURCE_DIR
MDS_DEVICE=cuda MDS_EMU_DEVICES=8 MDS_PARITY_ONLY="T2 S2 P2 D2" MDS_E2E_TOKENIZER=sentencepiece \
  exec bash "$(dirname "$0")/../e2e/parallel_4d.sh" "$@"
