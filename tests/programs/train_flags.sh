#!/usr/bin/env bash
# gradaccum-train's data and output flags, end to end: --epochs with and without --drop-last (the
# number of steps an epoch makes), --shuffle (another order, the same rows), --eval-data and
# --eval-every (evaluation lines and CSV column), --log-csv (its columns), --plot and
# --reconstructions (PNG files), the header's data description and the Fashion-MNIST summary.
#   train_flags.sh TRAIN DEVICE WORK_DIR     (DEVICE: cpu or cuda; cuda skips without a device)
set -uo pipefail
source "$(dirname "$0")/program_test.sh"
train=$1 device=$2
program_test_init "$3"
skip_without_device "$train" "$device" train-flags && exit 0
mkdir -p "$work/fm"
"$py" "$(dirname "$0")/make_fashion_idx.py" "$work/fm" 50 12 || { echo "FAIL: fixture"; exit 1; }
export GRADACCUM_FASHION_MNIST_DIR=$work/fm
has_gnuplot=0
command -v gnuplot >/dev/null && has_gnuplot=1

run() {  # run NAME args...
  local name=$1
  shift
  timeout -k 10 300 "$train" --device "$device" --hidden 4 --seed 2 "$@" >"$work/$name.out" \
    2>"$work/$name.err" || { fail "$name: exit $?: $(head -c 300 "$work/$name.err")"; return 1; }
}
summary_steps() { sed -n 's/^summary:.*, steps \([0-9]*\),.*/\1/p' "$work/$1.out"; }

# 50 rows in batches of 16: 4 steps an epoch (16+16+16+2), 3 with --drop-last.
fm=(--dataset fashion-mnist --batch 16 --accum 2 --print-every 1)
if run epochs "${fm[@]}" --epochs 2 --log-csv "$work/epochs.csv"; then
  [[ $(summary_steps epochs) == 8 ]] && ok "--epochs 2: 8 steps" || fail "--epochs 2: $(summary_steps epochs) steps, expected 8"
  grep -q "fashion-mnist (50 rows, 4 steps per epoch, in order)" "$work/epochs.out" ||
    fail "the header does not describe the data"
  grep -q "^test reconstruction L1: [0-9.e-]* (mean |pixel - reconstruction| over the 12 test images" \
    "$work/epochs.out" && ok "the Fashion-MNIST summary" || fail "no 'test reconstruction L1' line"
  [[ $(head -n 1 "$work/epochs.csv") == "step,epoch,loss,eval_loss,samples_per_s,loss_scale,skipped,dropped" ]] ||
    fail "--log-csv: unexpected header $(head -n 1 "$work/epochs.csv")"
  # Steps 1..8, epochs 0,0,0,1,1,1,1,2 after each step; the evaluation at the end only.
  [[ $(tail -n +2 "$work/epochs.csv" | cut -d, -f1,2 | tr '\n' ' ') == "1,0 2,0 3,0 4,1 5,1 6,1 7,1 8,2 " ]] &&
    ok "--log-csv: steps and epochs" || fail "--log-csv: steps and epochs $(tail -n +2 "$work/epochs.csv" | cut -d, -f1,2 | tr '\n' ' ')"
  [[ $(tail -n +2 "$work/epochs.csv" | cut -d, -f4 | grep -c .) == 1 ]] ||
    fail "--log-csv: expected one evaluation (at the end)"
fi
if run drop "${fm[@]}" --epochs 2 --drop-last; then
  [[ $(summary_steps drop) == 6 ]] && ok "--drop-last: 6 steps" || fail "--drop-last: $(summary_steps drop) steps, expected 6"
  grep -q "short batch dropped" "$work/drop.out" || fail "--drop-last: not in the header"
fi
# --shuffle: another order (so another first loss) of the same rows; the same order twice.
run plain "${fm[@]}" --steps 1 && run shuf1 "${fm[@]}" --steps 1 --shuffle &&
  run shuf2 "${fm[@]}" --steps 1 --shuffle && {
  l0=$(grep '^step 1 ' "$work/plain.out") l1=$(grep '^step 1 ' "$work/shuf1.out")
  l2=$(grep '^step 1 ' "$work/shuf2.out")
  [[ $l1 != "$l0" && $l1 == "$l2" ]] && ok "--shuffle: another order, the same each time" ||
    fail "--shuffle: '$l0' / '$l1' / '$l2'"
}
# --eval-every on the test split: evaluation lines at steps 2 and 4 and the end (5).
if run eval --dataset fashion-mnist --batch 16 --accum 2 --steps 5 --eval-every 2 --print-every 0; then
  [[ $(grep -o '^step [0-9]*  loss [0-9.e-]*  eval' "$work/eval.out" | cut -d' ' -f2 | tr '\n' ' ') == "2 4 5 " ]] &&
    ok "--eval-every 2: steps 2, 4 and 5" || fail "--eval-every 2: $(grep eval "$work/eval.out")"
fi
# --data with --eval-data: the held-out loss of .npy files.
"$py" - "$work" <<'PY' || fail "npy fixture"
import sys, numpy as np
rng = np.random.default_rng(4)
for name, rows in (("x", 40), ("ex", 10)):
    x = rng.uniform(-1, 1, (rows, 6)).astype(np.float32)
    np.save(f"{sys.argv[1]}/{name}.npy", x)
    np.save(f"{sys.argv[1]}/{name}_y.npy", (x[:, :2] * 0.5).astype(np.float32))
PY
if run npy --in 6 --out 2 --batch 8 --epochs 2 --shuffle --data "$work/x.npy" \
  --targets "$work/x_y.npy" --eval-data "$work/ex.npy" --eval-targets "$work/ex_y.npy"; then
  grep -q "^summary:.*, epochs 2, eval loss [0-9.e-]*," "$work/npy.out" &&
    ok "--data/--eval-data: 2 epochs, evaluated" || fail "--data/--eval-data: $(grep summary "$work/npy.out")"
fi
# --plot and --reconstructions: PNG files (gnuplot).
if ((has_gnuplot)); then
  if run png "${fm[@]}" --steps 6 --eval-every 3 --plot "$work/loss.png" \
    --reconstructions "$work/recon.png"; then
    for f in loss recon; do
      if [[ $(head -c 8 "$work/$f.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; then
        ok "$f.png is a PNG ($(wc -c <"$work/$f.png") bytes)"
      else
        fail "$f.png is not a PNG"
      fi
    done
  fi
else
  echo "note: gnuplot not found, --plot and --reconstructions not tried"
fi

echo "train-flags ($device): $failures failure(s)"
((failures == 0))
