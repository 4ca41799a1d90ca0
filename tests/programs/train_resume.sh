#!/usr/bin/env bash
# gradaccum-train's long-run features, end to end: a run stopped by SIGTERM (or killed outright)
# and resumed ends with the same bytes as a run never stopped (checkpoint and weights, f32 and
# f16 with a dynamic loss scale, shuffled epochs with a short last batch); SIGINT without a
# checkpoint still saves the last complete step; a checkpoint of other flags, a corrupted or a
# truncated one is refused in one line and overwritten by nothing; the CSV holds each step once.
#   train_resume.sh TRAIN DEVICE WORK_DIR     (DEVICE: cpu or cuda; cuda skips without a device)
set -uo pipefail
source "$(dirname "$0")/program_test.sh"
train=$1 device=$2
program_test_init "$3"
skip_without_device "$train" "$device" train-resume && exit 0
# The runs that are stopped are given many steps (so that a signal that takes its time still
# finds them running); they are resumed to `more` steps past the later stop, and compared with a
# run of that many steps never stopped. CPU: 512 rows in batches of 100, 5 full batches and one
# of 12 per epoch. CUDA (the emulated device is slow, the more so under the sanitizers): 64 rows
# in batches of 20, 3 full and one of 4 per epoch. Shuffled either way.
rows=512 batch=100 more=25 every=25
[[ $device == cuda ]] && rows=64 batch=20 more=6 every=5
many=100000
mkdir -p "$work/fm"
"$py" "$(dirname "$0")/make_fashion_idx.py" "$work/fm" "$rows" 16 || { echo "FAIL: fixture"; exit 1; }
export GRADACCUM_FASHION_MNIST_DIR=$work/fm
base=(--device "$device" --dataset fashion-mnist --batch "$batch" --accum 3 --seed 5
      --print-every 1 --eval-every "$every")
model=(--hidden 8 --lr 0.5 --shuffle)

# run NAME args...: the program under a timeout, stdout and stderr kept; returns its status.
run() {
  local name=$1
  shift
  timeout -k 10 300 "$train" "${base[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err"
}

# signal_after NAME SIGNAL STEP args...: starts the run, sends SIGNAL once it printed step STEP,
# and returns the run's exit status.
signal_after() {
  local name=$1 sig=$2 at=$3
  shift 3
  "$train" "${base[@]}" "${model[@]}" --steps "$many" "$@" >"$work/$name.out" \
    2>"$work/$name.err" &
  local pid=$!
  watch "$pid" 300
  wait_for_line "$work/$name.out" "^step $at " "$pid"
  kill -s "$sig" "$pid" 2>/dev/null
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

checkpoint_step() {  # the step a checkpoint file holds
  grep -a '^text run.step ' "$1" | cut -d' ' -f3
}
same_bytes() {  # same_bytes WHAT A B
  if cmp -s "$2" "$3"; then ok "$1: identical bytes"; else fail "$1: $2 and $3 differ"; fi
}

# The emulated device runs f32 alone: an f16 run of this size takes it a minute, and the f16
# state on the device (master weights, loss scaler) is tested in tests/gpu/state_dict_gpu_test.cpp.
dtypes="f32 f16"
[[ $device == cuda ]] && dtypes=f32
for dtype in $dtypes; do
  extra=(--dtype "$dtype")
  [[ $dtype == f16 ]] && extra+=(--loss-scale dynamic)
  d=$work/$dtype
  mkdir -p "$d"

  # SIGTERM after step 5: exit 143 at a step boundary, with a checkpoint.
  rc=0
  signal_after "$dtype-term" TERM 5 "${extra[@]}" --checkpoint "$d/term" \
    --log-csv "$d/term.csv" || rc=$?
  ((rc == 143)) || fail "$dtype: SIGTERM: exit $rc, expected 143"
  stopped=$(sed -n 's/^stopped by SIGTERM after step \([0-9]*\) of.*/\1/p' "$work/$dtype-term.out")
  grep -q "^stopped by SIGTERM after step [0-9]* of $many; checkpoint written to $d/term/checkpoint.state" \
    "$work/$dtype-term.out" && [[ $(checkpoint_step "$d/term/checkpoint.state") == "$stopped" ]] ||
    { fail "$dtype: SIGTERM: no 'stopped by SIGTERM' line, or no checkpoint of that step"; continue; }
  # SIGKILL (no chance to write anything) while checkpointing every step: what is left is a
  # whole checkpoint.
  rc=0
  signal_after "$dtype-kill" KILL 9 "${extra[@]}" --checkpoint "$d/kill" --checkpoint-every 1 ||
    rc=$?
  ((rc == 137)) || fail "$dtype: SIGKILL: exit $rc, expected 137"
  killed=$(checkpoint_step "$d/kill/checkpoint.state")
  [[ -n $killed ]] || { fail "$dtype: SIGKILL: no readable checkpoint left"; continue; }

  # Both resumed to the same step as a run never stopped: the same bytes.
  steps=$(((stopped > killed ? stopped : killed) + more))
  run "$dtype-straight" "${model[@]}" "${extra[@]}" --steps "$steps" \
    --checkpoint "$d/straight" --save-weights "$d/straight-w" ||
    { fail "$dtype: the uninterrupted run failed: $(cat "$work/$dtype-straight.err")"; continue; }
  run "$dtype-resume" "${model[@]}" "${extra[@]}" --steps "$steps" --resume "$d/term" \
    --checkpoint "$d/term" --save-weights "$d/term-w" --log-csv "$d/term.csv" ||
    fail "$dtype: resume failed: $(cat "$work/$dtype-resume.err")"
  grep -q "^resumed from $d/term/checkpoint.state at step $stopped " "$work/$dtype-resume.out" ||
    fail "$dtype: no 'resumed from' line at step $stopped"
  same_bytes "$dtype: SIGTERM at step $stopped, resumed to $steps: checkpoint" \
    "$d/straight/checkpoint.state" "$d/term/checkpoint.state"
  for w in fc1.weight fc1.bias fc2.weight fc2.bias; do
    same_bytes "$dtype: SIGTERM, resumed: $w" "$d/straight-w/$w.npy" "$d/term-w/$w.npy"
  done
  # The CSV holds every step once, in order, across the stop.
  if [[ $(tail -n +2 "$d/term.csv" | cut -d, -f1 | tr '\n' ' ') != "$(seq -s ' ' 1 "$steps") " ]]; then
    fail "$dtype: the CSV does not hold steps 1..$steps once each"
  fi
  run "$dtype-kill-resume" "${model[@]}" "${extra[@]}" --steps "$steps" --resume "$d/kill" \
    --checkpoint "$d/kill" || fail "$dtype: resume after SIGKILL failed: $(cat "$work/$dtype-kill-resume.err")"
  same_bytes "$dtype: SIGKILL at step $killed, resumed to $steps: checkpoint" \
    "$d/straight/checkpoint.state" "$d/kill/checkpoint.state"
done

# BatchNorm, both modes, and AdamW: stopped after 4 steps and resumed to 8, the same bytes as 8
# steps in one run (the running statistics, AdamW's moments and step count included). Ghost batch
# norm leaves out the short last batch (its micro-batches could hold one row, which it refuses).
for bn in micro-batch window "none --optimizer adamw --amsgrad"; do
  d=$work/bn-${bn%% *}
  mkdir -p "$d"
  [[ $bn == micro-batch ]] && bn="micro-batch --drop-last"
  name=${bn%% *}
  run "bn-$name-straight" "${model[@]}" --batch-norm $bn --steps 8 --checkpoint "$d/straight" \
    --save-weights "$d/straight-w" || { fail "--batch-norm $bn: $(cat "$work/bn-$name-straight.err")"; continue; }
  run "bn-$name-part" "${model[@]}" --batch-norm $bn --steps 4 --checkpoint "$d/part" &&
    run "bn-$name-resume" "${model[@]}" --batch-norm $bn --steps 8 --resume "$d/part" \
      --checkpoint "$d/part" --save-weights "$d/part-w" ||
    { fail "--batch-norm $bn: resume failed: $(cat "$work/bn-$name-resume.err")"; continue; }
  same_bytes "--batch-norm $bn: resumed at step 4: checkpoint" "$d/straight/checkpoint.state" \
    "$d/part/checkpoint.state"
  [[ $name == none ]] && continue
  for w in bn.weight bn.bias bn.running_mean bn.running_var; do
    same_bytes "--batch-norm $bn: resumed: $w" "$d/straight-w/$w.npy" "$d/part-w/$w.npy"
  done
done

# SIGINT without a checkpoint: exit 130, and --save-weights holds the last complete step, the
# weights of a run of exactly that many steps.
rc=0
signal_after int INT 3 --save-weights "$work/int-w" || rc=$?
((rc == 130)) || fail "SIGINT: exit $rc, expected 130"
at=$(sed -n 's/^stopped by SIGINT after step \([0-9]*\) of.*/\1/p' "$work/int.out")
if [[ -z $at ]]; then
  fail "SIGINT: no 'stopped by SIGINT' line"
else
  run int-ref "${model[@]}" --steps "$at" --save-weights "$work/int-ref-w" || fail "SIGINT: reference run failed"
  same_bytes "SIGINT after step $at: fc2.weight" "$work/int-w/fc2.weight.npy" \
    "$work/int-ref-w/fc2.weight.npy"
fi

# Refused checkpoints: one line, non-zero exit, and the checkpoint left as it was.
ck=$work/f32/straight
cp "$ck/checkpoint.state" "$work/saved.state"
refused() {  # refused WHAT MESSAGE args...
  local what=$1 want=$2 rc=0
  shift 2
  run refused "$@" || rc=$?
  if ((rc == 0)); then
    fail "$what: accepted"
  elif [[ $(wc -l <"$work/refused.err") -ne 1 ]] || ! grep -qF -- "$want" "$work/refused.err"; then
    fail "$what: expected one line mentioning '$want', got: $(cat "$work/refused.err")"
  else
    ok "$what -> $(cat "$work/refused.err")"
  fi
  cmp -s "$ck/checkpoint.state" "$work/saved.state" || fail "$what: the checkpoint changed"
}
at_end=$(checkpoint_step "$ck/checkpoint.state")
again=(--steps $((at_end + 10)) --resume "$ck" --checkpoint "$ck")
refused "another --lr" "--lr" --hidden 8 --lr 0.25 --shuffle "${again[@]}"
refused "another --hidden" "--hidden" --hidden 9 --lr 0.5 --shuffle "${again[@]}"
refused "f16 over f32" "--dtype" "${model[@]}" --dtype f16 "${again[@]}"
refused "without --shuffle" "--shuffle" --hidden 8 --lr 0.5 "${again[@]}"
refused "another accumulation" "--accum-mode" "${model[@]}" --accum-mode kahan "${again[@]}"
refused "with BatchNorm" "--batch-norm" "${model[@]}" --batch-norm window "${again[@]}"
refused "no checkpoint" "no checkpoint there" "${model[@]}" --resume "$work/empty-dir"
refused "at its end already" "already" "${model[@]}" --steps "$at_end" --resume "$ck"
cp "$ck/checkpoint.state" "$work/corrupt.state"
printf '\x55' | dd of="$work/corrupt.state" bs=1 seek=200 conv=notrunc status=none
mkdir -p "$work/corrupt" && cp "$work/corrupt.state" "$work/corrupt/checkpoint.state"
refused "a corrupted checkpoint" "corrupted" "${model[@]}" --resume "$work/corrupt"
mkdir -p "$work/truncated"
head -c 1000 "$ck/checkpoint.state" >"$work/truncated/checkpoint.state"
refused "a truncated checkpoint" "truncated" "${model[@]}" --resume "$work/truncated"

echo "train-resume ($device): $failures failure(s)"
((failures == 0))
