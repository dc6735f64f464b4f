#!/usr/bin/env bash
# The NCCL communicator's checks on a machine with a GPU: build mds_nccl_tests with MDS_CUDA=ON,
# run it as one process (a world of one on GPU 0: nothing may skip but the 2-rank test), then,
# with 2+ GPUs and mpirun, on 2 ranks (one GPU each). Prints a summary.
# MDS_SKIP_BUILD=1 skips the configure and build (tests/cuda/device_session.sh with a carried build);
# MDS_NCCL_TESTS=PATH runs that test binary instead of BUILD/tests/mds_nccl_tests (the device
# bundle's bin/mds_nccl_tests); the logs still go to the build dir.
#   bash tests/cuda/nccl_gpu_check.sh [build-dir]       (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
if [[ ${MDS_SKIP_BUILD:-0} != 1 ]]; then  # 1: a build dir made elsewhere, used as it is
  cmake -B "$build" -S . -DCMAKE_BUILD_TYPE=Release -DMDS_CUDA=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target mds_nccl_tests
fi
bin=${MDS_NCCL_TESTS:-$build/tests/mds_nccl_tests}
mkdir -p "$build"
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
timeout 300 "$bin" 2>&1 | tee "$build/nccl_tests.log"
if grep -E "SKIPPED \] [A-Za-z]" "$build/nccl_tests.log" | grep -v "SendThenRecvBetweenPairs" | grep -q .; then
  echo "FAIL: NCCL tests skipped on a machine that has a GPU" >&2
  exit 1
fi
gpus=$(nvidia-smi -L | wc -l)
if [[ $gpus -ge 2 ]] && command -v mpirun >/dev/null; then
  timeout 300 mpirun --oversubscribe --allow-run-as-root -np 2 -x NCCL_DEBUG "$bin" 2>&1 |
    tee "$build/nccl_tests_np2.log"
  if grep -qE "SKIPPED \] [A-Za-z]" "$build/nccl_tests_np2.log"; then
    echo "FAIL: 2-rank NCCL tests skipped with $gpus GPUs" >&2
    exit 1
  fi
  echo "nccl_gpu_check: world of one and 2 ranks ran and passed"
else
  echo "nccl_gpu_check: world of one ran and passed; 2 ranks NOT run ($gpus GPU(s) or no mpirun)"
fi
