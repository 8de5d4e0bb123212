#!/usr/bin/env bash
# `mlops promote --json` on main; its outcome as step outputs.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

if [ "${MLOPS_PULL:-true}" = "true" ]; then
  "$MLOPS_PY" -m dvc pull --quiet
fi
args=(promote --json --bump "${MLOPS_BUMP:-auto}")
[ -z "${MLOPS_STAGE:-}" ] || args+=(--stage "$MLOPS_STAGE")
[ "${MLOPS_PUSH:-true}" = "true" ] || args+=(--no-push)
out="$RUNNER_TEMP/mlops-promote.json"
set +e
"$MLOPS" "${args[@]}" > "$out"
status=$?
set -e
cat "$out"  # the JSON, or the gates' table when one failed (exit 1: no tag, nothing to deploy)
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
"$MLOPS_PY" "$GITHUB_ACTION_PATH/../setup/outputs.py" "$out" action artifact version tag >> "$GITHUB_OUTPUT"
