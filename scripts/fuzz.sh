#!/usr/bin/env bash
# Fuzzes the file readers (.npy, IDX, state files): configures and builds the fuzz preset
# (clang, libFuzzer, ASan + UBSan) into build/fuzz, then runs npy_fuzz, idx_fuzz and state_fuzz
# for the given number of seconds each (default 60) on scratch copies of
# tests/fuzz/corpus/{npy,idx,state}, so that new corpus entries never land in the repository.
# Exits non-zero on any crash, sanitizer report or inconsistent parse; the crashing input is kept
# in build/fuzz/artifacts/.
#   usage: scripts/fuzz.sh [seconds]        (JOBS=n sets the build parallelism, default 2)
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
  echo "usage: $0 [seconds]   (a positive whole number; got '$seconds')" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build/fuzz

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DGRADACCUM_CUDA=OFF -DGRADACCUM_BUILD_FUZZERS=ON \
    -DGRADACCUM_BUILD_TESTS=OFF -DGRADACCUM_BUILD_BENCHMARKS=OFF \
    -DGRADACCUM_BUILD_TOOLS=OFF -DGRADACCUM_BUILD_EXAMPLES=OFF
fi
cmake --build "$build" --target npy_fuzz idx_fuzz state_fuzz -j "${JOBS:-2}"

work=$(mktemp -d "${TMPDIR:-/tmp}/gradaccum-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

# Each reader in turn, for the given seconds each: .npy, then IDX (plain and gzip).
for target in npy idx state; do
  cp -R "$root/tests/fuzz/corpus/$target" "$work/$target"
  echo "fuzzing the $target reader for ${seconds}s (scratch corpus in $work/$target)"
  status=0
  "$build/tests/fuzz/${target}_fuzz" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -dict="$root/tests/fuzz/$target.dict" \
    -artifact_prefix="$build/artifacts/$target-" -print_final_stats=1 \
    "$work/$target" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "FUZZ FAILURE in $target (exit $status): the input that failed is in $build/artifacts/" >&2
    exit "$status"
  fi
  echo "fuzz run clean: $target, $(find "$work/$target" -type f | wc -l) corpus entries after ${seconds}s"
done
