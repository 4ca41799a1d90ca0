#!/usr/bin/env bash
# Rewrites tests/data/emu_parity/ (the emulated device's outputs that the EmuParity tests compare
# a real GPU with) from an emulator build. Run it after changing what a kernel computes, and
# commit the files with the change:
#   scripts/emu_parity.sh            # configures and builds the emu preset if needed
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset emu >/dev/null
cmake --build --preset emu --target gradaccum_gpu_tests
dir=tests/data/emu_parity
rm -rf "$dir" && mkdir -p "$dir"
GRADACCUM_EMU_PARITY_WRITE="$PWD/$dir" build/emu/tests/gradaccum_gpu_tests \
  --gtest_filter='Kernels/EmuParity.*' --gtest_brief=1
echo "wrote $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1), in $dir"
