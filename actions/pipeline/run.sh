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

if [ "${MLOPS_PULL:-true}" = "true" ]; then
  # First the outputs that the committed dvc.lock names: unchanged stages then have them in the workspace (the
  # report reads them; `dvc repro --pull --allow-missing` skips such stages without checking them out). Then
  # `mlops run --pull`: a changed stage comes back from the run cache when an earlier run pushed that result.
  "$MLOPS_PY" -m dvc pull --allow-missing --quiet || echo "::warning title=mlops pipeline::dvc pull failed: stages will run without the remote's outputs"
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
} >> "$GITHUB_STEP_SUMMARY"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi

if [ "${MLOPS_PUSH:-false}" = "true" ]; then
  "$MLOPS_PY" -m dvc push --run-cache --quiet
  echo "mlops pipeline: outputs and run cache pushed to the DVC remote"
fi
