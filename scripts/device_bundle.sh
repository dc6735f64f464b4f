#!/usr/bin/env bash
# Builds the CUDA mds HERE (a development machine with the build dependencies and CUDA 13) into
# one self-contained tarball that a GPU machine without them runs as is: the binaries, every
# shared library they load (glibc and its loader included, since the GPU machine's glibc may be
# older than this one's) except the CUDA driver, cuBLASLt and NCCL, which come from that machine,
# and the Brown corpus with the GPT-2 tokenizer files.
#
#   bash scripts/device_bundle.sh [OUT]        (default: device-bundle.tar.xz in the repo root)
#   bash scripts/device_bundle.sh --source-hash   (prints the hash of the sources, see INFO)
#
# What a session with the GPU machine does:
#   1. here: bash scripts/device_bundle.sh     (2.5 min from a fresh build-bundle/ with a warm
#      ccache on 2 cores, 20 s when nothing changed; a cold ccache takes much longer, perhaps
#      15+ min; the tarball is ~22 MiB, well under the 64 MiB carry limit)
#   2. the device tool: carry ["device-bundle.tar.xz"],
#      command "PYTHONUNBUFFERED=1 bash tests/cuda/device_session.sh", timeout_s 600.
#      device_session.sh unpacks the bundle and runs the checks with its binaries (no build).
#
# Steps: configure build-bundle/ (Release, MDS_CUDA=ON, MDS_MARCH=x86-64-v3 so that the host code
# runs on any AVX2 server CPU, MDS_CUDA_ARCHS from the environment, default 90a: H100/H200);
# build mds, mds_cuda_tests and, when CMake found NCCL, mds_nccl_tests (ccache, -j$(nproc));
# assemble device-bundle/:
#   bin/run                  the wrapper (scripts/device_bundle_run.sh): bin/run mds train ...
#   bin/mds, bin/mds_cuda_tests, bin/mds_nccl_tests   links to bin/run (one executable path each)
#   libexec/                 the real binaries, stripped
#   lib/                     the libraries from ldd (+ all of glibc's and ld-linux-x86-64.so.2)
#   data/                    brown_text_document.{bin,idx}, gpt2-vocab.json, gpt2-merges.txt
#   INFO                     the commit, the source hash (device_session.sh compares it), flags
# verify it here through the bundled loader with an empty LD_LIBRARY_PATH (every library but the
# CUDA ones resolves inside the bundle; mds info; mds_cuda_tests, whose GPU tests skip here; a
# 2-iteration mds train on the bundled data), then tar -cJ it; fails when over 60 MiB.
#
# Limits: mpirun is the GPU machine's own (mds launch, 2-rank NCCL tests): OpenMPI's plugins are
# not bundled, so multi-rank runs need an OpenMPI 4.1 there. One process (a world of one, the
# default without a launcher) never initialises MPI and needs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The source hash: the files that make the binaries. INFO records it; device_session.sh asks
# `bash scripts/device_bundle.sh --source-hash` for the tree's own, to tell a stale bundle.
source_hash() {
  find CMakeLists.txt src tools tests -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \
    -o -name '*.cuh' -o -name CMakeLists.txt \) | LC_ALL=C sort | xargs -d '\n' sha256sum |
    sha256sum | cut -c1-16
}
if [[ ${1:-} == --source-hash ]]; then
  source_hash
  exit 0
fi
root=$PWD
out=${1:-$root/device-bundle.tar.xz}
[[ $out == /* ]] || out=$PWD/$out
build=$root/build-bundle
dir=$root/device-bundle
max_mib=60
t0=$SECONDS
say() { printf '\n== device_bundle: %s (+%ds)\n' "$*" $((SECONDS - t0)); }

say "configure $build"
mkdir -p "$build"
cmake -B "$build" -S . -DCMAKE_BUILD_TYPE=Release -DMDS_CUDA=ON -DMDS_MARCH=x86-64-v3 \
  -DMDS_CUDA_ARCHS="${MDS_CUDA_ARCHS:-90a}" -DMDS_TESTS=ON > "$build/configure.log" ||
  { cat "$build/configure.log"; exit 1; }
targets=(mds mds_cuda_tests)
grep -q mds_nccl_tests <<< "$(cmake --build "$build" --target help)" && targets+=(mds_nccl_tests)
say "build ${targets[*]}"
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
bins=("$build/mds" "$build/tests/mds_cuda_tests")
[[ " ${targets[*]} " == *" mds_nccl_tests "* ]] && bins+=("$build/tests/mds_nccl_tests")

tok=(--tokenizer-type GPT2BPETokenizer --vocab-file data/gpt2-vocab.json
     --merge-file data/gpt2-merges.txt)
if [[ ! -f data/brown_text_document.idx ]]; then  # as scripts/quickstart.sh makes it
  say "prepare the Brown corpus"
  bash scripts/prepare_data.sh data
  "$build/mds" preprocess --input data/brown.jsonl --output-prefix data/brown --json-keys text \
    "${tok[@]}" --append-eod --workers "$(nproc)"
fi

say "assemble $dir"
rm -rf "$dir"
mkdir -p "$dir"/{bin,libexec,lib,data}
for b in "${bins[@]}"; do
  cp "$b" "$dir/libexec/"
  strip --strip-unneeded "$dir/libexec/$(basename "$b")"
  ln -s run "$dir/bin/$(basename "$b")"
done
cp scripts/device_bundle_run.sh "$dir/bin/run"
chmod +x "$dir/bin/run"

# The CUDA driver (libcuda, loaded by the static cudart), cuBLASLt and NCCL are the machine's.
cuda_lib='^lib(cuda|cublas|cublasLt|cudart|nccl)\.so'
if ldd "${bins[@]}" | grep "not found"; then
  echo "FAIL: libraries not found (above)" >&2
  exit 1
fi
while read -r name path; do
  [[ $name =~ $cuda_lib ]] || cp -L "$path" "$dir/lib/$name"
done < <(ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u)
# All of glibc, not only what ldd lists: libcuda.so.1, libcublasLt and libnccl (the machine's)
# load libdl, librt, libpthread, which must match the bundled libc.
multiarch=/lib/$(gcc -print-multiarch)
for lib in libc.so.6 libm.so.6 libmvec.so.1 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 \
  libresolv.so.2 libanl.so.1 libstdc++.so.6 libgcc_s.so.1; do
  [[ -e $dir/lib/$lib ]] || cp -L "$multiarch/$lib" "$dir/lib/$lib"
done
loader=$(ldd "$build/mds" | awk '$1 ~ /^\/.*ld-linux/ { print $1 }')
cp -L "$loader" "$dir/lib/ld-linux-x86-64.so.2"

cp -L data/brown_text_document.bin data/brown_text_document.idx data/gpt2-vocab.json \
  data/gpt2-merges.txt "$dir/data/"

{
  echo "commit: $(git log -1 --format='%h %s' 2> /dev/null || echo unknown)"
  git diff --quiet HEAD -- src tools tests CMakeLists.txt 2> /dev/null || echo "uncommitted changes: yes"
  echo "source_hash: $(source_hash)"
  echo "built: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $(gcc --version | head -1)"
  echo "cuda: $(nvcc --version 2> /dev/null | tail -1 || echo unknown); archs ${MDS_CUDA_ARCHS:-90a}"
  echo "march: x86-64-v3; programs: ${bins[*]##*/}"
} > "$dir/INFO"
cat "$dir/INFO"

say "verify through the bundled loader (LD_LIBRARY_PATH empty)"
export LD_LIBRARY_PATH=
outside=0
for b in "$dir"/libexec/*; do
  # Where each library resolves with the bundle's library path: inside it, or a CUDA one.
  while read -r name path; do
    if [[ $path != "$dir/lib/"* && ! $name =~ $cuda_lib ]]; then
      echo "FAIL: $(basename "$b") loads $name from $path, outside the bundle" >&2
      outside=1
    fi
  done < <("$dir/lib/ld-linux-x86-64.so.2" --library-path "$dir/lib" --list "$b" |
    awk '$2 == "=>" { print $1, $3 }')
done
((outside == 0)) || exit 1
echo "every library but libcuda/libcublasLt/libnccl resolves inside the bundle"
"$dir/bin/run" mds info
"$dir/bin/mds_cuda_tests" --gtest_brief=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && "$dir/bin/mds" train --num-layers 2 --hidden-size 64 --num-attention-heads 4 \
  --num-key-value-heads 2 --seq-length 64 --micro-batch-size 2 --global-batch-size 4 \
  --train-iters 2 --lr 1e-3 --log-interval 1 --eval-iters 1 --data-path "$dir/data/brown_text_document" \
  --tokenizer-type GPT2BPETokenizer --vocab-file "$dir/data/gpt2-vocab.json" \
  --merge-file "$dir/data/gpt2-merges.txt" --data-cache-path "$tmp/cache" \
  --log-json "$tmp/run.jsonl") | tee "$tmp/train.log"
[[ $(grep -c '^ iteration=' "$tmp/train.log") == 2 && -s $tmp/run.loss.png ]] ||
  { echo "FAIL: mds train did not log 2 iterations and draw the loss curve" >&2; exit 1; }

say "pack $out"
rm -f "$out"
XZ_OPT=${XZ_OPT:--6 -T0} tar -C "$(dirname "$dir")" -cJf "$out" "$(basename "$dir")"
bytes=$(stat -c %s "$out")
echo "$out: $((bytes / 1024 / 1024)) MiB ($bytes bytes), unpacked $(du -sh "$dir" | cut -f1)"
if ((bytes > max_mib * 1024 * 1024)); then
  echo "FAIL: over $max_mib MiB: the device tool carries at most 64 MiB" >&2
  exit 1
fi
say "done"
