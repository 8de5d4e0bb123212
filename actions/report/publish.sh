#!/usr/bin/env bash
# Publish the report one of four ways (see action.yml's `mode`). Inputs arrive as MLOPS_* variables.
set -euo pipefail
# shellcheck source=../setup/toolkit.sh
source "$GITHUB_ACTION_PATH/../setup/toolkit.sh"

report="${MLOPS_REPORT_DIR:-reports}/report.md"

comment() {  # FILE TARGET [LABEL]: the sticky comment (mlops comment also writes the job summary)
  local out
  out="$("$MLOPS" comment --report "$1" --target "$2" --watermark-title "${3:-}")"
  echo "$out"
  echo "comment-url=${out##*: }" >> "$GITHUB_OUTPUT"
}

case "${MLOPS_MODE:-comment}" in
  comment)
    if [ -z "${GITHUB_TOKEN:-}" ]; then
      echo "::error title=mlops report::mode comment needs github-token (pull-requests: write)"
      exit 1
    fi
    comment "$report" auto
    ;;
  summary)
    cat "$report" >> "$GITHUB_STEP_SUMMARY"
    ;;
  artifact)
    # A fork's pull request: no token here. The PR number travels with the report; the commenter checks both.
    if [[ ! "${MLOPS_PR_NUMBER:-}" =~ ^[1-9][0-9]{0,9}$ ]]; then
      echo "::error title=mlops report::mode artifact runs on pull_request events (no pull request number here)"
      exit 1
    fi
    cat "$report" >> "$GITHUB_STEP_SUMMARY"
    staged="$RUNNER_TEMP/mlops-pr-comment"
    rm -rf "$staged" && mkdir -p "$staged"
    cp "$report" "$staged/report.md"
    printf '%s\n' "$MLOPS_PR_NUMBER" > "$staged/pr-number"
    ;;
  untrusted-artifact)
    if [ -z "${GITHUB_TOKEN:-}" ]; then
      echo "::error title=mlops report::mode untrusted-artifact needs github-token (pull-requests: write)"
      exit 1
    fi
    safe="$RUNNER_TEMP/mlops-safe"
    number="$("$MLOPS_PY" "$GITHUB_ACTION_PATH/untrusted.py" "$RUNNER_TEMP/mlops-untrusted" "$safe")"
    echo "pr-number=$number" >> "$GITHUB_OUTPUT"
    # A label of its own: a fork's report can only ever edit a fork report's comment, never the trusted comment
    # of a same-repository pull request.
    comment "$safe/report.md" "pr/$number" fork
    ;;
  *)
    echo "::error title=mlops report::unknown mode '${MLOPS_MODE}': comment, summary, artifact or untrusted-artifact"
    exit 1
    ;;
esac
