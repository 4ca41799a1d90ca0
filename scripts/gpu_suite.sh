#!/usr/bin/env bash
# The GPU suite, for a machine with an NVIDIA GPU, in one call:
#   build for sm_90 -> all tests (gpu tests must run, not skip) -> compute-sanitizer memcheck,
#   racecheck, synccheck over the GPU tests -> benchmarks -> PyTorch side by side -> a short
#   pass/fail and timing table, last.
# Everything it prints also goes to $OUT/gpu_suite.log (or build/gpu-suite/ without $OUT); the
# caller commits it under bench/results/ with the date, commit and device.
#
#   scripts/gpu_suite.sh prepare   # on the development machine: stage GoogleTest sources and
#                                  # Google Benchmark into build/gpu-deps (carry that path)
#   scripts/gpu_suite.sh           # on the GPU machine
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ "${1:-}" == prepare ]]; then
  deps=build/gpu-deps
  rm -rf "$deps" && mkdir -p "$deps/lib" "$deps/include"
  cp -r /usr/src/googletest "$deps/googletest"
  cp -r /usr/include/benchmark "$deps/include/"
  cp -a /usr/lib/x86_64-linux-gnu/libbenchmark.so* /usr/lib/x86_64-linux-gnu/libbenchmark_main.a "$deps/lib/"
  cp -r /usr/lib/x86_64-linux-gnu/cmake/benchmark "$deps/lib/cmake-benchmark"
  sed -i 's|\${_IMPORT_PREFIX}/lib/x86_64-linux-gnu|${_IMPORT_PREFIX}/lib|g; s|get_filename_component(_IMPORT_PREFIX "\${CMAKE_CURRENT_LIST_FILE}" PATH)|set(_IMPORT_PREFIX "'"$root/$deps"'")|' "$deps"/lib/cmake-benchmark/*.cmake 2>/dev/null
  echo "staged GPU-machine dependencies in $deps"
  exit 0
fi

out=${OUT:-$root/build/gpu-suite}
mkdir -p "$out"
log=$out/gpu_suite.log
exec > >(tee "$log") 2>&1

declare -a table
row() { table+=("$(printf '%-34s %-6s %s' "$1" "$2" "$3")"); }

echo "# gradaccum GPU suite"
echo "date:   $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || cat .git-commit 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/device: /'
nvcc --version | tail -n 1

extra=()
[[ -d build/gpu-deps/googletest ]] && extra+=(-DGRADACCUM_GTEST_SOURCE_DIR="$root/build/gpu-deps/googletest")
[[ -d build/gpu-deps/lib/cmake-benchmark ]] && extra+=(-Dbenchmark_DIR="$root/build/gpu-deps/lib/cmake-benchmark")

t0=$SECONDS
if cmake --preset cuda "${extra[@]}" >"$out/configure.log" 2>&1 &&
   cmake --build --preset cuda -j "$(nproc)" >"$out/build.log" 2>&1; then
  row "build (sm_90)" PASS "$((SECONDS - t0)) s"
else
  row "build (sm_90)" FAIL "see build.log"; tail -n 50 "$out"/configure.log "$out"/build.log
  printf '%s\n' "${table[@]}"; exit 1
fi
bdir=build/cuda

ctest --test-dir "$bdir" --output-on-failure -j 4 >"$out/ctest.log" 2>&1; rc=$?
summary=$(grep -E 'tests passed' "$out/ctest.log")
skips=$(grep -c '(Skipped)' "$out/ctest.log")
row "ctest (all)" "$([[ $rc == 0 && $skips == 0 ]] && echo PASS || echo FAIL)" "$summary; $skips skipped"

for tool in memcheck racecheck synccheck; do
  t0=$SECONDS
  compute-sanitizer --tool $tool --error-exitcode 99 "$bdir/tests/gradaccum_gpu_tests" \
    >"$out/sanitizer-$tool.log" 2>&1
  rc=$?
  row "compute-sanitizer $tool" "$([[ $rc == 0 ]] && echo PASS || echo FAIL)" \
    "$(grep -E 'ERROR SUMMARY' "$out/sanitizer-$tool.log" | tail -n 1) ($((SECONDS - t0)) s)"
done

for b in "$bdir"/bench/bench_*; do
  [[ -x $b ]] || continue
  name=$(basename "$b")
  "$b" --benchmark_min_time=0.2 --benchmark_format=console \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json >"$out/$name.txt" 2>&1
  row "$name" "$([[ $? == 0 ]] && echo PASS || echo FAIL)" "see $name.txt"
  cat "$out/$name.txt"
done

if [[ -f bench/torch_side_by_side.py ]]; then
  python3 bench/torch_side_by_side.py --device cuda --gradaccum "$bdir" >"$out/side_by_side.txt" 2>&1
  row "PyTorch side by side" "$([[ $? == 0 ]] && echo PASS || echo FAIL)" "see side_by_side.txt"
  cat "$out/side_by_side.txt"
fi

echo
echo "== summary =="
printf '%s\n' "${table[@]}"
