#!/usr/bin/env bash
# gradaccum-study's small configuration end to end, on a Fashion-MNIST look-alike: it exits 0,
# every claim of its report holds (claims.txt; the one across processes where mpirun and
# gradaccum-train are there), the report and its four plots are written; a bad flag is one line
# and exit 2.
#   study_small.sh STUDY WORK_DIR
set -uo pipefail
source "$(dirname "$0")/program_test.sh"
study=$1
program_test_init "$2"
mkdir -p "$work/fm"
"$py" "$(dirname "$0")/make_fashion_idx.py" "$work/fm" 512 128 || { echo "FAIL: fixture"; exit 1; }
export GRADACCUM_FASHION_MNIST_DIR=$work/fm
# Part 1 runs gradaccum-train under mpirun (as root in CI containers; loopback only).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=^rsh \
  OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo \
  OMPI_MCA_oob_tcp_if_include=lo
want=8
command -v mpirun >/dev/null && [[ -x $(dirname "$study")/gradaccum-train ]] && want=9

rc=0
timeout -k 10 600 "$study" --config small --out "$work/out" >"$work/study.out" 2>"$work/study.err" ||
  rc=$?
if ((rc != 0)); then
  fail "exit $rc: $(head -c 500 "$work/study.err")"
else
  ok "--config small: exit 0"
fi
claims=$(grep -c '^PASS ' "$work/out/claims.txt" 2>/dev/null)
if [[ $claims == "$want" ]] && ! grep -q '^FAIL' "$work/out/claims.txt"; then
  ok "$want claims, all hold"
else
  fail "claims: $(cat "$work/out/claims.txt" 2>/dev/null)"
fi
for f in report.md same_step.png lr_scaling.png how_far.png batch_norm.png batch_norm_curves.png; do
  [[ -s $work/out/$f ]] || fail "$f was not written"
done
grep -q '^## 4. Is it only the BatchNorm layers?' "$work/out/report.md" || fail "report: no part 4"
grep -q '^estimated\|estimated [0-9]* s' "$work/study.out" || fail "no time estimate"

rc=0
"$study" --config huge >"$work/bad.out" 2>"$work/bad.err" || rc=$?
if ((rc == 2)) && [[ $(wc -l <"$work/bad.err") == 1 ]] && grep -q -- "--config" "$work/bad.err"; then
  ok "bad flag: $(cat "$work/bad.err")"
else
  fail "bad flag: exit $rc, $(cat "$work/bad.err")"
fi
echo "study-small: $failures failure(s)"
((failures == 0))
