#!/usr/bin/env bash
# `mlops promote --json` on main; its outcome as step outputs.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

if [ "${MLOPS_PULL:-true}" = "true" ]; then
  # verify: DVC re-hashes every object it downloads and refuses one whose md5 is not the one dvc.lock names (set
  # for this checkout only, .dvc/config.local).
  production="$("$MLOPS_PY" -m dvc remote default)"
  "$MLOPS_PY" -m dvc remote modify --local "$production" verify true
  if [ -n "${MLOPS_PR_REMOTE:-}" ] && [ "$MLOPS_PR_REMOTE" != "$production" ]; then
    "$MLOPS_PY" -m dvc remote modify --local "$MLOPS_PR_REMOTE" verify true
    "$MLOPS_PY" -m dvc pull --quiet --allow-missing
    # What main's dvc.lock names and the production remote lacks was pushed by the pull request's run to its own
    # remote: fetched from there (each object checked against the md5 the merged dvc.lock records), then written
    # to the production remote by this job, on main. Outputs only: no run-cache entry of a pull request.
    "$MLOPS_PY" -m dvc pull --quiet --remote "$MLOPS_PR_REMOTE"
    "$MLOPS_PY" -m dvc push --quiet
  else
    "$MLOPS_PY" -m dvc pull --quiet
  fi
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
