#!/usr/bin/env bash
# `mds launch --dry-run` prints the launcher line a PBS job (fake PBS_NODEFILE) and a Slurm job
# (fake SLURM_JOB_NODELIST + SLURM_JOB_ID) would run, and writes the host file it names; bad
# input (an empty or malformed host file, a Slurm list that does not parse, a world the layout
# cannot use, an unknown flag) exits 2 with one line and starts nothing. `mds info` reports the
# devices, MPI, BLAS, peak FLOP/s and build.
#   bash tests/e2e/launch_dry_run.sh MDS_BINARY SOURCE_DIR
source "$(dirname "$0")/lib/common.sh" "$@"
require_command mpirun
export TMPDIR=$TMP  # the host files mds launch writes
unset PBS_NODEFILE SLURM_JOB_ID SLURM_JOB_NODELIST SLURM_NODELIST MDS_DEVICE MDS_BACKEND
MDS_ABS=$(readlink -f "$MDS")
CORES=$(nproc)
ROOT=""
[[ $(id -u) == 0 ]] && ROOT="--allow-run-as-root "

# --- mds info
"$MDS" info > "$TMP/info"
for want in "^devices   cpu x1: .* ($CORES logical cores)\$" "^backend   mpi " \
  "^mpi       Open MPI v[0-9.]*.*(MPI [0-9]\.[0-9])\$" "^launcher  openmpi (.*mpirun" \
  "^nccl      \(not built\|[0-9]*\.[0-9]*\.[0-9]* (loaded at run time\)" "^blas      OpenBLAS [0-9.]* .*; [0-9]* threads\$" \
  "^peak      [0-9.e+]* TFLOP/s per device for MFU = [0-9]* threads x [0-9.]* GHz x [0-9]* FP32" \
  "^build     [A-Za-z]*, \(GCC\|clang\) [0-9]" "^hosts     1 from local "; do
  grep -q "$want" "$TMP/info" || fail "mds info lacks /$want/: $(cat "$TMP/info")"
done
"$MDS" info --peak-tflops 123.5 | grep -q "^peak      123.5 TFLOP/s per device for MFU = --peak-tflops$" ||
  fail "--peak-tflops is not the peak: $("$MDS" info --peak-tflops 123.5)"
"$MDS" info --json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["device"]["kind"] == "cpu" and j["backend"] == "mpi", j
assert j["peak_flops"] > 0 and j["mpi"]["library"].startswith("Open MPI"), j
' || fail "mds info --json"

# --- PBS: two hosts, two slots each; T=2 on the CPU: one rank per host with all its cores.
printf 'x3005c0s13b0n0\nx3005c0s13b0n0\nx3005c0s13b1n0\nx3005c0s13b1n0\n' > "$TMP/nodefile"
PBS_NODEFILE=$TMP/nodefile "$MDS" launch --dry-run train --tensor-model-parallel-size 2 \
  --num-layers 2 > "$TMP/pbs.out" 2> "$TMP/pbs.err"
[[ $(wc -l < "$TMP/pbs.out") == 1 ]] || fail "want one line on stdout: $(cat "$TMP/pbs.out")"
hostfile=$(sed -n 's/^mds launch: host file \(.*\) (2 host(s))$/\1/p' "$TMP/pbs.err")
[[ -f $hostfile ]] || fail "no host file named: $(cat "$TMP/pbs.err")"
MAP=""
((CORES > 1)) && MAP=" --map-by slot:PE=$CORES"
want="$(command -v mpirun) ${ROOT}-np 2 -npernode 1 --hostfile $hostfile --bind-to core$MAP -x OMP_NUM_THREADS=$CORES -x MDS_BACKEND=mpi $MDS_ABS train --tensor-model-parallel-size 2 --num-layers 2"
[[ $(cat "$TMP/pbs.out") == "$want" ]] || fail "PBS line
 got: $(cat "$TMP/pbs.out")
want: $want"
[[ $(cat "$hostfile") == $'x3005c0s13b0n0 slots=1\nx3005c0s13b1n0 slots=1' ]] ||
  fail "host file: $(cat "$hostfile")"
grep -q "^mds launch: devices cpu x1 (.*, $CORES cores); backend mpi; hosts 2 from PBS ($TMP/nodefile)$" \
  "$TMP/pbs.err" || fail "no detection summary: $(cat "$TMP/pbs.err")"
echo "PBS:   $(cat "$TMP/pbs.out")"

# --- Slurm: a compressed node list, srun inside the allocation; arguments pass through quoted.
SLURM_JOB_ID=4242 SLURM_JOB_NODELIST='nid[001-004,007],gpu12' "$MDS" launch --dry-run train \
  --split 969,30,1 --data-path "my data" > "$TMP/slurm.out" 2> "$TMP/slurm.err"
want="srun -N 6 -n 6 --ntasks-per-node 1 --cpus-per-task $CORES --cpu-bind=cores --export=ALL,OMP_NUM_THREADS=$CORES,MDS_BACKEND=mpi $MDS_ABS train --split 969,30,1 --data-path 'my data'"
got=$(cat "$TMP/slurm.out")
[[ ${got/#*srun /srun } == "$want" ]] || fail "Slurm line
 got: $got
want: $want"
grep -q "hosts 6 from Slurm (SLURM_JOB_NODELIST=nid\[001-004,007\],gpu12)" "$TMP/slurm.err" ||
  fail "no Slurm summary: $(cat "$TMP/slurm.err")"
echo "Slurm: $got"

# --- --hostfile in MPICH syntax, --mpi mpich, a program instead of an mds command.
printf '# nodes\nn1:4\nn2:4\n' > "$TMP/hosts"
"$MDS" launch --dry-run --mpi mpich --hostfile "$TMP/hosts" --np 4 hostname > "$TMP/mpich.out" \
  2> "$TMP/mpich.err"
grep -q -- "-n 4 -ppn 2 -f $TMP/mds-hostfile\.[A-Za-z0-9]* -genv OMP_NUM_THREADS $((CORES / 2 > 0 ? CORES / 2 : 1)) -genv MDS_BACKEND mpi -bind-to .* hostname\$" \
  "$TMP/mpich.out" || fail "MPICH line: $(cat "$TMP/mpich.out" "$TMP/mpich.err")"

# --- Bad input: exit 2, one line on stderr, nothing on stdout (nothing started).
expect_error() {  # expect_error WANT_TEXT ENV... -- ARGS...
  local want=$1 envs=()
  shift
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  set +e
  env "${envs[@]}" "$MDS" launch --dry-run "$@" > "$TMP/e.out" 2> "$TMP/e.err"
  local rc=$?
  set -e
  [[ $rc == 2 ]] || fail "exit $rc (want 2) for $*: $(cat "$TMP/e.err")"
  [[ $(wc -l < "$TMP/e.err") == 1 && ! -s $TMP/e.out ]] ||
    fail "want one error line and no command for $*: $(cat "$TMP/e.out" "$TMP/e.err")"
  grep -qF -- "$want" "$TMP/e.err" || fail "want '$want' for $*: $(cat "$TMP/e.err")"
}
: > "$TMP/empty"
printf 'good\nbad slots=two\n' > "$TMP/badhosts"
expect_error "PBS node file $TMP/empty lists no hosts" PBS_NODEFILE="$TMP/empty" -- train
expect_error "host file $TMP/empty lists no hosts" -- --hostfile "$TMP/empty" train
expect_error "host file $TMP/badhosts line 2: 'bad slots=two'" -- --hostfile "$TMP/badhosts" train
expect_error "SLURM_JOB_NODELIST='nid[001-004' does not parse" SLURM_JOB_ID=1 \
  SLURM_JOB_NODELIST='nid[001-004' -- train
expect_error "--np 3 does not fit the layout's T x P x S = 2 x 1 x 1 = 2" -- --np 3 train \
  --tensor-model-parallel-size 2
expect_error "MDS_DEVICE=cuda but no CUDA GPU is usable" MDS_DEVICE=cuda -- train
expect_error "unknown flag --nodes" -- --nodes 2 train
expect_error "no COMMAND to launch" -- --np 2
expect_error "is neither an mds command" -- no-such-program-mds
expect_error "--mpi lam: want auto, openmpi, mpich, pals or srun" -- --mpi lam train
echo "PASS"
