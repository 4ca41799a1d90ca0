#!/usr/bin/env bash
# docs/forum.md, regenerated: builds gradaccum-study, runs its full configuration on Debian's
# Fashion-MNIST (about 3 minutes on 2 cores) and writes the report to docs/forum.md with its
# plots under docs/forum/, stamped with the date and the commit it ran at.
#   scripts/forum_report.sh [path/to/gradaccum-study]     (default: the default preset's)
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:-}
if [[ -z $study ]]; then
  bash scripts/setup.sh
  cmake --preset default >/dev/null
  cmake --build --preset default --target gradaccum-study
  study=build/default/tools/gradaccum-study
fi
# Part 1 runs gradaccum-train under mpirun; Open MPI refuses root unless told.
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
  export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
fi
out=build/study-full
rm -rf "$out"
"$study" --config full --out "$out"
commit=$(git rev-parse --short HEAD)
dirty=""
git diff --quiet HEAD -- . ':!docs/forum.md' ':!docs/forum' || dirty=" (with uncommitted changes)"
mkdir -p docs/forum
cp "$out"/*.png "$out"/*.csv docs/forum/
{
  sed -n '1p' "$out/report.md"
  echo
  echo "Regenerate this page with \`scripts/forum_report.sh\` (it runs \`gradaccum-study --config"
  echo "full\`); this one was made on $(date -u +%Y-%m-%d) at commit $commit$dirty. The CSV files"
  echo "beside the plots in [forum/](forum/) hold every number."
  tail -n +2 "$out/report.md" | sed 's#](\([a-z_]*\.png\))#](forum/\1)#'
} >docs/forum.md
echo "docs/forum.md written ($(grep -c '^- \*\*Holds' docs/forum.md) claims hold, $(grep -c '^- \*\*FAILS' docs/forum.md) fail)"
