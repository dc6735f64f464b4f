#!/usr/bin/env bash
# bin/run of a device bundle (scripts/device_bundle.sh copies this file there): runs a bundled
# program under the bundle's own loader and glibc, so it needs nothing from the machine but the
# CUDA driver (libcuda.so.1), libcublasLt.so.13 and, for mds_nccl_tests and several GPU
# processes of mds (which loads it at run time), libnccl.so.2.
#
#   BUNDLE/bin/run PROGRAM [ARGS...]    PROGRAM: mds, mds_cuda_tests or mds_nccl_tests
#   BUNDLE/bin/mds [ARGS...]            bin/mds, bin/mds_cuda_tests, bin/mds_nccl_tests are links
#                                       to bin/run: a single executable path for other tools
#
# It runs  BUNDLE/lib/ld-linux-x86-64.so.2 --library-path BUNDLE/lib:CUDA_DIRS
#          --argv0 BUNDLE/bin/PROGRAM BUNDLE/libexec/PROGRAM ARGS...
# --library-path replaces LD_LIBRARY_PATH for that process only: its children (mpirun, python)
# keep the machine's own libraries. CUDA_DIRS are found now, the first folder holding each of
# libcublasLt.so.13, libnccl.so.2 and libcuda.so.1 among MDS_CUDA_LIB_DIRS (colon-separated,
# searched first), /usr/local/cuda*/lib64, /usr/local/nvidia/lib64, /usr/lib/x86_64-linux-gnu,
# /usr/lib64, and the Python wheels (site-packages/nvidia/*/lib, torch/lib). One line on stderr
# says which were found (MDS_RUN_QUIET=1 silences it). A library found nowhere is left to the
# loader's cache (/etc/ld.so.cache).
#
# mds sees /proc/self/exe = the loader, so MDS_SELF is set to BUNDLE/bin/mds: `mds launch`
# starts its ranks through this wrapper (src/mds/tools/launch_cmd.cpp).
set -euo pipefail
self=$(readlink -f "${BASH_SOURCE[0]}")
bundle=$(cd "$(dirname "$self")/.." && pwd)
name=$(basename "$0")
if [[ $name == run ]]; then
  if (($# == 0)); then
    echo "usage: $0 PROGRAM [ARGS...]   (PROGRAM: $(ls "$bundle/libexec" | tr '\n' ' '))" >&2
    exit 2
  fi
  name=$1
  shift
fi
exe=$bundle/libexec/$name
if [[ ! -x $exe ]]; then
  echo "$0: no bundled program '$name' (the bundle has: $(ls "$bundle/libexec" | tr '\n' ' '))" >&2
  exit 2
fi

candidates=()
IFS=: read -ra extra <<< "${MDS_CUDA_LIB_DIRS:-}"
candidates+=("${extra[@]}")
shopt -s nullglob
candidates+=(/usr/local/cuda/lib64 /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib
             /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib)

wanted=(libcublasLt.so.13 libnccl.so.2 libcuda.so.1)
declare -A where=()
search() {
  local lib d
  for lib in "${wanted[@]}"; do
    [[ -n ${where[$lib]:-} ]] && continue
    for d in "$@"; do
      if [[ -n $d && -e $d/$lib ]]; then
        where[$lib]=$d
        break
      fi
    done
  done
}
search "${candidates[@]}"
if ((${#where[@]} < ${#wanted[@]})); then  # the pip wheels (nvidia-cublas, nvidia-nccl, torch)
  python=${PYTHON:-python3}
  wheels=()
  if command -v "$python" > /dev/null; then
    while IFS= read -r sp; do
      wheels+=("$sp"/nvidia/*/lib "$sp"/torch/lib)
    done < <("$python" -c '
import site, sys
dirs = list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()]
print("\n".join(dirs + [p for p in sys.path if p.endswith("-packages")]))' 2> /dev/null)
  fi
  search "${wheels[@]}"
fi

dirs=()
report=()
for lib in "${wanted[@]}"; do
  d=${where[$lib]:-}
  report+=("$lib: ${d:-NOT FOUND}")
  [[ -z $d || " ${dirs[*]} " == *" $d "* ]] || dirs+=("$d")
done
printf -v line '%s; ' "${report[@]}"
[[ ${MDS_RUN_QUIET:-0} == 1 ]] || echo "bin/run: ${line%; }" >&2
libpath=$bundle/lib
for d in "${dirs[@]}"; do libpath+=:$d; done

[[ $name == mds ]] && export MDS_SELF=$bundle/bin/mds
exec "$bundle/lib/ld-linux-x86-64.so.2" --library-path "$libpath" --argv0 "$bundle/bin/$name" \
  "$exe" "$@"
