#!/usr/bin/env bash
# Everything a session with the GPU machine (one H100/H200, 16 cores) checks, in ONE call that
# ends within ~9 minutes: the machine and its tools, the CUDA build of mds (or the prebuilt
# bundle), the CUDA kernel tests (tests/cuda/gpu_check.sh), the NCCL tests
# (tests/cuda/nccl_gpu_check.sh), CPU-vs-GPU training parity (tests/cuda/gpu_train_parity.sh,
# when it exists), and the training benchmark beside PyTorch + Hugging Face
# (bench/gpu_train_bench.py --config all). Each stage is time-boxed and the next one runs
# whatever happened; a summary of the stages ends the output.
#
#   bash tests/cuda/device_session.sh [build-dir]      (default build-gpu; unused with a bundle)
#
# What a session does (the GPU machine lacks mds's build dependencies, so build here):
#   1. here: bash scripts/device_bundle.sh   (writes device-bundle.tar.xz, ~22 MiB: mds,
#      mds_cuda_tests, mds_nccl_tests with their libraries, glibc included, and the Brown data;
#      2.5 min with a warm ccache on 2 cores, 20 s when up to date)
#   2. the device tool, one run: carry ["device-bundle.tar.xz"],
#      command "PYTHONUNBUFFERED=1 bash tests/cuda/device_session.sh", timeout_s 600
#      (the script itself stops by ~540 s).
# With device-bundle.tar.xz in the repo root (or DEVICE_BUNDLE=PATH), the stage "bundle"
# unpacks it to /tmp/mds-device-bundle, warns when it was built from other sources than this
# tree's (INFO's source_hash), and replaces the build: every stage runs the bundle's wrappers
# (bin/mds, bin/mds_cuda_tests, bin/mds_nccl_tests: the bundled loader and libraries, the
# machine's libcuda, libcublasLt and libnccl), and the data is the bundle's unless data/ has it.
# Without a bundle, mds is configured and built here (stage "build"; it needs the dependencies),
# and, to give the benchmark the Brown corpus instead of random tokens, carry
# ["data/brown_text_document.bin", "data/brown_text_document.idx", "data/gpt2-vocab.json",
#  "data/gpt2-merges.txt"].
# A build dir made elsewhere (carried) is used as is with MDS_SKIP_BUILD=1: no configure or
# build; a lib/ folder inside it is put on LD_LIBRARY_PATH (shared libraries carried along).
#
# Results go to $OUT (the device tool's output folder; ./device-out when unset), at most 8
# files, as the tool brings back: summary.txt, session.log (every stage's output),
# gpu_train_bench.json and .md, logs.tar.gz (each stage's log, the test logs, CMake's logs).
#
# Time boxes (seconds; DEVICE_SESSION_BUDGET, default 530, is the whole): with a bundle, env 20,
# bundle 20, gpu_check 140, nccl_gpu_check 40, train_parity 120; without, env 30, build 170,
# gpu_check 120, nccl_gpu_check 45, train_parity 120; the benchmark the rest (at least 160): a
# stage never starts with less than the benchmark's reserve left, so the benchmark always runs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
root=$PWD
build=${1:-build-gpu}
out=${OUT:-$root/device-out}
mkdir -p "$out"
logs=$(mktemp -d)
budget=${DEVICE_SESSION_BUDGET:-530}
bench_reserve=${DEVICE_SESSION_BENCH_RESERVE:-160}
t0=$SECONDS
summary=()
jobs=$(nproc)
bundle_tar=${DEVICE_BUNDLE:-$root/device-bundle.tar.xz}
bundle_root=/tmp/mds-device-bundle
bundle=
if [[ -f $bundle_tar ]]; then
  bundle=$bundle_root/device-bundle
  build=$bundle_root/logs  # gpu_check.sh and nccl_gpu_check.sh write their logs there
  mkdir -p "$build"
  export MDS_SKIP_BUILD=1 MDS_CUDA_TESTS=$bundle/bin/mds_cuda_tests
  export MDS_NCCL_TESTS=$bundle/bin/mds_nccl_tests
  mds=$bundle/bin/mds
else
  [[ -d $build/lib ]] && export LD_LIBRARY_PATH="$root/$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  mds=$build/mds
fi
# The Brown corpus and GPT-2 files: data/ when carried or prepared, else the bundle's.
data_dir=$root/data
[[ ! -f $data_dir/brown_text_document.bin && -n $bundle ]] && data_dir=$bundle/data
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}  # the device image's python3 is the one with torch and transformers
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"

# stage NAME CAP COMMAND...: run COMMAND (a program or a function below) under `timeout`, which
# ends its whole process group, for at most CAP seconds, less when the whole budget (minus the
# benchmark's reserve, for the stages before it) would be overrun.
stage() {
  local name=$1 cap=$2 reserve=$bench_reserve
  shift 2
  [[ $name == bench ]] && reserve=0
  local left=$((budget - (SECONDS - t0) - reserve - 5))
  local limit=$((cap < left ? cap : left))
  local log="$logs/$name.log"
  echo
  echo "=================== $name (limit ${limit}s, at +$((SECONDS - t0))s)"
  if ((limit < 5)); then
    echo "SKIPPED: no time left" | tee "$log"
    summary+=("$(printf '%-16s SKIPPED   (no time left)' "$name")")
    return
  fi
  local s=$SECONDS rc
  timeout --kill-after=10 "$limit" bash -c '"$@"' stage-"$name" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local took=$((SECONDS - s)) verdict
  case $rc in
    0) verdict=PASSED ;;
    124 | 137) verdict=TIMEOUT ;;
    *) verdict="FAILED" ;;
  esac
  echo "=================== $name: $verdict (exit $rc, ${took}s)"
  summary+=("$(printf '%-16s %-9s (exit %d, %ds of %ds)' "$name" "$verdict" "$rc" "$took" "$limit")")
}

env_report() {
  set +e
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(uname -srm); cores: $jobs"
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  nvidia-smi topo -m 2>/dev/null | head -5
  echo "--- toolchain"
  for t in nvcc cmake ninja c++ g++ clang++ ccache mpirun mpicxx compute-sanitizer python3; do
    printf '%-18s %s\n' "$t" "$(command -v "$t" || echo MISSING)"
  done
  nvcc --version 2>/dev/null | tail -2
  cmake --version 2>/dev/null | head -1
  mpirun --version 2>/dev/null | head -1
  echo "--- NCCL"
  ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null
  ldconfig -p 2>/dev/null | grep -i libnccl || echo "no libnccl in ldconfig"
  echo "NCCL_HOME=${NCCL_HOME:-unset}"
  echo "--- C++ libraries mds needs (CMakeLists.txt)"
  local missing=()
  for p in libpcre2-8 sentencepiece cairo openblas zlib icu-uc; do
    pkg-config --exists "$p" 2>/dev/null && echo "pkg-config $p: $(pkg-config --modversion "$p")" ||
      missing+=("pkg-config:$p")
  done
  local mpi_flags=() w
  for w in $(mpicxx --showme:compile 2>/dev/null || mpicxx -compile_info 2>/dev/null); do
    [[ $w == -* ]] && mpi_flags+=("$w")  # MPICH's -compile_info starts with the compiler
  done
  for h in nlohmann/json.hpp CLI/CLI.hpp mpi.h gtest/gtest.h; do
    if echo "#include <$h>" | c++ -std=c++20 -fsyntax-only -x c++ - "${mpi_flags[@]}" 2>/dev/null; then echo "header $h: found"; else missing+=("header:$h"); fi
  done
  if ((${#missing[@]})); then
    [[ -n $bundle ]] && echo "(not needed: the bundle is prebuilt) missing for the mds build: ${missing[*]}" ||
      echo "MISSING for the mds build: ${missing[*]}"
  else
    echo "all build dependencies found"
  fi
  echo "--- Python"
  "$python" - <<'EOF'
import importlib
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print("nccl (torch)", torch.cuda.nccl.version() if torch.cuda.is_available() else None)
for m in ("transformers", "numpy", "triton"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "MISSING", e)
EOF
  return 0
}

# NCCL from the pip wheel (nvidia-nccl-cu13) when the system has none: CMake's find_library
# wants libnccl.so, the wheel has libnccl.so.2, so a folder of links is made for NCCL_HOME.
nccl_from_wheel() {
  [[ -n ${NCCL_HOME:-} ]] && return
  ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h >/dev/null 2>&1 && return
  local d
  d=$("$python" -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null) || return
  [[ -f $d/include/nccl.h ]] || return
  local home=/tmp/nccl-home
  mkdir -p "$home/lib"
  ln -sfn "$d/include" "$home/include"
  for f in "$d"/lib/libnccl.so*; do ln -sf "$f" "$home/lib/"; done
  local so=("$d"/lib/libnccl.so.*)
  [[ -e $home/lib/libnccl.so ]] || ln -sf "${so[0]}" "$home/lib/libnccl.so"
  export NCCL_HOME=$home
  export LD_LIBRARY_PATH="$home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "NCCL from the Python wheel: NCCL_HOME=$NCCL_HOME"
}

build_mds() {
  if [[ ${MDS_SKIP_BUILD:-0} == 1 ]]; then
    echo "MDS_SKIP_BUILD=1: using $build as it is"
    ls -la "$build/mds" "$build/tests/mds_cuda_tests" "$build/tests/mds_nccl_tests" 2>&1
    [[ -x $build/mds && -x $build/tests/mds_cuda_tests ]] || return 1
    ! ldd "$build/mds" "$build/tests/mds_cuda_tests" | grep "not found"  # libraries it lacks
  fi
  local gen=()
  command -v ninja >/dev/null && [[ ! -f $build/CMakeCache.txt ]] && gen=(-G Ninja)
  cmake -B "$build" -S . "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMDS_CUDA=ON || return 1
  cmake --build "$build" -j"$jobs" --target mds mds_cuda_tests || return 1
  if cmake --build "$build" --target help | grep -q mds_nccl_tests; then
    cmake --build "$build" -j"$jobs" --target mds_nccl_tests || return 1
  else
    echo "no mds_nccl_tests target: CMake found no NCCL (see the configure output above)"
  fi
}

# The bundle, unpacked (python's tarfile when there is no xz), its INFO, and mds info through
# its wrapper, which says where it found the machine's libcuda, libcublasLt and libnccl.
unpack_bundle() {
  echo "bundle: $bundle_tar ($(du -h "$bundle_tar" | cut -f1)) -> $bundle"
  rm -rf "$bundle"
  if command -v xz > /dev/null; then
    tar -xJf "$bundle_tar" -C "$bundle_root" || return 1
  else
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$bundle_tar" "$bundle_root" || return 1
  fi
  cat "$bundle/INFO"
  local here
  here=$(bash scripts/device_bundle.sh --source-hash)
  grep -q "^source_hash: $here\$" "$bundle/INFO" ||
    echo "WARNING: the bundle was built from other sources than this tree's (source_hash $here):" \
      "its binaries may not match; rebuild it (bash scripts/device_bundle.sh)"
  ls -l "$bundle/libexec"
  "$bundle/bin/run" mds info
}

bench() {  # bench SECONDS_LEFT
  local mds_args=()
  [[ -x $mds ]] && mds_args=(--mds "$mds")
  [[ -f $data_dir/brown_text_document.bin ]] && mds_args+=(--data "$data_dir/brown_text_document")
  # --time-budget: no run starts after it, so that the last one ends before the stage's timeout
  # (a 1b torch.compile run takes a minute or two); the JSON and .md are rewritten after each row.
  # --profile-iters: last, budget permitting, mds's kernel table per config (where the time goes).
  "$python" bench/gpu_train_bench.py --config all "${mds_args[@]}" --out "$out/gpu_train_bench.json" \
    --time-budget $(($1 > 150 ? $1 - 90 : $1 / 2)) --profile-iters 3
}

export build jobs out logs root python bundle bundle_tar bundle_root mds data_dir
export -f env_report build_mds unpack_bundle bench
if [[ -n $bundle ]]; then
  stage env 20 env_report
  stage bundle 20 unpack_bundle
  export MDS_RUN_QUIET=1  # the bundle stage said where bin/run finds the CUDA libraries
  caps=(140 40)
else
  nccl_from_wheel
  stage env 30 env_report
  stage build 170 build_mds
  caps=(120 45)
fi
if [[ ${MDS_SKIP_BUILD:-0} == 1 ]]; then export MDS_SKIP_BUILD; fi
stage gpu_check "${caps[0]}" bash tests/cuda/gpu_check.sh "$build"
stage nccl_gpu_check "${caps[1]}" bash tests/cuda/nccl_gpu_check.sh "$build"
if [[ -f tests/cuda/gpu_train_parity.sh ]]; then  # CPU and GPU runs of mds train, compared
  stage train_parity 120 env MDS_DATA_DIR="$data_dir" \
    bash tests/cuda/gpu_train_parity.sh "$mds" "$logs/train_parity"
else
  summary+=("$(printf '%-16s SKIPPED   (no tests/cuda/gpu_train_parity.sh)' train_parity)")
fi
stage bench "$budget" bench $((budget - (SECONDS - t0) - 5))

{
  echo "device session: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $((SECONDS - t0)) s of a ${budget} s budget"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  git log -1 --format='commit %h %s' 2>/dev/null
  printf '%s\n' "${summary[@]}"
  grep -h "MISSING" "$logs/env.log" 2>/dev/null
  grep -h -E "^(commit|source_hash|WARNING|bin/run):" "$logs/bundle.log" 2>/dev/null | awk '!seen[$0]++'
  grep -h -E "^(gpu_check|nccl_gpu_check|gpu_train_parity|train_parity):|^FAIL" "$logs"/*.log 2>/dev/null
  [[ -s $out/gpu_train_bench.md ]] && cat "$out/gpu_train_bench.md"
} | tee "$out/summary.txt"

for f in "$logs"/*.log; do
  printf '\n######## %s\n' "$(basename "$f")"
  tail -c 3000000 "$f"
done > "$out/session.log"
cp "$build"/cuda_tests.log "$build"/nccl_tests*.log "$logs/" 2>/dev/null
cp "$build"/CMakeFiles/CMake{Output,Error,ConfigureLog}.* "$logs/" 2>/dev/null
tar -czf "$out/logs.tar.gz" -C "$logs" . 2>/dev/null
rm -rf "$logs"
echo "results in $out:" "$out"/*
