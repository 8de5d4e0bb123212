#!/usr/bin/env bash
# `mlops deploy --json`; its outcome as step outputs and in the job summary.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

case "${MLOPS_TARGET:-local}" in
  local|kserve) ;;
  *) echo "::error title=mlops deploy::target must be local or kserve, not '${MLOPS_TARGET}'"; exit 1 ;;
esac
given=0
for v in "${MLOPS_REF:-}" "${MLOPS_STAGE:-}" "${MLOPS_TAG:-}"; do [ -z "$v" ] || given=$((given + 1)); done
if [ "$given" -ne 1 ]; then
  echo "::error title=mlops deploy::give exactly one of ref, stage and tag"
  exit 1
fi

args=(deploy --json --target "$MLOPS_TARGET")
if [ -n "${MLOPS_REF:-}" ]; then
  args+=(--ref "$MLOPS_REF")
elif [ -n "${MLOPS_STAGE:-}" ]; then
  args+=(--stage "$MLOPS_STAGE")
else
  # A stage tag a person pushed: NAME#STAGE#N assigns (read with the registry's own GTO parser); anything else
  # (NAME#STAGE!, a version tag) deploys nothing.
  stage="$("$MLOPS_PY" -c 'import sys; from mlops.registry.tags import parse_tag_name as p; t = p(sys.argv[1])
print(t.stage if t is not None and t.kind == "assign" else "")' "$MLOPS_TAG")"
  if [ -z "$stage" ]; then
    echo "mlops deploy: '$MLOPS_TAG' assigns no stage: nothing to deploy"
    echo "action=none" >> "$GITHUB_OUTPUT"
    exit 0
  fi
  args+=(--stage "$stage")
fi
[ "${MLOPS_PUSH:-true}" = "true" ] || args+=(--no-push)

if [ -n "${MLOPS_KUBECONFIG:-}" ]; then
  umask 077
  printf '%s\n' "$MLOPS_KUBECONFIG" > "$RUNNER_TEMP/mlops-kubeconfig"
  export KUBECONFIG="$RUNNER_TEMP/mlops-kubeconfig"
fi
unset MLOPS_KUBECONFIG

out="$RUNNER_TEMP/mlops-deploy.json"
set +e
"$MLOPS" "${args[@]}" > "$out"
status=$?
set -e
cat "$out"
if [ -s "$out" ]; then
  "$MLOPS_PY" "$GITHUB_ACTION_PATH/../setup/outputs.py" "$out" action tag where stage_tag >> "$GITHUB_OUTPUT" || true
fi
rm -f "$RUNNER_TEMP/mlops-kubeconfig"
exit "$status"
