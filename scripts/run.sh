#!/usr/bin/env bash
# The main job: installs what is needed, builds gradaccum (CUDA for sm_90 when nvcc exists), and
# trains an L1 autoencoder on Fashion-MNIST (Debian's dataset-fashion-mnist) with
# gradaccum-train — on the GPU when there is one, else on the CPU: 5 shuffled epochs of batches
# of 256 rows, each accumulated from 4 micro-batches of 64, evaluated on the 10,000 test images
# every epoch. It ends with the test reconstruction L1 and writes, under build/fashion-mnist/,
# the loss curves (loss.png), test images above their reconstructions (reconstructions.png), the
# per-step CSV and a checkpoint (stop it with Ctrl-C, then `scripts/run.sh --resume` goes on).
# With other arguments, they go to gradaccum-train instead (see `--help`), e.g.
#   scripts/run.sh --accum 4 --steps 200            (the synthetic regression task)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target gradaccum-train
train=build/default/tools/gradaccum-train
if [[ $# -gt 0 && $1 != --resume ]]; then
  exec "$train" "$@"
fi
out=build/fashion-mnist
mkdir -p "$out"
args=(--dataset fashion-mnist --epochs 5 --batch 256 --accum 4 --hidden 256 --lr 1 --momentum 0.9
      --shuffle --eval-every 235 --print-every 47 --checkpoint "$out/checkpoint"
      --log-csv "$out/steps.csv" --plot "$out/loss.png"
      --reconstructions "$out/reconstructions.png" --save-weights "$out/weights")
if [[ ${1:-} == --resume ]]; then
  args+=(--resume "$out/checkpoint")
fi
exec "$train" "${args[@]}"
