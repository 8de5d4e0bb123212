"""Stand-in for actions/upload-artifact: copy the files into $MLOPS_E2E_ARTIFACTS/<run id>/<name>/."""

import os
import shutil
import sys
from pathlib import Path

store = Path(os.environ["MLOPS_E2E_ARTIFACTS"])
dest = store / os.environ["GITHUB_RUN_ID"] / os.environ["NAME"]
dest.mkdir(parents=True, exist_ok=True)
found = 0
for line in os.environ["PATHS"].splitlines():
    src = Path(line.strip())
    if not line.strip() or not src.exists():
        continue
    found += 1
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest / src.name)
if not found and os.environ.get("IF_NONE") == "error":
    sys.exit(f"No files were found with the provided path: {os.environ['PATHS']}")
print(f"stand-in upload-artifact: {found} path(s) to {dest}")
