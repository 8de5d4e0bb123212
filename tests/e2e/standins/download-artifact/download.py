"""Stand-in for actions/download-artifact: copy $MLOPS_E2E_ARTIFACTS/<run-id>/<name>/ to the path asked for.

As the real one, an artifact of another workflow run needs a token.
"""

import os
import shutil
import sys
from pathlib import Path

store = Path(os.environ["MLOPS_E2E_ARTIFACTS"])
run_id = os.environ.get("RUN_ID") or os.environ["GITHUB_RUN_ID"]
if os.environ.get("RUN_ID") and not os.environ.get("TOKEN"):
    sys.exit("github-token is required to download an artifact of another workflow run")
src = store / run_id / os.environ["NAME"]
if not src.is_dir():
    sys.exit(f"Unable to download artifact(s): Artifact not found for name: {os.environ['NAME']}")
dest = Path(os.environ["DEST"])
shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
print(f"stand-in download-artifact: {src} to {dest}")
