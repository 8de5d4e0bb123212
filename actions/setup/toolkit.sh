# Sourced by the other actions' scripts: where the toolkit that `setup` installed is (MLOPS, MLOPS_PY).
# shellcheck shell=bash
if [ -x "$RUNNER_TEMP/mlops-toolkit/bin/mlops" ]; then
  MLOPS="$RUNNER_TEMP/mlops-toolkit/bin/mlops"
  MLOPS_PY="$RUNNER_TEMP/mlops-toolkit/bin/python"
elif command -v mlops >/dev/null 2>&1; then
  MLOPS="$(command -v mlops)"
  MLOPS_PY="$(dirname "$MLOPS")/python"
else
  echo "::error title=mlops::no toolkit: run the mlops setup action (actions/setup) earlier in this job"
  exit 1
fi
export MLOPS MLOPS_PY
