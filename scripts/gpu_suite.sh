#!/usr/bin/env bash
# The GPU suite, for a machine with an NVIDIA GPU, in one call that fits a short lease:
#   build for sm_90 -> all tests (gpu tests must run, not skip), with compute-sanitizer memcheck,
#   racecheck and synccheck over the GPU tests alongside -> parity with the emulated device ->
#   benchmarks (GPU rows) and every row against its ceiling -> PyTorch side by side -> a short
#   pass/fail and timing table, last.
# What it prints also goes to $OUT/gpu_suite.log (or build/gpu-suite/ without $OUT), and each
# step's full output to build/gpu-suite/files/, packed at the end into
# $OUT/gpu_suite_files.tar.gz (two files: what the device tool brings back is limited to eight).
# The caller commits them under bench/results/ with the date, commit and device.
#
# Time: the whole suite ends within GRADACCUM_SUITE_BUDGET_S seconds (default 480), whatever
# happens: every step runs under `timeout` with what is left, a step that runs out is a TIMEOUT
# row, and the table is always printed. Steps that time nothing (tests, sanitizers) run side by
# side; the timed ones (benchmarks, PyTorch) run alone.
#
#   scripts/gpu_suite.sh prepare   # on the development machine: stage GoogleTest sources and
#                                  # Google Benchmark into build/gpu-deps (carry that path)
#   GRADACCUM_COMMIT=$(git rev-parse --short HEAD) scripts/gpu_suite.sh
#                                  # on the GPU machine (its copy of the tree has no .git: the
#                                  # commit is passed in)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ "${1:-}" == prepare ]]; then
  # The GPU machine has no GoogleTest or Google Benchmark package: GoogleTest is built from its
  # sources there, Google Benchmark is the Debian library with a config of its own (relative
  # paths: the tree lands elsewhere on that machine).
  deps=build/gpu-deps
  rm -rf "$deps" && mkdir -p "$deps/lib/cmake-benchmark" "$deps/include"
  cp -r /usr/src/googletest "$deps/googletest"
  cp -r /usr/include/benchmark "$deps/include/"
  cp -a /usr/lib/x86_64-linux-gnu/libbenchmark.so* /usr/lib/x86_64-linux-gnu/libbenchmark_main.a "$deps/lib/"
  real=$(basename "$(readlink -f /usr/lib/x86_64-linux-gnu/libbenchmark.so)")
  cat >"$deps/lib/cmake-benchmark/benchmarkConfig.cmake" <<CONFIG
# Google Benchmark staged by scripts/gpu_suite.sh prepare.
get_filename_component(_ga_bm "\${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET benchmark::benchmark)
  find_package(Threads REQUIRED)
  add_library(benchmark::benchmark SHARED IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_ga_bm}/lib/$real"
    INTERFACE_INCLUDE_DIRECTORIES "\${_ga_bm}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(benchmark::benchmark_main STATIC IMPORTED)
  set_target_properties(benchmark::benchmark_main PROPERTIES
    IMPORTED_LOCATION "\${_ga_bm}/lib/libbenchmark_main.a"
    INTERFACE_LINK_LIBRARIES benchmark::benchmark)
endif()
set(benchmark_FOUND TRUE)
CONFIG
  echo "staged GPU-machine dependencies in $deps (carry that path)"
  exit 0
fi

dest=${OUT:-$root/build/gpu-suite}
out=$root/build/gpu-suite/files
rm -rf "$out" && mkdir -p "$out" "$dest"
exec > >(tee "$dest/gpu_suite.log") 2>&1

# The toolkit's programs (nvcc, compute-sanitizer) where an image leaves them off the PATH.
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  [[ -d $d && ":$PATH:" != *":$d:"* ]] && PATH=$PATH:$d
done
budget=${GRADACCUM_SUITE_BUDGET_S:-480}
preset=${GRADACCUM_SUITE_PRESET:-cuda}  # another (default) only to try the script without a GPU
deadline=$((SECONDS + budget))
declare -a table
row() { table+=("$(printf '%-30s %-7s %s' "$1" "$2" "$3")"); }
# The table, last; the exit status is 1 when any row did not pass.
finish() {
  local status=$? r
  echo
  echo "== summary ($((SECONDS)) s of a ${budget} s budget) =="
  printf '%s\n' "${table[@]}" | tee "$out/summary.txt"
  tar -czf "$dest/gpu_suite_files.tar.gz" -C "$out/.." files
  for r in "${table[@]}"; do
    [[ $r =~ \ (FAIL|TIMEOUT)\  ]] && status=1
  done
  exit "$status"
}
trap finish EXIT
# Seconds a step may take: its cap, or what is left before the deadline less a reserve for the
# steps after it (never below 5).
allow() {
  local cap=$1 reserve=${2:-0} left=$((deadline - SECONDS - ${2:-0}))
  ((left < cap)) && cap=$left
  ((cap < 5)) && cap=5
  echo "$cap"
}
# PASS, FAIL or TIMEOUT from an exit status (timeout(1) gives 124).
status_of() { case $1 in 0) echo PASS ;; 124 | 137) echo TIMEOUT ;; *) echo FAIL ;; esac; }

echo "# gradaccum GPU suite"
echo "date:   $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit: ${GRADACCUM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null |
  sed 's/^/device: /'
nvcc --version | tail -n 1
python3 -c 'import torch; print("torch:", torch.__version__)' 2>/dev/null || echo "torch: none"
echo "budget: ${budget} s"

extra=()
[[ -d build/gpu-deps/googletest ]] && extra+=(-DGRADACCUM_GTEST_SOURCE_DIR="$root/build/gpu-deps/googletest")
[[ -d build/gpu-deps/lib/cmake-benchmark ]] && extra+=(-Dbenchmark_DIR="$root/build/gpu-deps/lib/cmake-benchmark")

# ---- build ----
t0=$SECONDS
timeout "$(allow 300 150)" bash -c "cmake --preset $preset ${extra[*]} >'$out/configure.log' 2>&1 &&
  cmake --build --preset $preset -j $(nproc) >'$out/build.log' 2>&1"
rc=$?
if [[ $rc != 0 ]]; then
  row "build (sm_90)" "$(status_of $rc)" "see build.log ($((SECONDS - t0)) s)"
  tail -n 50 "$out"/configure.log "$out"/build.log
  exit 1
fi
row "build (sm_90)" PASS "$((SECONDS - t0)) s"
bdir=build/$preset
gpu_tests=$bdir/tests/gradaccum_gpu_tests

# ---- tests and sanitizers, side by side (nothing here is timed) ----
t0=$SECONDS
cap=$(allow 240 150)
# The gpu-labelled tests must all run; the others may skip what this machine lacks (OpenBLAS).
timeout "$cap" bash -c "ctest --test-dir $bdir --output-on-failure -j 8 -L gpu >'$out/ctest-gpu.log' 2>&1;
  g=\$?; ctest --test-dir $bdir --output-on-failure -j 8 -LE gpu >'$out/ctest-other.log' 2>&1;
  o=\$?; exit \$((g ? g : o))" &
ctest_pid=$!
# The sanitizers run the GPU test binary (its emulator-sized tests); the death tests and the
# programs' tests are ctest's.
declare -A san_pid
command -v compute-sanitizer >/dev/null || echo "compute-sanitizer: not on the PATH" >&2
for tool in memcheck racecheck synccheck; do
  timeout "$cap" compute-sanitizer --tool $tool --error-exitcode 99 "$gpu_tests" --gtest_brief=1 \
    >"$out/sanitizer-$tool.log" 2>&1 &
  san_pid[$tool]=$!
done
wait "$ctest_pid"
rc=$?
for part in gpu other; do
  f=$out/ctest-$part.log
  tests_line=$(grep -E 'tests passed' "$f" 2>/dev/null | tail -n 1)
  skips=$(grep -c '(Skipped)' "$f" 2>/dev/null)
  failed=$(grep -cE '\*\*\*Failed|\*\*\*Timeout|\*\*\*Exception' "$f" 2>/dev/null)
  st=PASS
  ((failed)) && st=FAIL
  [[ $part == gpu && ${skips:-0} != 0 ]] && st=FAIL  # on a GPU machine no GPU test may skip
  [[ -z $tests_line ]] && st=$(status_of "$rc") && [[ $st == PASS ]] && st=FAIL
  row "ctest ($part)" "$st" "${tests_line:-no summary}; ${skips:-0} skipped ($((SECONDS - t0)) s)"
done
for tool in memcheck racecheck synccheck; do
  wait "${san_pid[$tool]}"
  rc=$?
  row "compute-sanitizer $tool" "$(status_of $rc)" \
    "$(grep -E 'ERROR SUMMARY' "$out/sanitizer-$tool.log" | tail -n 1 | grep . ||
      echo "no summary: see sanitizer-$tool.log") ($((SECONDS - t0)) s)"
done

# ---- parity with the emulated device (tests/data/emu_parity) ----
timeout "$(allow 60 120)" "$gpu_tests" --gtest_filter='Kernels/EmuParity.*' >"$out/emu_parity.log" 2>&1
rc=$?
grep '^emu parity:' "$out/emu_parity.log"
cases=$(grep -c '^emu parity:' "$out/emu_parity.log")
st=$(status_of $rc)
((cases == 0)) && st=FAIL  # skipped: no device
row "parity with the emulator" "$st" \
  "$cases cases, largest difference $(grep -o 'max [0-9]* ulp' "$out/emu_parity.log" | sort -k2 -n | tail -n 1 | cut -d' ' -f2-)"

# ---- benchmarks: the GPU rows, alone on the machine ----
declare -A bench_filter=(
  [bench_kernels]='dev:1|BM_Copy/1/|BM_Accumulate/1/|BM_SgdUpdate/1/'
  [bench_step]='dev:1|BM_LaunchOverhead'
)
jsons=()
for name in bench_kernels bench_step; do
  b=$bdir/bench/$name
  [[ -x $b ]] || { row "$name" FAIL "not built"; continue; }
  t0=$SECONDS
  timeout "$(allow 150 60)" "$b" --benchmark_filter="${bench_filter[$name]}" --benchmark_min_time=0.1 \
    --benchmark_format=console --benchmark_out="$out/$name.json" --benchmark_out_format=json \
    >"$out/$name.txt" 2>&1
  rc=$?
  st=$(status_of $rc)
  [[ $st == PASS ]] && grep -q 'ERROR OCCURRED' "$out/$name.txt" && st=FAIL  # a row that did not run
  row "$name" "$st" "see $name.txt ($((SECONDS - t0)) s)"
  cat "$out/$name.txt"
  [[ -s $out/$name.json ]] && jsons+=("$out/$name.json")
done
if ((${#jsons[@]})); then
  python3 bench/ceilings.py "${jsons[@]}" >"$out/ceilings.md" 2>&1
  rc=$?
  cat "$out/ceilings.md"
  row "rows against ceilings" "$(status_of $rc)" "$(tail -n 1 "$out/ceilings.md") (ceilings.md)"
fi

# ---- PyTorch side by side: eager and CUDA graphs first, torch.compile with what is left ----
t0=$SECONDS
timeout "$(allow 120 45)" python3 bench/torch_side_by_side.py --device cuda --gradaccum "$bdir" \
  --no-compile >"$out/side_by_side.txt" 2>&1
rc=$?
row "PyTorch side by side" "$(status_of $rc)" "see side_by_side.txt ($((SECONDS - t0)) s)"
cat "$out/side_by_side.txt"
if [[ $rc == 0 ]] && ((deadline - SECONDS > 60)); then
  t0=$SECONDS
  timeout "$(allow 300 10)" python3 bench/torch_side_by_side.py --device cuda --gradaccum "$bdir" \
    --shapes small,medium >"$out/side_by_side_compile.txt" 2>&1
  rc=$?
  row "side by side + torch.compile" "$(status_of $rc)" "small, medium ($((SECONDS - t0)) s)"
  cat "$out/side_by_side_compile.txt"
fi
