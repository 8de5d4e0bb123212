#!/usr/bin/env bash
# `mlops gate` against the base branch: its table in the log and the job summary, its verdict as an output.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"

args=(gate)
if [ -n "${MLOPS_BASE:-}" ]; then
  git check-ref-format --branch "$MLOPS_BASE" >/dev/null 2>&1 || { echo "::error::base '$MLOPS_BASE' is not a branch name"; exit 1; }
  args+=(--base "origin/$MLOPS_BASE")
fi
set +e
"$MLOPS" "${args[@]}"
status=$?
set -e
if [ "$status" -eq 0 ]; then
  echo "gates-passed=true" >> "$GITHUB_OUTPUT"
elif [ "$status" -eq 1 ]; then
  echo "gates-passed=false" >> "$GITHUB_OUTPUT"
fi
exit "$status"
