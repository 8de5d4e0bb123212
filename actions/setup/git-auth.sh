# Sourced: git identity and push credentials for one command, through the environment only (GIT_CONFIG_*):
# nothing is written to .git/config, so a persistent self-hosted runner keeps no token after the job.
# shellcheck shell=bash
if [ -z "$(git config user.email || true)" ]; then
  export GIT_AUTHOR_NAME="github-actions[bot]" GIT_COMMITTER_NAME="github-actions[bot]"
  export GIT_AUTHOR_EMAIL="41898282+github-actions[bot]@users.noreply.github.com"
  export GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
fi
if [ -n "${MLOPS_TOKEN:-}" ]; then
  echo "::add-mask::$(printf 'x-access-token:%s' "$MLOPS_TOKEN" | base64 -w0)"
  export GIT_CONFIG_COUNT=1
  export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL:-https://github.com}/.extraheader"
  GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$MLOPS_TOKEN" | base64 -w0)"
  export GIT_CONFIG_VALUE_0
fi
unset MLOPS_TOKEN
