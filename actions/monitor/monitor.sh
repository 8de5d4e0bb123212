#!/usr/bin/env bash
# `mlops monitor [--log DIR] [--labels FILE] [--reference FILE] [--retrain]`, with the token reaching only that
# command: the alarm issue on every run, git push credentials only with retrain.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"

if [ -n "${MLOPS_TOKEN:-}" ]; then
  export GITHUB_TOKEN="$MLOPS_TOKEN"
fi
if [ "${MLOPS_RETRAIN:-false}" != "true" ]; then
  unset MLOPS_TOKEN  # nothing to push
fi
export MLOPS_PR_TRIGGER="${MLOPS_PR_TRIGGER:-dispatch}" MLOPS_PR_WORKFLOW="${MLOPS_PR_WORKFLOW:-pr.yml}"
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

# The reference profile is a DVC output (the train stage's), absent from a fresh checkout: pulled alone.
reference="${MLOPS_REFERENCE:-models/reference.json}"
if [ ! -f "$reference" ] && [ -f dvc.yaml ]; then
  "$MLOPS_PY" -m dvc pull --quiet "$reference" \
    || echo "::warning title=mlops monitor::could not pull $reference from the DVC remote"
fi

if ! "$MLOPS" monitor --help >/dev/null 2>&1; then
  echo "::error title=mlops monitor::this toolkit ($("$MLOPS" --version)) has no 'monitor' command yet: pin a release that has it"
  exit 1
fi
args=(monitor)
[ -z "${MLOPS_LOG:-}" ] || args+=(--log "$MLOPS_LOG")
[ -z "${MLOPS_LABELS:-}" ] || args+=(--labels "$MLOPS_LABELS")
[ -z "${MLOPS_REFERENCE:-}" ] || args+=(--reference "$MLOPS_REFERENCE")
[ "${MLOPS_RETRAIN:-false}" != "true" ] || args+=(--retrain)
set +e
"$MLOPS" "${args[@]}"
status=$?
set -e
echo "exit-code=$status" >> "$GITHUB_OUTPUT"
exit "$status"
