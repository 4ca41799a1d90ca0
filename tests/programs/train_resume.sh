#!/usr/bin/env bash
# gradaccum-train's long-run features, end to end: a run stopped by SIGTERM (or killed outright)
# and resumed ends with the same bytes as a run never stopped (checkpoint and weights, f32 and
# f16 with a dynamic loss scale, shuffled epochs with a short last batch); SIGINT without a
# checkpoint still saves the last complete step; a checkpoint of other flags, a corrupted or a
# truncated one is refused in one line and overwritten by nothing; the CSV holds each step once.
#   train_resume.sh TRAIN DEVICE WORK_DIR     (DEVICE: cpu or cuda; cuda skips without a device)
set -uo pipefail
train=$1 device=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
failures=0
fail() {
  failures=$((failures + 1))
  echo "FAIL: $*"
}
if [[ $device == cuda ]] && ! "$train" --device cuda --steps 1 --print-every 0 >/dev/null 2>&1; then
  echo "train-resume: skipped (no CUDA device)"
  exit 0
fi
py=/usr/bin/python3
[[ -x $py ]] || py=python3
mkdir -p "$work/fm"
"$py" "$(dirname "$0")/make_fashion_idx.py" "$work/fm" 512 64 || { echo "FAIL: fixture"; exit 1; }
export GRADACCUM_FASHION_MNIST_DIR=$work/fm

# 512 rows in batches of 100: 5 full batches and one of 12 per epoch, shuffled.
steps=120
[[ $device == cuda ]] && steps=40  # the emulated device is slow
base=(--device "$device" --dataset fashion-mnist --batch 100 --accum 3 --seed 5 --print-every 1
      --eval-every 25)
model=(--hidden 8 --lr 0.5 --shuffle)

# run NAME args...: the program under a timeout, stdout and stderr kept; returns its status.
run() {
  local name=$1
  shift
  timeout -k 10 300 "$train" "${base[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err"
}
# train NAME args...: run with the model's flags and the number of steps.
train() {
  local name=$1
  shift
  run "$name" "${model[@]}" --steps "$steps" "$@"
}

# signal_after NAME SIGNAL STEP args...: starts the run, sends SIGNAL once it printed step STEP,
# and returns the run's exit status.
signal_after() {
  local name=$1 sig=$2 at=$3
  shift 3
  # Not under timeout(1): it would not pass SIGKILL on, and it sends other signals twice (to
  # the program and to its process group). A watchdog ends a run that hangs instead.
  "$train" "${base[@]}" "${model[@]}" --steps "$steps" "$@" >"$work/$name.out" \
    2>"$work/$name.err" &
  local pid=$! waited=0
  (
    for ((i = 0; i < 3000; i++)); do
      sleep 0.1
      kill -0 "$pid" 2>/dev/null || exit 0
    done
    kill -9 "$pid"
  ) >/dev/null 2>&1 &
  local watchdog=$!
  until grep -q "^step $at " "$work/$name.out" 2>/dev/null; do
    sleep 0.01
    waited=$((waited + 1))
    if ((waited > 20000)) || ! kill -0 "$pid" 2>/dev/null; then break; fi
  done
  kill -s "$sig" "$pid" 2>/dev/null
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  kill "$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
  return "$rc"
}

same_bytes() {  # same_bytes WHAT A B
  if cmp -s "$2" "$3"; then echo "ok:   $1: identical bytes"; else fail "$1: $2 and $3 differ"; fi
}

for dtype in f32 f16; do
  extra=(--dtype "$dtype")
  [[ $dtype == f16 ]] && extra+=(--loss-scale dynamic)
  d=$work/$dtype
  mkdir -p "$d"
  train "$dtype-straight" "${extra[@]}" --checkpoint "$d/straight" --save-weights "$d/straight-w" ||
    { fail "$dtype: the uninterrupted run failed: $(cat "$work/$dtype-straight.err")"; continue; }

  # SIGTERM after step 5: exit 143 at a step boundary, with a checkpoint; then resumed.
  rc=0
  signal_after "$dtype-term" TERM 5 "${extra[@]}" --checkpoint "$d/term" \
    --log-csv "$d/term.csv" || rc=$?
  if ((rc != 143)); then
    fail "$dtype: SIGTERM: exit $rc, expected 143"
  fi
  grep -q "^stopped by SIGTERM after step [0-9]* of $steps; checkpoint written to $d/term/checkpoint.state" \
    "$work/$dtype-term.out" || fail "$dtype: SIGTERM: no 'stopped by SIGTERM' line"
  stopped=$(sed -n 's/^stopped by SIGTERM after step \([0-9]*\).*/\1/p' "$work/$dtype-term.out")
  train "$dtype-resume" "${extra[@]}" --resume "$d/term" --checkpoint "$d/term" \
    --save-weights "$d/term-w" --log-csv "$d/term.csv" ||
    fail "$dtype: resume failed: $(cat "$work/$dtype-resume.err")"
  grep -q "^resumed from $d/term/checkpoint.state at step $stopped " "$work/$dtype-resume.out" ||
    fail "$dtype: no 'resumed from' line at step $stopped"
  same_bytes "$dtype: SIGTERM at step $stopped, resumed: checkpoint" \
    "$d/straight/checkpoint.state" "$d/term/checkpoint.state"
  for w in fc1.weight fc1.bias fc2.weight fc2.bias; do
    same_bytes "$dtype: SIGTERM, resumed: $w" "$d/straight-w/$w.npy" "$d/term-w/$w.npy"
  done
  # The CSV holds every step once, in order, across the stop.
  if [[ $(tail -n +2 "$d/term.csv" | cut -d, -f1 | tr '\n' ' ') != "$(seq -s ' ' 1 "$steps") " ]]; then
    fail "$dtype: the CSV does not hold steps 1..$steps once each"
  fi

  # SIGKILL (no chance to write anything) while checkpointing every step: the checkpoint left
  # is a whole one, and resuming from it ends with the same bytes.
  rc=0
  signal_after "$dtype-kill" KILL 9 "${extra[@]}" --checkpoint "$d/kill" --checkpoint-every 1 ||
    rc=$?
  ((rc == 137)) || fail "$dtype: SIGKILL: exit $rc, expected 137 (killed before its end)"
  train "$dtype-kill-resume" "${extra[@]}" --resume "$d/kill" --checkpoint "$d/kill" ||
    fail "$dtype: resume after SIGKILL failed: $(cat "$work/$dtype-kill-resume.err")"
  same_bytes "$dtype: SIGKILL, resumed: checkpoint" "$d/straight/checkpoint.state" \
    "$d/kill/checkpoint.state"
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
    echo "ok:   $what -> $(cat "$work/refused.err")"
  fi
  cmp -s "$ck/checkpoint.state" "$work/saved.state" || fail "$what: the checkpoint changed"
}
more=(--steps $((steps + 10)) --resume "$ck" --checkpoint "$ck")
refused "another --lr" "--lr" --hidden 8 --lr 0.25 --shuffle "${more[@]}"
refused "another --hidden" "--hidden" --hidden 9 --lr 0.5 --shuffle "${more[@]}"
refused "f16 over f32" "--dtype" "${model[@]}" --dtype f16 "${more[@]}"
refused "without --shuffle" "--shuffle" --hidden 8 --lr 0.5 "${more[@]}"
refused "another accumulation" "--accum-mode" "${model[@]}" --accum-mode kahan "${more[@]}"
refused "no checkpoint" "no checkpoint there" "${model[@]}" --resume "$work/empty-dir"
refused "at its end already" "already" "${model[@]}" --steps "$steps" --resume "$ck"
cp "$ck/checkpoint.state" "$work/corrupt.state"
printf '\x55' | dd of="$work/corrupt.state" bs=1 seek=200 conv=notrunc status=none
mkdir -p "$work/corrupt" && cp "$work/corrupt.state" "$work/corrupt/checkpoint.state"
refused "a corrupted checkpoint" "corrupted" "${model[@]}" --resume "$work/corrupt"
mkdir -p "$work/truncated"
head -c 1000 "$ck/checkpoint.state" >"$work/truncated/checkpoint.state"
refused "a truncated checkpoint" "truncated" "${model[@]}" --resume "$work/truncated"

echo "train-resume ($device): $failures failure(s)"
((failures == 0))
