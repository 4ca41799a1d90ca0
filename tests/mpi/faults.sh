#!/usr/bin/env bash
# Faults in a distributed run end every rank, quickly, with a message that says where and why.
#   faults.sh MPIEXEC FAULT_PROGRAM
# Each case runs `mpiexec -np 3` under `timeout`, with SIGKILL 10 s after the SIGTERM (a launcher
# can hang in its own teardown): a hang is a failure, never a wait.
set -uo pipefail
mpiexec=$1 program=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# run_case NAME WANT_RC(zero|nonzero) MAX_SECONDS "stderr must contain" [mode]
run_case() {
  local name=$1 want=$2 max_s=$3 needle=$4 mode=${5:-$1} rc=0 start=$SECONDS
  timeout -k 10 60 "$mpiexec" -np 3 --oversubscribe "$program" "$mode" >"$work/out" 2>"$work/err" || rc=$?
  local took=$((SECONDS - start)) problem=""
  if ((rc == 124)); then
    problem="hung (killed after 60 s)"
  elif [[ $want == zero && $rc -ne 0 ]]; then
    problem="exit $rc, expected 0"
  elif [[ $want == nonzero && $rc -eq 0 ]]; then
    problem="exit 0, expected a failure"
  elif ((took > max_s)); then
    problem="took $took s, expected at most $max_s s"
  elif ! grep -qF -- "$needle" "$work/err" "$work/out"; then
    problem="the output does not contain '$needle'"
  fi
  if [[ -n $problem ]]; then
    failures=$((failures + 1))
    echo "FAIL: $name: $problem"
    sed 's/^/    /' "$work/err" | head -n 20
  else
    echo "ok:   $name (exit $rc, $took s): $(grep -F -- "$needle" "$work/err" "$work/out" | head -n 1)"
  fi
}

run_case ok zero 30 "ok"
run_case throw nonzero 30 "rank 1: fault_program: error: planted fault in micro-batch 1 of step 2"
GRADACCUM_DIST_TIMEOUT_S=3 run_case stall nonzero 25 "did not complete within 3 s"
run_case mismatch nonzero 30 "the window's configuration differs between ranks: rank 0 has 'parameter 0 'weight': [8, 4] f32', rank 1 has 'parameter 0 'weight': [9, 4] f32'"
# The mismatch is reported once (rank 0), not once per rank.
if [[ $(grep -c "differs between ranks" "$work/err") -ne 1 ]]; then
  failures=$((failures + 1))
  echo "FAIL: mismatch: reported $(grep -c "differs between ranks" "$work/err") times, expected once"
fi

if ((failures)); then
  echo "faults: $failures failed"
  exit 1
fi
echo "faults: all passed"
