"""The serving image (docker/Dockerfile) and its release workflow, checked statically: the base pinned by digest, a
numeric non-root user, every dependency from the hashed lock with no index, a HEALTHCHECK on /v2/health/live,
`mlops serve` as the entrypoint with arguments it accepts, a build context holding only what the image needs, and a
release workflow that pushes it with pinned actions and records its digest.

Building the image takes minutes and a container engine: `MLOPS_TEST_IMAGE_BUILD=1` runs the slow test that builds
it with podman (as in bench/RESULTS.md, "The serving image") and serves a package from it; it fails, never skips,
when asked for and the build cannot happen."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.deploy import kserve

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker/Dockerfile"
LOCK = REPO / "docker/image.lock"
RELEASE = REPO / ".github/workflows/release.yml"
EXTRAS = ("serve", "grpc", "xgboost", "lightgbm", "sklearn", "onnx")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path) -> dict[str, str]:
    return {_norm(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", path.read_text(), re.MULTILINE)}


def test_the_base_image_is_pinned_by_digest() -> None:
    [arg] = [a for a in of("ARG") if a.startswith("BASE=")]
    assert re.fullmatch(r"BASE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", arg), arg
    froms = of("FROM")
    assert len(froms) == 2  # a build stage and the runtime stage, both from the pinned base
    assert all(f.split()[0] == "${BASE}" for f in froms), froms


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = of("USER")
    assert users, "no USER: the server would run as root"
    last = users[-1]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", last), last  # numeric: runAsNonRoot can verify it
    assert instructions()[-1][0] != "USER" and [w for w, _ in instructions()].index("ENTRYPOINT") > \
        max(i for i, (w, _) in enumerate(instructions()) if w == "USER")
    assert f"--uid {last.split(':')[0]}" in " ".join(of("RUN"))
    # the ServingRuntime insists on it
    runtime = kserve.render_runtime("churn-model", "ml", "ghcr.io/a/b@sha256:" + "0" * 64)
    assert runtime["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_dependencies_come_only_from_the_hashed_lock_with_no_index() -> None:
    run = " ".join(of("RUN"))
    installs = [s for s in re.split(r"&&", run) if " install " in s and "pip" in s]
    assert len(installs) == 3, installs
    backend, lock_install, toolkit = installs
    for flag in ("--no-index", "--find-links", "--require-hashes", "-r /build/build.lock"):
        assert flag in backend, backend
    for flag in ("--no-index", "--find-links", "--require-hashes", "--no-deps", "--no-build-isolation",
                 "-r /build/image.lock"):
        assert flag in lock_install, lock_install
    # the toolkit itself: from this source, nothing fetched, nothing else resolved
    for flag in ("--no-index", "--no-deps", "--no-build-isolation", "/build/src"):
        assert flag in toolkit, toolkit
    assert "pip check" in run
    assert not re.search(r"\b(curl|wget)\b|--index-url|--extra-index-url|--trusted-host", DOCKERFILE.read_text())


def test_the_lock_pins_every_package_with_hashes_and_agrees_with_the_runtime_lock() -> None:
    text = LOCK.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert blocks
    for block in blocks:
        assert re.match(r"^[A-Za-z0-9_.-]+==\S+ \\\n", block), block[:80]
        assert "--hash=sha256:" in block, block[:80]
    pins = lock_pins(LOCK)
    # what the extras need is in it
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + [d for e in EXTRAS for d in project["optional-dependencies"][e]]
    for dep in wanted:
        name = _norm(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0])
        assert name in pins, f"{dep}: not in docker/image.lock"
    bootstrap = lock_pins(REPO / "requirements/bootstrap.lock")["setuptools"]
    assert pins["setuptools"] == lock_pins(REPO / "docker/build.lock")["setuptools"] == bootstrap
    # the versions the tests run with
    runtime = lock_pins(REPO / "requirements/runtime.lock")
    differ = {n: (v, runtime[n]) for n, v in pins.items() if n in runtime and runtime[n] != v}
    assert differ == {}, differ


def test_the_entrypoint_is_mlops_serve_and_every_argument_is_one_it_accepts() -> None:
    assert [json.loads(e) for e in of("ENTRYPOINT")] == [["mlops", "serve"]]
    [cmd] = [json.loads(c) for c in of("CMD")]
    from typer.main import get_command

    from mlops.cli import app

    serve = get_command(app).get_command(None, "serve")  # type: ignore[attr-defined]
    options = {o for p in serve.params for o in p.opts}
    for args in (cmd, kserve.serve_args(grpc=True)):
        flags = [a for a in args if a.startswith("--")]
        assert flags and set(flags) <= options, set(flags) - options
    assert "--grpc-port" in options  # so the ServingRuntime lists grpc-v2
    assert cmd[cmd.index("--model-dir") + 1] == kserve.MODEL_DIR


def test_the_healthcheck_asks_the_servers_liveness_on_its_port() -> None:
    [check] = of("HEALTHCHECK")
    assert check.split()[0].startswith("--")
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert f"http://127.0.0.1:{kserve.HTTP_PORT}/v2/health/live" in " ".join(command)
    assert f"EXPOSE {kserve.HTTP_PORT} {kserve.GRPC_PORT}" in DOCKERFILE.read_text()


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes (and its parents)."""
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(rel, pat) or rel.startswith(pat + "/") or fnmatch.fnmatch(rel, pat.replace("**/", "")):
            result = not neg
    return result


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert patterns[0] == "*"
    for source in ("docker/image.lock", "docker/build.lock", "pyproject.toml", "README.md", "mlops/cli/serve.py",
                   "mlops/deploy/schemas/servingruntime-v1alpha1.schema.json", "wheelhouse/numpy.whl"):
        assert not _ignored(source, patterns), source
    for private in (".venv/bin/python", ".git/config", ".dvc/config", ".mlops/store/x", "models/model.ubj",
                    "params.yaml", "data/raw.csv", "mlops/__pycache__/x.pyc"):
        assert _ignored(private, patterns), private
    copied = [a.split()[:-1] for a in of("COPY") if not a.startswith("--from")]
    for sources in copied:
        for src in sources:
            assert not _ignored(src.rstrip("/") + ("/x" if src.endswith("/") else ""), patterns), src


def test_the_release_workflow_builds_this_dockerfile_and_records_the_digest() -> None:
    text = RELEASE.read_text()
    doc = yaml.safe_load(text)
    triggers = doc[True]  # YAML 1.1 reads `on` as true
    assert list(triggers) == ["push"] and list(triggers["push"]) == ["tags"]
    for tag in triggers["push"]["tags"]:
        assert tag.startswith("v[0-9]+.")  # toolkit versions only: not v1, not a registry tag NAME@vX.Y.Z
    assert doc["permissions"] == {}
    [job] = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    steps = job["steps"]
    build = next(s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert re.fullmatch(r"docker/build-push-action@[0-9a-f]{40}", build["uses"])
    assert build["with"]["file"] == "docker/Dockerfile" and build["with"]["context"] == "."
    assert build["with"]["push"] is True
    assert re.search(r"docker/build-push-action@[0-9a-f]{40} # v\d+\.\d+\.\d+", text)
    download = next(s for s in steps if "docker/wheelhouse.sh" in s.get("run", ""))
    assert download["run"].split()[-1] == "wheelhouse"
    script = (REPO / "docker/wheelhouse.sh").read_text()
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", '"$here/build.lock" "$here/image.lock"'):
        assert flag in script, flag
    record = steps[-1]
    assert record["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert "GITHUB_STEP_SUMMARY" in record["run"] and "image: $IMAGE@$DIGEST" in record["run"]
    assert set(re.findall(r"secrets\.(\w+)", text)) == {"GITHUB_TOKEN"}


# --- the real build, on request -----------------------------------------------------------------------------------

BASE = "localhost/debian-python:bookworm"


@pytest.mark.slow
@pytest.mark.e2e
def test_the_image_builds_and_serves_a_package(tmp_path: Path) -> None:
    if os.environ.get("MLOPS_TEST_IMAGE_BUILD") != "1":
        pytest.skip("builds the image with podman (minutes): set MLOPS_TEST_IMAGE_BUILD=1")
    podman = shutil.which("podman")
    assert podman, "MLOPS_TEST_IMAGE_BUILD=1 but no podman (apt-get install podman runc debootstrap)"
    run = [podman, "--runtime", "runc"]
    assert subprocess.run([*run, "image", "exists", BASE], check=False).returncode == 0, \
        f"no {BASE}: build it as bench/RESULTS.md says (debootstrap --include=python3,python3-venv + podman import)"
    subprocess.run([str(REPO / "docker/wheelhouse.sh"), str(REPO / "wheelhouse")], check=True, timeout=1800,
                   env={**os.environ, "PYTHON": sys.executable})
    tag = "localhost/mlops-serve:test"
    subprocess.run([*run, "build", "--network", "host", "--format", "docker", "--build-arg", f"BASE={BASE}",
                    "-f", str(DOCKERFILE), "-t", tag, str(REPO)], check=True, timeout=3600)
    inspect: Any = json.loads(subprocess.run([*run, "image", "inspect", tag], check=True, capture_output=True,
                                             text=True).stdout)[0]
    assert inspect["Config"]["User"] == "10001:10001"
    assert inspect["Config"]["Entrypoint"] == ["mlops", "serve"]
    from mlops.package import PackageRequest, package_model
    from tests.examples import build
    from tests.serve_helpers import call, free_port

    ex = build("sklearn-binary", tmp_path / "example")
    pkg = tmp_path / "models"
    pkg.mkdir()
    shutil.copy(ex.model, pkg / ex.model.name)
    package_model(PackageRequest(pkg / ex.model.name, ex.data, ex.target, "binary"))
    pkg.chmod(0o755)
    port = free_port()
    name = f"mlops-serve-test-{port}"
    subprocess.run([*run, "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                    "-v", f"{pkg}:/mnt/models:ro", tag], check=True)
    try:
        for _ in range(600):
            try:
                if call(port, "GET", "/v2/health/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        meta = call(port, "GET", "/v2/models/models").json()  # the default CMD names it after /mnt/models
        assert [i["name"] for i in meta["inputs"]] == list(ex.features().columns), meta
    finally:
        subprocess.run([*run, "rm", "-f", name], check=False, capture_output=True)
