#!/usr/bin/env bash
# `probe`: is the environment named by `venv` on this runner? `install`: build the toolkit's environment at
# $RUNNER_TEMP/mlops-toolkit (the place the other actions look), or adopt the probed one.
# Everything arrives through the environment (MLOPS_*), never through the YAML's text.
set -euo pipefail

if [ "${1:-}" = "probe" ]; then
  if [ -n "${MLOPS_VENV:-}" ] && [ -x "$MLOPS_VENV/bin/mlops" ] && [ -x "$MLOPS_VENV/bin/python" ]; then
    echo "venv=$MLOPS_VENV" >> "$GITHUB_OUTPUT"
  elif [ -n "${MLOPS_VENV:-}" ]; then
    echo "mlops setup: no toolkit at $MLOPS_VENV on this runner: installing one"
  fi
  exit 0
fi

env_dir="$RUNNER_TEMP/mlops-toolkit"
root="$(cd "$GITHUB_ACTION_PATH/../.." && pwd)"  # this action's repository, at the commit the workflow pinned

if [ -n "${MLOPS_VENV:-}" ]; then
  rm -rf "$env_dir"
  ln -s "$(cd "$MLOPS_VENV" && pwd)" "$env_dir"
  echo "mlops setup: using the environment at $MLOPS_VENV as it is"
else
  if [[ ! "${MLOPS_EXTRAS:-}" =~ ^[a-z,]*$ ]]; then
    echo "::error title=mlops setup::extras must be names separated by commas, e.g. pipeline,serve"
    exit 1
  fi
  spec="${MLOPS_SPEC:-}"
  if [ -z "$spec" ]; then
    spec="$root"
    [ -z "${MLOPS_EXTRAS:-}" ] || spec="$root[$MLOPS_EXTRAS]"
  fi
  python="${MLOPS_PYTHON:-python3}"
  # uv and the build backend from the hashed lock beside this action (pip refuses any file whose hash differs):
  # nothing that builds or installs the environment comes from the index unchecked.
  bootstrap="$RUNNER_TEMP/mlops-bootstrap"
  rm -rf "$bootstrap"
  "$python" -m venv "$bootstrap"
  "$bootstrap/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    --requirement "$root/requirements/bootstrap.lock"
  uv="$bootstrap/bin/uv"
  [ "${MLOPS_CACHE:-true}" != "true" ] || export UV_CACHE_DIR="${UV_CACHE_DIR:-$RUNNER_TEMP/mlops-uv-cache}"
  "$uv" venv --quiet --python "$python" "$env_dir"
  "$uv" pip install --quiet --python "$env_dir/bin/python" --no-deps --require-hashes \
    --requirement "$root/requirements/bootstrap.lock"
  # The project's requirements first, on their own (their hashes are checked), then the toolkit, built with the
  # setuptools just installed (no build isolation: no unpinned build backend from the index). uv keeps the
  # versions already installed that satisfy it, so a lock file decides the shared packages.
  if [ -n "${MLOPS_REQUIREMENTS:-}" ]; then
    "$uv" pip install --quiet --python "$env_dir/bin/python" --requirement "$MLOPS_REQUIREMENTS"
  fi
  "$uv" pip install --quiet --python "$env_dir/bin/python" --no-build-isolation "$spec"
fi

version="$("$env_dir/bin/mlops" --version)"
{
  echo "python=$env_dir/bin/python"
  echo "mlops=$env_dir/bin/mlops"
  echo "bin=$env_dir/bin"
  echo "version=${version#mlops }"
  # for steps that push with the job's token (source it): identity and credentials through the environment only
  echo "git-auth=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/git-auth.sh"
} >> "$GITHUB_OUTPUT"
echo "mlops setup: ${version} in $env_dir"
