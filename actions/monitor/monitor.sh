#!/usr/bin/env bash
# `mlops monitor [--log DIR] [--labels FILE] [--retrain]`, with the token reaching only that command.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"

if [ "${MLOPS_RETRAIN:-false}" = "true" ]; then
  export GITHUB_TOKEN="${MLOPS_TOKEN:-}"
fi
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

if ! "$MLOPS" monitor --help >/dev/null 2>&1; then
  echo "::error title=mlops monitor::this toolkit ($("$MLOPS" --version)) has no 'monitor' command yet: pin a release that has it"
  exit 1
fi
args=(monitor)
[ -z "${MLOPS_LOG:-}" ] || args+=(--log "$MLOPS_LOG")
[ -z "${MLOPS_LABELS:-}" ] || args+=(--labels "$MLOPS_LABELS")
[ "${MLOPS_RETRAIN:-false}" != "true" ] || args+=(--retrain)
set +e
"$MLOPS" "${args[@]}"
status=$?
set -e
echo "exit-code=$status" >> "$GITHUB_OUTPUT"
exit "$status"
