# Sourced by the program tests (tests/programs/*.sh): a fresh work folder, the failure count,
# Debian's python3 (it has numpy: scripts/setup.sh), and a watchdog for a program that runs in
# the background (not under timeout(1), which would not pass SIGKILL on and sends other signals
# twice: to the program and to its process group).
#   program_test_init WORK_DIR
program_test_init() {
  work=$1
  rm -rf "$work"
  mkdir -p "$work"
  failures=0
  py=/usr/bin/python3
  [[ -x $py ]] || py=python3
}
# skip_without_device TRAIN DEVICE NAME: true (having said "NAME: skipped") when DEVICE is cuda
# and TRAIN finds none.
skip_without_device() {
  [[ $2 == cuda ]] || return 1
  "$1" --device cuda --steps 1 --print-every 0 >/dev/null 2>&1 && return 1
  echo "$3: skipped (no CUDA device)"
}
fail() {
  failures=$((failures + 1))
  echo "FAIL: $*"
}
ok() { echo "ok:   $*"; }
# watch PID SECONDS: kills PID with SIGKILL if it still runs after SECONDS; ends with it.
watch() {
  local pid=$1 tenths=$(($2 * 10))
  (
    for ((i = 0; i < tenths; i++)); do
      sleep 0.1
      kill -0 "$pid" 2>/dev/null || exit 0
    done
    kill -9 "$pid"
  ) >/dev/null 2>&1 &
}
# wait_for_line FILE PATTERN PID: until FILE has a line matching PATTERN or PID has ended.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3
  until grep -q "$pattern" "$file" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || return
    sleep 0.01
  done
}
