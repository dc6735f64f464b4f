#!/usr/bin/env bash
# The CUDA backend's checks on a machine with a GPU (an H100/H200): build with MDS_CUDA=ON for
# sm_90a, run every CUDA test, fp32 and bf16 (none may skip there; after a failure, each suite
# again in its own process, since a device fault fails every later test), then the binary under
# compute-sanitizer (out-of-bounds accesses, races in shared memory, uninitialised reads); in
# between it prints the attention throughput (cuda_attention_throughput_test.cpp, no threshold).
# Prints a summary. MDS_SKIP_BUILD=1 skips the configure and build (tests/cuda/device_session.sh
# with a carried build); MDS_CUDA_TESTS=PATH runs that test binary instead of
# BUILD/tests/mds_cuda_tests (the device bundle's bin/mds_cuda_tests, scripts/device_bundle.sh);
# the logs still go to the build dir.
#   bash tests/cuda/gpu_check.sh [build-dir]       (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
if [[ ${MDS_SKIP_BUILD:-0} != 1 ]]; then  # 1: a build dir made elsewhere, used as it is
  cmake -B "$build" -S . -DCMAKE_BUILD_TYPE=Release -DMDS_CUDA=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target mds_cuda_tests
fi
bin=${MDS_CUDA_TESTS:-$build/tests/mds_cuda_tests}
mkdir -p "$build"
status=0
set +e
"$bin" 2>&1 | tee "$build/cuda_tests.log"
rc=${PIPESTATUS[0]}
if grep -q "SKIPPED" "$build/cuda_tests.log"; then
  echo "FAIL: CUDA tests skipped on a machine that has a GPU" >&2
  status=1
fi
# A failure may be a device fault, which is sticky: every later test in that process fails too.
# Then each suite runs again in a process of its own, so the summary names the suites that
# really fail (one GPU session is short: it must say as much as it can).
if ((rc != 0)); then
  status=1
  failing=()
  while read -r suite; do
    "$bin" --gtest_filter="$suite.*" --gtest_brief=1 > "$build/suite.log" 2>&1 ||
      { failing+=("$suite"); tail -20 "$build/suite.log"; }
  done < <("$bin" --gtest_list_tests | grep -v '^ ' | sed 's/\. *#.*$//; s/\.$//')
  echo "gpu_check: suites failing on their own: ${failing[*]:-none (the first run's failures were one fault's aftermath)}"
fi
# Throughput of the attention implementations (a measurement, no threshold; disabled by default).
"$bin" --gtest_also_run_disabled_tests --gtest_filter='*AttentionThroughput*' 2>&1 |
  grep -E "^attention|FAILED|OK" | tee "$build/attention_throughput.log"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
[[ -x $sanitizer ]] || echo "compute-sanitizer not found: the sanitizer runs are skipped"
for tool in memcheck racecheck initcheck; do
  [[ -x $sanitizer ]] || break
  echo "== compute-sanitizer --tool $tool"
  # --target-processes all: a wrapper script (the bundle's) execs the real binary. Without the
  # caching allocator each buffer is its own allocation, so memcheck sees its end.
  MDS_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool "$tool" --target-processes all --error-exitcode 3 "$bin" --gtest_brief=1 \
    --gtest_filter='-*m256_k768_n1024*' 2>&1 | tail -5  # the big GEMMs (fp32, bf16) are slow there
  ((PIPESTATUS[0] == 0)) || status=1
done
if ((status == 0)); then
  echo "gpu_check: all CUDA tests ran and passed"
else
  echo "gpu_check: FAILED (see above)"
fi
exit "$status"
