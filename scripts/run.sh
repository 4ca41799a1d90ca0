#!/usr/bin/env bash
# The main job: installs what is needed, builds gradaccum (CUDA for sm_90 when nvcc exists),
# and trains the MLP with gradaccum-train — on the GPU when there is one, else on the CPU.
# Extra arguments go to gradaccum-train (see `--help`), e.g. scripts/run.sh --accum 4 --steps 200
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target gradaccum-train
exec build/default/tools/gradaccum-train "$@"
