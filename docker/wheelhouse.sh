#!/usr/bin/env bash
# Download every file of docker/image.lock and docker/build.lock into DIR (default ./wheelhouse), each checked
# against its hash, for the image's offline build (docker/Dockerfile: pip install --no-index --find-links).
# Wheels for the image's platform (CPython 3.11, glibc 2.28 or older, x86_64); sdists only for the packages named
# in SDISTS, which publish no wheel (built in the image with the locked setuptools).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-wheelhouse}"
python="${PYTHON:-python3}"
SDISTS="antlr4-python3-runtime"
# pip's --platform takes tags literally: list every manylinux tag the base image's glibc (2.36) accepts up to 2.28
platforms=(--platform linux_x86_64 --platform manylinux1_x86_64 --platform manylinux2010_x86_64
           --platform manylinux2014_x86_64)
for minor in $(seq 5 28); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
for lock in "$here/build.lock" "$here/image.lock"; do
  "$python" -m pip download --quiet --require-hashes --no-deps --requirement "$lock" --dest "$dest" \
    --only-binary=:all: --no-binary="$SDISTS" --python-version 3.11 --implementation cp \
    --abi cp311 --abi abi3 --abi none "${platforms[@]}"
done
