#!/usr/bin/env bash
# The test command (README, CI): installs what is needed, then builds and runs these suites:
#   default   CUDA build for sm_90 when nvcc exists (GPU tests run on a GPU, skip without one)
#   emu-asan  CPU and emulated-device tests under ASan + UBSan + LeakSanitizer, the emulated ones
#             under the forward and the reverse thread schedule
#   emu-tsan  emulated-device tests under ThreadSanitizer (shared-memory races)
#   fuzz      the .npy, IDX and state-file readers under libFuzzer, GRADACCUM_FUZZ_SECONDS each
#             (default 40)
# and on request (GRADACCUM_SUITES): emu, the emulated-device tests in a release build without
# sanitizers (left out of the default run: emu-asan runs the same tests under both schedules,
# and its build was the CI's longest step after this one's), and cpu (GRADACCUM_CUDA=OFF).
# Ends with one line "test: N passed, N failed, N skipped" over all suites; exits non-zero on
# any failure. GRADACCUM_SUITES="default emu ..." runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

suites=${GRADACCUM_SUITES:-"default emu-asan emu-tsan fuzz"}
have_cuda_headers=0
[[ -f /usr/local/cuda/include/cuda_runtime_api.h ]] && have_cuda_headers=1
jobs=$(nproc)
log_dir=build/test-logs
mkdir -p "$log_dir"

passed=0 failed=0 skipped=0 broken=()
count_ctest() {  # adds a ctest log's results to the totals
  local log=$1 total fail skip
  total=$(grep -Eo 'tests failed out of [0-9]+' "$log" | awk '{s+=$5} END {print s+0}')
  fail=$(grep -Eo '[0-9]+ tests failed out of' "$log" | awk '{s+=$1} END {print s+0}')
  skip=$(grep -Ec '\(Skipped\)$' "$log")
  passed=$((passed + total - fail - skip)) failed=$((failed + fail)) skipped=$((skipped + skip))
}

run_workflow() {  # configure + build + test one workflow preset
  local preset=$1 log="$log_dir/$1.log" start=$SECONDS rc=0
  echo "== $preset =="
  CMAKE_BUILD_PARALLEL_LEVEL=$jobs CTEST_PARALLEL_LEVEL=$jobs \
    cmake --workflow --preset "$preset" >"$log" 2>&1 || rc=$?
  grep -E '^(Executing workflow step|[0-9]+% tests passed)' "$log" | sed 's/^/   /'
  count_ctest "$log"
  if ((rc == 0)); then
    echo "   $preset: ok ($((SECONDS - start)) s)"
  else
    echo "   $preset: FAILED, exit $rc ($((SECONDS - start)) s); log: $log"
    grep -E '(\*\*\*Failed|\*\*\*Exception|Timeout|FAILED:|error:)' "$log" | head -n 40
    tail -n 40 "$log"
    broken+=("$preset")
  fi
}

for suite in $suites; do
  case $suite in
    default) run_workflow default ;;
    emu | emu-asan | emu-tsan)
      if ((have_cuda_headers)); then run_workflow "$suite"; else echo "== $suite: skipped (no CUDA toolkit headers) =="; fi ;;
    cpu) run_workflow cpu ;;
    fuzz)
      echo "== fuzz =="
      if bash scripts/fuzz.sh "${GRADACCUM_FUZZ_SECONDS:-40}" >"$log_dir/fuzz.log" 2>&1; then
        passed=$((passed + 1)); echo "   fuzz: ok"
      else
        failed=$((failed + 1)); broken+=(fuzz); echo "   fuzz: FAILED"; tail -n 40 "$log_dir/fuzz.log"
      fi ;;
    *) echo "unknown suite '$suite'"; broken+=("$suite") ;;
  esac
done

echo
echo "test: $passed passed, $failed failed, $skipped skipped"
if ((${#broken[@]})); then
  echo "failed suites: ${broken[*]}"
  exit 1
fi
