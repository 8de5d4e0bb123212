#!/usr/bin/env bash
# `mlops deploy --json`; its outcome as step outputs and in the job summary.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"
# shellcheck source=../setup/git-auth.sh
source "$GITHUB_ACTION_PATH/../setup/git-auth.sh"

case "${MLOPS_TARGET:-}" in
  ""|local|kserve) ;;
  *) echo "::error title=mlops deploy::target must be local or kserve, not '${MLOPS_TARGET}'"; exit 1 ;;
esac
given=0
for v in "${MLOPS_REF:-}" "${MLOPS_STAGE:-}" "${MLOPS_TAG:-}"; do [ -z "$v" ] || given=$((given + 1)); done
if [ "$given" -gt 1 ] || { [ "$given" -eq 0 ] && [ -z "${MLOPS_ENVIRONMENT:-}" ]; }; then
  echo "::error title=mlops deploy::give exactly one of ref, stage and tag (none: an environment's required stage)"
  exit 1
fi

args=(deploy --json)
[ -z "${MLOPS_TARGET:-}" ] || args+=(--target "$MLOPS_TARGET")
if [ -n "${MLOPS_ENVIRONMENT:-}" ]; then
  # The environment as params.yaml declares it: `-` when the project has no deploy.environments (then production
  # is the one environment, as before, and staging has nothing to do), else the admin token's variable.
  token_env="$("$MLOPS_PY" - "$MLOPS_ENVIRONMENT" <<'PY'
import sys

from mlops.config import load_sections
from mlops.errors import MlopsError

try:
    sections = load_sections("params.yaml")
    if sections.deploy.environments is None:
        print("-")
    else:
        print(sections.deploy.environment(sys.argv[1], sections.registry.production_stage).params.token_env)
except MlopsError as exc:
    sys.exit(f"::error title=mlops deploy::{exc.message}")
PY
)"
  if [ "$token_env" = "-" ]; then
    if [ "$MLOPS_ENVIRONMENT" != "production" ]; then
      echo "mlops deploy: no deploy.environments in params.yaml, so no $MLOPS_ENVIRONMENT: nothing to deploy"
      echo "action=none" >> "$GITHUB_OUTPUT"
      exit 0
    fi
  else
    args+=(--environment "$MLOPS_ENVIRONMENT")
    if [[ "$token_env" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && [ -n "${MLOPS_ADMIN_TOKEN:-}" ]; then
      export "$token_env=$MLOPS_ADMIN_TOKEN"
    fi
  fi
fi
if [ "$given" -eq 0 ]; then
  :  # the environment's required stage names the version (mlops deploy --environment production)
elif [ -n "${MLOPS_REF:-}" ]; then
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
