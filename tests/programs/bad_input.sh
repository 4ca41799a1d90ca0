#!/usr/bin/env bash
# Bad input at the programs: every bad flag or input file must end the program with a non-zero
# exit (no crash signal: exit code < 128), exactly one line on stderr, and that line must name
# the flag or the problem.
#   bad_input.sh TRAIN STABILITY CUDA_MODE WORK_DIR
# TRAIN: the gradaccum-train executable; STABILITY: gradaccum-stability or "" (not built);
# CUDA_MODE: REAL, EMU or NONE (the build's GRADACCUM_CUDA_MODE); WORK_DIR: a scratch folder.
set -uo pipefail

train=$1 stability=$2 cuda_mode=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
failures=0 cases=0

# expect_error "what it mentions" program args...: runs it (60 s at most) and checks.
expect_error() {
  local want=$1
  shift
  cases=$((cases + 1))
  local rc=0
  timeout -k 10 60 "$@" >"$work/stdout" 2>"$work/stderr" </dev/null || rc=$?
  local lines problem=""
  lines=$(wc -l <"$work/stderr")
  if ((rc == 0)); then
    problem="exit status 0"
  elif ((rc == 124)); then
    problem="timed out"
  elif ((rc >= 128)); then
    problem="killed by signal $((rc - 128))"
  elif [[ $lines -ne 1 || -n $(tail -c 1 "$work/stderr") ]]; then
    problem="$lines line(s) on stderr, expected exactly one"
  elif ! grep -qiF -- "$want" "$work/stderr"; then
    problem="the message does not mention '$want'"
  fi
  if [[ -n $problem ]]; then
    failures=$((failures + 1))
    echo "FAIL: ${*##*/}: $problem (exit $rc)"
    sed 's/^/    stderr: /' "$work/stderr" | head -n 5
  else
    echo "ok:   ${*##*/} -> exit $rc: $(cat "$work/stderr")"
  fi
}

# write_npy FILE ROWS COLS [VALUE_HEX]: a version 1.0 little-endian f32 .npy of ROWS x COLS,
# every element the 4 bytes VALUE_HEX (little-endian; default 0000003f = 0.5).
write_npy() {
  local file=$1 rows=$2 cols=$3 value=${4:-0000003f}
  local dict="{'descr': '<f4', 'fortran_order': False, 'shape': ($rows, $cols), }"
  # magic (6) + version (2) + length (2) + dict + padding + '\n': a multiple of 64.
  local total=$(((10 + ${#dict} + 1 + 63) / 64 * 64))
  local pad=$((total - 10 - ${#dict} - 1))
  local len=$((total - 10))
  {
    printf '\x93NUMPY\x01\x00'
    printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8)))"
    printf '%s' "$dict"
    printf '%*s' "$pad" ''
    printf '\n'
    local bytes="\\x${value:0:2}\\x${value:2:2}\\x${value:4:2}\\x${value:6:2}" i
    for ((i = 0; i < rows * cols; i++)); do printf "$bytes"; done
  } >"$file"
}

# A small model and matching files: in 4, out 2, 8 rows.
small=(--in 4 --hidden 3 --out 2 --batch 4 --steps 2 --print-every 0)
write_npy "$work/x.npy" 8 4
write_npy "$work/y.npy" 8 2
write_npy "$work/x_few.npy" 6 4
write_npy "$work/y_few.npy" 6 2
write_npy "$work/x_wide.npy" 8 5
write_npy "$work/y_wide.npy" 8 3
write_npy "$work/y_rows.npy" 7 2
write_npy "$work/x_nan.npy" 8 4 0000c07f
write_npy "$work/y_inf.npy" 8 2 0000807f
head -c 90 "$work/x.npy" >"$work/x_truncated.npy"
printf 'not a numpy file\n' >"$work/x_text.npy"

# The programs accept the good files (else every case below would pass for the wrong reason).
cases=$((cases + 1))
if ! "$train" "${small[@]}" --data "$work/x.npy" --targets "$work/y.npy" >"$work/stdout" 2>&1; then
  failures=$((failures + 1))
  echo "FAIL: gradaccum-train rejects good data files:"
  sed 's/^/    /' "$work/stdout" | head -n 5
fi
"$train" "${small[@]}" --save-weights "$work/weights" >/dev/null 2>&1 || true
mkdir -p "$work/weights_missing" "$work/weights_wrong"
cp "$work"/weights/*.npy "$work/weights_missing/" 2>/dev/null
rm -f "$work/weights_missing/fc2.bias.npy"
cp "$work"/weights/*.npy "$work/weights_wrong/" 2>/dev/null
write_npy "$work/weights_wrong/fc2.weight.npy" 2 4
# BatchNorm weights: one missing, one of the wrong shape (hidden is 3).
"$train" "${small[@]}" --batch-norm window --save-weights "$work/bn_weights" >/dev/null 2>&1 || true
mkdir -p "$work/bn_missing" "$work/bn_wrong"
cp "$work"/bn_weights/*.npy "$work/bn_missing/" 2>/dev/null
rm -f "$work/bn_missing/bn.running_var.npy"
cp "$work"/bn_weights/*.npy "$work/bn_wrong/" 2>/dev/null
write_npy "$work/bn_wrong/bn.weight.npy" 1 4

t=$train
# Flags: unknown, malformed, out of range, conflicting.
expect_error "--bogus" "$t" --bogus
expect_error "unexpected argument 'steps'" "$t" steps 3
expect_error "--lr" "$t" --lr abc
expect_error "--lr" "$t" --lr nan
expect_error "--steps" "$t" --steps 1e3
expect_error "--batch" "$t" --batch -5
expect_error "--batch" "$t" --batch 99999999999999999999999
expect_error "--batch" "$t" --batch 0
expect_error "--accum" "$t" --accum 0
expect_error "--micro-batch" "$t" --micro-batch 0
expect_error "--accum 5 exceeds --batch 4" "$t" --batch 4 --accum 5
expect_error "--accum or --micro-batch" "$t" --accum 2 --micro-batch 2
expect_error "--batch" "$t" --steps 1099511627776 --batch 1099511627776
expect_error "--momentum" "$t" --momentum 1.5
expect_error "--dtype" "$t" --dtype f64
expect_error "--loss-scale" "$t" --loss-scale 0
expect_error "--loss-scale" "$t" --loss-scale fast
expect_error "--lr" "$t" --lr 0.1 --lr 0.2
expect_error "--lr" "$t" --lr
expect_error "--nesterov" "$t" --nesterov=1
expect_error "nesterov" "$t" --nesterov --momentum 0 --steps 1 --batch 1
expect_error "--data" "$t" --data=
expect_error "--deterministic" "$t" --deterministic --gemm vendor
expect_error "--graph" "$t" --graph maybe
expect_error "--graph on needs the CUDA device" "$t" --device cpu --graph on
expect_error "--data and --targets" "$t" --data "$work/x.npy"
expect_error "--data and --targets" "$t" --targets "$work/y.npy"
if [[ $cuda_mode == NONE ]]; then
  expect_error "--device cuda" "$t" --device cuda
fi
# Data files: missing, unreadable, malformed, wrong shapes, too few rows, non-finite values.
expect_error "missing.npy" "$t" "${small[@]}" --data "$work/missing.npy" --targets "$work/y.npy"
expect_error "missing.npy" "$t" "${small[@]}" --data "$work/x.npy" --targets "$work/missing.npy"
expect_error "$work" "$t" "${small[@]}" --data "$work" --targets "$work/y.npy"
expect_error "x_truncated.npy" "$t" "${small[@]}" --data "$work/x_truncated.npy" --targets "$work/y.npy"
expect_error "x_text.npy" "$t" "${small[@]}" --data "$work/x_text.npy" --targets "$work/y.npy"
expect_error "[rows, 4]" "$t" "${small[@]}" --data "$work/x_wide.npy" --targets "$work/y.npy"
expect_error "[rows, 2]" "$t" "${small[@]}" --data "$work/x.npy" --targets "$work/y_wide.npy"
expect_error "rows" "$t" "${small[@]}" --data "$work/x.npy" --targets "$work/y_rows.npy"
expect_error "--drop-last with --batch 8 over 6 rows" "$t" --in 4 --hidden 3 --out 2 --batch 8 \
  --drop-last --steps 1 --data "$work/x_few.npy" --targets "$work/y_few.npy"
expect_error "--data $work/x_nan.npy: non-finite" "$t" "${small[@]}" --data "$work/x_nan.npy" --targets "$work/y.npy"
expect_error "--targets $work/y_inf.npy: non-finite" "$t" "${small[@]}" --data "$work/x.npy" --targets "$work/y_inf.npy"
# Data, epochs, evaluation, checkpoints and plots: flags that do not go together.
expect_error "--epochs needs data" "$t" --epochs 2
expect_error "--steps or --epochs" "$t" --steps 2 --epochs 2 --dataset fashion-mnist
expect_error "--shuffle needs data" "$t" --shuffle
expect_error "--drop-last needs data" "$t" --drop-last
expect_error "--eval-every needs a held-out set" "$t" --eval-every 5
expect_error "--eval-data goes with --data" "$t" --eval-data "$work/x.npy" --eval-targets "$work/y.npy"
expect_error "--eval-data and --eval-targets" "$t" "${small[@]}" --data "$work/x.npy" \
  --targets "$work/y.npy" --eval-data "$work/x.npy"
expect_error "--dataset" "$t" --dataset mnist
expect_error "--dataset brings its own data" "$t" --dataset fashion-mnist --data "$work/x.npy" \
  --targets "$work/y.npy"
expect_error "--in = 10" "$t" --dataset fashion-mnist --in 10
expect_error "--checkpoint-every goes with --checkpoint" "$t" --checkpoint-every 5
expect_error "--resume or --load-weights" "$t" --resume "$work/c" --load-weights "$work/weights"
expect_error "--checkpoint" "$t" --checkpoint=
expect_error "ending in .png" "$t" --plot "$work/loss.svg"
expect_error "--reconstructions" "$t" --reconstructions "$work/r.png"
expect_error "no checkpoint there" "$t" "${small[@]}" --resume "$work/no_such_dir"
printf 'x' >"$work/a_file"
expect_error "--checkpoint $work/a_file" "$t" "${small[@]}" --checkpoint "$work/a_file"
expect_error "--log-csv" "$t" "${small[@]}" --log-csv "$work/no_such_dir/steps.csv"
# Fashion-MNIST files that are not what they should be (GRADACCUM_FASHION_MNIST_DIR).
fm=$work/fashion
mkdir -p "$fm"
fashion_error() {  # fashion_error WANT: gradaccum-train --dataset fashion-mnist on $fm
  expect_error "$1" env GRADACCUM_FASHION_MNIST_DIR="$fm" "$t" --dataset fashion-mnist --steps 1 \
    --hidden 2 --print-every 0
}
fashion_error "train-images-idx3-ubyte.gz"  # missing
printf '\x1f\x8bnot really gzip' >"$fm/train-images-idx3-ubyte.gz"
fashion_error "corrupted gzip stream"
# An IDX labels file where the images should be, and the other way round.
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02' | gzip >"$fm/train-images-idx3-ubyte.gz"
fashion_error "expected images, u8 [N, 28, 28]"
printf '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$work/header"
{ cat "$work/header"; head -c 784 /dev/zero; } | gzip >"$fm/train-images-idx3-ubyte.gz"
{ cat "$work/header"; head -c 784 /dev/zero; } | gzip >"$fm/train-labels-idx1-ubyte.gz"
fashion_error "expected labels, u8 [N]"
# A wrong magic, and images cut short.
printf '\x08\x03\x00\x00\x00\x00\x00\x01' | gzip >"$fm/train-labels-idx1-ubyte.gz"
fashion_error "not an IDX file"
{ cat "$work/header"; head -c 700 /dev/zero; } | gzip >"$fm/train-images-idx3-ubyte.gz"
fashion_error "truncated"

# Weights that do not match the model.
expect_error "fc2.bias.npy" "$t" "${small[@]}" --load-weights "$work/weights_missing"
expect_error "fc2.weight" "$t" "${small[@]}" --load-weights "$work/weights_wrong"
expect_error "fc1.weight.npy" "$t" "${small[@]}" --load-weights "$work/no_such_dir"
expect_error "fc1.weight" "$t" --in 5 --hidden 3 --out 2 --batch 4 --steps 1 --load-weights "$work/weights"
# AdamW.
expect_error "--optimizer" "$t" --optimizer adam
expect_error "--momentum is SGD's" "$t" --optimizer adamw --momentum 0.5
expect_error "--beta2 is AdamW's" "$t" --beta2 0.99
expect_error "--beta1" "$t" --optimizer adamw --beta1 1
expect_error "--eps" "$t" --optimizer adamw --eps -1
# BatchNorm.
expect_error "--batch-norm" "$t" --batch-norm sometimes
expect_error "bn.running_var.npy" "$t" "${small[@]}" --batch-norm window --load-weights "$work/bn_missing"
expect_error "bn.weight" "$t" "${small[@]}" --batch-norm micro-batch --load-weights "$work/bn_wrong"
expect_error "bn.weight.npy" "$t" "${small[@]}" --batch-norm window --load-weights "$work/weights"
expect_error "more than 1 value per channel" "$t" "${small[@]}" --batch-norm micro-batch --accum 4
expect_error "--overflow skip-step" "$t" "${small[@]}" --batch-norm window --loss-scale dynamic \
  --overflow drop-micro-batch
if [[ $cuda_mode == EMU ]]; then  # a device to capture on (elsewhere --graph on is refused first)
  expect_error "--graph on does not capture --batch-norm" "$t" "${small[@]}" --device cuda \
    --batch-norm window --graph on
fi

if [[ -n $stability ]]; then
  s=$stability
  expect_error "--bogus" "$s" --bogus
  expect_error "--max-accum" "$s" --max-accum 0
  expect_error "--max-accum" "$s" --max-accum 1e3
  expect_error "--extra-accum" "$s" --extra-accum -1
  expect_error "--seed" "$s" --seed x
  expect_error "--csv" "$s" --max-accum 1 --extra-accum 0 --csv "$work/no_such_dir/out.csv"
  if [[ $cuda_mode == NONE ]]; then
    expect_error "--device cuda" "$s" --device cuda
  fi
fi

echo "bad-input programs: $((cases - failures)) of $cases cases passed"
((failures == 0))
