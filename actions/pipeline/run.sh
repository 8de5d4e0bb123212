#!/usr/bin/env bash
# `mlops run` against the base branch; DVC's run cache in and out; which device the pipeline had.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  device=gpu
else
  device=cpu
fi
echo "device=$device" >> "$GITHUB_OUTPUT"
echo "mlops pipeline: running on $device"

args=(run)
[ "${MLOPS_REPORT:-true}" = "true" ] || args+=(--no-report)
if [ -n "${MLOPS_BASE:-}" ]; then
  if ! git check-ref-format --branch "$MLOPS_BASE" >/dev/null 2>&1; then
    echo "::error title=mlops pipeline::base '$MLOPS_BASE' is not a branch name"
    exit 1
  fi
  # checkout with fetch-depth: 0 brings origin/BASE; a shallow one gets it here (public repositories).
  if ! git rev-parse --verify --quiet "refs/remotes/origin/$MLOPS_BASE^{commit}" >/dev/null; then
    git fetch --no-tags --quiet origin "+refs/heads/$MLOPS_BASE:refs/remotes/origin/$MLOPS_BASE"
  fi
  args+=(--base "origin/$MLOPS_BASE")
fi

# Where this run may write: `remote`, never the default remote that production reads (promote and deploy pull
# from it). A pull request's outputs and run-cache entries are unreviewed: pushed there, a planted run-cache entry
# would be restored as the "trained" model of later runs.
production_remote="$("$MLOPS_PY" -m dvc remote default 2>/dev/null || true)"
if [ "${MLOPS_PUSH:-false}" = "true" ] && [ -n "${MLOPS_REMOTE:-}" ]; then
  if [ "$MLOPS_REMOTE" = "$production_remote" ]; then
    echo "::error title=mlops pipeline::remote '$MLOPS_REMOTE' is the default DVC remote, the one production reads: name a remote of its own for these runs"
    exit 1
  fi
  if ! "$MLOPS_PY" -m dvc remote list | awk '{print $1}' | grep -qxF -- "$MLOPS_REMOTE"; then
    echo "::error title=mlops pipeline::no DVC remote named '$MLOPS_REMOTE' in .dvc/config"
    exit 1
  fi
fi

if [ "${MLOPS_PULL:-true}" = "true" ]; then
  # `mlops run --pull`: checks out every output the remote holds, restores what the run cache holds, and
  # recomputes every stage whose outputs are still missing (a first pull request, a pruned or new remote).
  args+=(--pull)
fi

log="$RUNNER_TEMP/mlops-run.log"
set +e
"$MLOPS" "${args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
stages="$(sed -n 's/^stages run: //p' "$log" | tail -n 1)"
[ "$stages" != "none (all up to date)" ] || stages=""
echo "stages-run=$stages" >> "$GITHUB_OUTPUT"
{
  echo "### mlops pipeline ($device)"
  echo
  echo "stages run: ${stages:-none (all up to date or restored from the run cache)}"
  recomputed="$(sed -n 's/^stages recomputed: //p' "$log" | tail -n 1)"
  [ -z "$recomputed" ] || echo "stages recomputed: $recomputed"
} >> "$GITHUB_STEP_SUMMARY"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi

if [ "${MLOPS_PUSH:-false}" = "true" ]; then
  # Reads (outputs, run-cache restores) come from the default remote, which only main writes; the push goes to
  # `remote` when named. Nothing reads that remote back automatically: a run-cache entry one pull request planted
  # there is never restored as another's "trained" model.
  if [ -n "${MLOPS_REMOTE:-}" ]; then
    "$MLOPS_PY" -m dvc push --run-cache --quiet --remote "$MLOPS_REMOTE"
  else
    "$MLOPS_PY" -m dvc push --run-cache --quiet
  fi
  echo "mlops pipeline: outputs and run cache pushed to the DVC remote ${MLOPS_REMOTE:-$production_remote}"
fi
