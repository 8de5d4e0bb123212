"""mlops deploy: resolve a version from its tag, fetch its artifact through DVC and verify it (a tampered remote is
refused before anything is installed), plan against the server, render for KServe; the smoke test's arithmetic."""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

import mlops.cli.deploy  # noqa: F401  (registers `mlops deploy` on the app)
from mlops import dvc
from mlops.cli import app
from mlops.config import DeployParams, load_sections
from mlops.deploy import Release, Server, fetch_release, plan_local, release_from_block
from mlops.deploy.smoke import (
    Check,
    Sample,
    Thresholds,
    counter,
    histogram_quantile,
    parse_metrics,
    percentile,
    read_golden,
    v2_request,
    window_checks,
)
from mlops.errors import DeployError, RefNotFound
from mlops.formats import tagmeta
from mlops.jobs.deploy import DeployOptions, deploy, resolve
from mlops.jobs.promote import PromoteOptions, promote
from tests.deploy_helpers import (
    TOKEN,
    AdminDouble,
    build_released_project,
    copy_tree,
    listing,
    remote_object,
    tamper,
    template_env,
)
from tests.helpers import commit_all, git, runner
from tests.helpers import dvc as run_dvc


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("released")
    with template_env(tmp_path_factory.mktemp("released-home")):
        build_released_project(root)
    return root


@pytest.fixture
def repo(_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = copy_tree(_template, tmp_path / "copy")
    monkeypatch.chdir(r)
    return r


@pytest.fixture(scope="module")
def admin() -> Any:
    double = AdminDouble()
    yield double
    double.close()


def release(repo: Path, ref: str = "churn-model@v1.0.1") -> Release:
    reg = load_sections(repo / "params.yaml").registry
    found, _ = resolve(repo, reg, DeployOptions(ref=ref, push=False))
    return found


def drop_cache(repo: Path) -> None:
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)


# --- resolve ------------------------------------------------------------------------------------------------------


def test_resolve_reads_the_tag(repo: Path) -> None:
    r = release(repo)
    assert (r.artifact, r.version, r.tag) == ("churn-model", "v1.0.1", "churn-model@v1.0.1")
    assert r.commit == git(repo, "rev-parse", "churn-model@v1.0.1^{commit}")
    assert (r.path, r.model_file, r.serve_file, r.whole) == ("models", "models/model.ubj", "model.ubj", False)
    assert r.model_sha256 == hashlib.sha256((repo / "models/model.ubj").read_bytes()).hexdigest()
    assert r.dvc_md5 == yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]
    reg = load_sections(repo / "params.yaml").registry
    by_stage, _ = resolve(repo, reg, DeployOptions(stage="production", push=False))
    assert by_stage.version == "v1.0.0"


def test_resolve_errors(repo: Path) -> None:
    reg = load_sections(repo / "params.yaml").registry
    with pytest.raises(RefNotFound, match=r"'churn-model@v9.0.0' is not registered"):
        resolve(repo, reg, DeployOptions(ref="churn-model@v9.0.0", push=False))
    with pytest.raises(RefNotFound, match="no version in stage 'staging'"):
        resolve(repo, reg, DeployOptions(stage="staging", push=False))
    with pytest.raises(DeployError, match=r"not NAME@vX.Y.Z"):
        resolve(repo, reg, DeployOptions(ref="churn-model#production#1", push=False))
    with pytest.raises(DeployError, match="exactly one of --ref"):
        resolve(repo, reg, DeployOptions(ref="churn-model@v1.0.1", stage="production", push=False))


def test_a_tag_without_a_sha256_cannot_be_deployed() -> None:
    with pytest.raises(DeployError, match="records no model_sha256"):
        release_from_block("churn-model", "v0.3.0", "churn-model@v0.3.0", "a" * 40, None, "models", None)
    block = tagmeta.from_json({"format": "mlops.registry/1", "model_sha256": "b" * 64, "path": "models",
                               "model_file": "models", "commit": "c" * 40})
    with pytest.raises(DeployError, match="metadata says cccccccccccc"):
        release_from_block("churn-model", "v1.0.0", "churn-model@v1.0.0", "a" * 40, block, "models", None)
    whole = release_from_block("churn-model", "v1.0.0", "churn-model@v1.0.0", "c" * 40, block, "models", None)
    whole_json = block.to_json()
    assert whole.whole
    assert whole.serve_file == "model.ubj"
    for key, value in (("path", "/etc"), ("path", "models/../.."), ("model_file", "models/../../x")):
        bad = tagmeta.from_json({**whole_json, key: value})
        with pytest.raises(DeployError, match=f"its tag's {key} .* is not a relative path"):
            release_from_block("churn-model", "v1.0.0", "churn-model@v1.0.0", "c" * 40, bad, "models", None)


# --- provenance: on main, made by the promote identity (or signed) ------------------------------------------------


def forge(repo: Path, name: str, *, from_tag: str = "churn-model@v1.0.1", sign_key: Path | None = None,
          tagger: tuple[str, str] = ("Mallory", "mallory@example.com")) -> None:
    """An annotated tag NAME@vX.Y.Z at FROM_TAG's commit with its metadata (a valid block for that commit), made
    by TAGGER (signed with SIGN_KEY, an SSH key, when given): what any writer can push."""
    version = name.split("@", 1)[1]
    old = from_tag.split("@", 1)[1]
    message = git(repo, "for-each-ref", "--format=%(contents)", f"refs/tags/{from_tag}")
    (repo.parent / "msg").write_text(message.replace(f'"version": "{old}"', f'"version": "{version}"') + "\n")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_key}"] if sign_key else []
    env = {**os.environ, "GIT_COMMITTER_NAME": tagger[0], "GIT_COMMITTER_EMAIL": tagger[1]}
    subprocess.run(["git", *sign, "tag", "-s" if sign_key else "-a", "--cleanup=verbatim", "-F",
                    str(repo.parent / "msg"), name, f"{from_tag}^{{commit}}"], cwd=repo, env=env, check=True,
                   capture_output=True)


def ssh_key(tmp: Path, name: str) -> tuple[Path, str]:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (tmp / f"{name}.pub").read_text().strip()


def set_registry(repo: Path, **values: Any) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["registry"].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_version_tagged_off_main_is_refused_with_one_line(repo: Path) -> None:
    from mlops.registry.provenance import UntrustedVersion

    side = git(repo, "rev-parse", "churn-model@v1.0.2^{commit}")
    with pytest.raises(UntrustedVersion, match=rf"churn-model@v1.0.2: its commit {side[:12]} is not on main"):
        release(repo, "churn-model@v1.0.2")
    result = runner.invoke(app, ["deploy", "--target", "kserve", "--ref", "churn-model@v1.0.2", "--no-push"])
    assert result.exit_code == 1
    error = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert error == [f"error: churn-model@v1.0.2: its commit {side[:12]} is not on main: only versions merged to "
                     "main are deployed"]
    assert not (repo / "deploy").exists()
    # merged into main, the same version is deployable
    git(repo, "merge", "-q", "--no-ff", "side", "-m", "merge side")
    assert release(repo, "churn-model@v1.0.2").commit == side


def test_a_version_tagged_by_someone_else_is_refused(repo: Path) -> None:
    from mlops.registry.provenance import UntrustedVersion

    forge(repo, "churn-model@v9.0.0")
    with pytest.raises(UntrustedVersion, match=r"churn-model@v9.0.0: tagged by Mallory <mallory@example.com>, not "
                                               r"by the promote identity \(Test Committer <committer@example.com>\)"):
        release(repo, "churn-model@v9.0.0")
    result = runner.invoke(app, ["deploy", "--target", "kserve", "--ref", "churn-model@v9.0.0", "--no-push"])
    assert result.exit_code == 1
    assert "error: churn-model@v9.0.0: tagged by Mallory" in result.stderr
    set_registry(repo, promote_identities=[{"name": "Mallory", "email": "MALLORY@example.com"}])
    assert release(repo, "churn-model@v9.0.0").version == "v9.0.0"  # trusted once listed (email in any case)


def test_the_default_promote_identity_is_the_workflows_bot(repo: Path) -> None:
    from mlops.registry.provenance import UntrustedVersion

    raw = yaml.safe_load((repo / "params.yaml").read_text())
    del raw["registry"]["promote_identities"]
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(UntrustedVersion, match=r"not by the promote identity \(github-actions\[bot\] "):
        release(repo, "churn-model@v1.0.1")  # made by the tests' identity
    forge(repo, "churn-model@v1.0.3", tagger=("github-actions[bot]",
                                              "41898282+github-actions[bot]@users.noreply.github.com"))
    assert release(repo, "churn-model@v1.0.3").version == "v1.0.3"


def test_a_tag_signed_by_an_allowed_key_is_accepted_whoever_made_it(repo: Path, tmp_path: Path) -> None:
    from mlops.registry.provenance import UntrustedVersion

    good, good_pub = ssh_key(tmp_path, "release-key")
    bad, _ = ssh_key(tmp_path, "other-key")
    (repo / "allowed_signers").write_text(f"release@example.com {good_pub}\n")
    set_registry(repo, allowed_signers="allowed_signers")
    forge(repo, "churn-model@v1.1.0", sign_key=good)
    forge(repo, "churn-model@v1.2.0", sign_key=bad)
    forge(repo, "churn-model@v1.3.0")
    assert release(repo, "churn-model@v1.1.0").version == "v1.1.0"
    for ref in ("churn-model@v1.2.0", "churn-model@v1.3.0"):
        with pytest.raises(UntrustedVersion, match=r"nor signed by a key of registry\.allowed_signers"):
            release(repo, ref)
    set_registry(repo, allowed_signers="missing")
    with pytest.raises(UntrustedVersion, match=r"registry\.allowed_signers: missing not found"):
        release(repo, "churn-model@v1.3.0")


def test_a_tag_message_copied_from_another_version_is_refused(repo: Path) -> None:
    message = git(repo, "for-each-ref", "--format=%(contents)", "refs/tags/churn-model@v1.0.1")
    (repo.parent / "msg").write_text(message + "\n")
    git(repo, "tag", "-a", "--cleanup=verbatim", "-F", str(repo.parent / "msg"), "churn-model@v1.0.5",
        "churn-model@v1.0.1^{commit}")
    with pytest.raises(DeployError, match=r"its tag's metadata describes v1\.0\.1"):
        release(repo, "churn-model@v1.0.5")


def test_a_crafted_dvc_hash_cannot_read_a_file_outside_the_cache(repo: Path, tmp_path: Path) -> None:
    """dvc.lock recording `models` as `0f/<absolute path>` made deploy copy that host file (and print its md5)."""
    from mlops.errors import DvcError
    from mlops.formats.tagmeta import TagMeta

    secret = tmp_path / "host-secret"
    secret.write_bytes(b"not for the deploy log")
    crafted = "0f" + str(secret)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    lock["stages"]["train"]["outs"][0]["md5"] = crafted
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    sha = commit_all(repo, "a crafted dvc.lock")
    meta = TagMeta(action="register", artifact="churn-model", version="v2.0.0", commit=sha, path="models",
                   model_file="models", model_sha256=hashlib.sha256(secret.read_bytes()).hexdigest())
    (repo.parent / "msg").write_text(tagmeta.write("churn-model v2.0.0", meta))
    git(repo, "tag", "-a", "--cleanup=verbatim", "-F", str(repo.parent / "msg"), "churn-model@v2.0.0", sha)
    out = tmp_path / "out"
    with pytest.raises(DeployError, match=r"dvc\.lock at \w+: '0f/.*' is not a DVC md5 hash"):
        fetch_release(repo, release(repo, "churn-model@v2.0.0"), out)
    assert not out.exists() or not any(out.iterdir())
    # the cache-path helpers themselves never build a path from a non-hash
    for bad in (crafted, "0f/../../x", "A" * 32, "0" * 32 + ".dir\n", "0" * 31):
        with pytest.raises(DvcError, match="is not a DVC md5 hash"):
            dvc.cache_object(repo, bad)
        with pytest.raises(DvcError, match="is not a DVC md5 hash"):
            dvc.remote_object_url("s3://bucket/store", bad)
        dvc.discard_cache_object(repo, "0" * 32)  # a valid hash that is not cached: nothing happens
    assert secret.exists()
    assert dvc.remote_object_url("s3://b/s/", "ab" + "c" * 30 + ".dir") == "s3://b/s/files/md5/ab/" + "c" * 30 + ".dir"


def test_a_listing_entry_outside_the_artifact_or_with_a_crafted_hash_is_refused(repo: Path, tmp_path: Path) -> None:
    h = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]
    obj = dvc.cache_object(repo, h)
    assert obj is not None
    for items, error in (([{"relpath": "../escape", "md5": "0" * 32}], "outside the artifact"),
                         ([{"relpath": "model.ubj", "md5": "0f/etc/hostname"}], "is not a DVC md5 hash")):
        data = json.dumps(items).encode()
        # a listing whose name matches its content (what a writer of the cache or remote can make)
        fake = hashlib.md5(data).hexdigest() + ".dir"  # DVC's content hash
        target = repo / ".dvc/cache/files/md5" / fake[:2] / fake[2:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        r = release(repo)
        crafted = Release(r.artifact, r.version, r.tag, r.commit, r.path, r.model_file, r.model_sha256, None,
                          r.serve_file)
        from mlops.deploy import fetch as fetch_module

        with pytest.raises(DeployError, match=error):
            fetch_module._listing(repo, crafted, fake)
    assert obj.is_file()


# --- fetch and verify ---------------------------------------------------------------------------------------------


def test_fetch_from_the_local_cache(repo: Path, tmp_path: Path) -> None:
    art = fetch_release(repo, release(repo), tmp_path / "out")
    assert art.source == "local DVC cache"
    assert sorted(p.name for p in art.directory.iterdir()) == ["feature_schema.json", "golden.json", "model.ubj"]
    assert art.model_path.read_bytes() == (repo / "models/model.ubj").read_bytes()
    assert art.model_md5 == listing(repo)["model.ubj"]


def test_fetch_from_the_remote_at_the_tags_commit_leaves_the_working_tree_alone(repo: Path, tmp_path: Path) -> None:
    drop_cache(repo)
    shutil.rmtree(repo / "models")
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    old = release(repo, "churn-model@v1.0.0")
    art = fetch_release(repo, old, tmp_path / "out")
    assert art.source == "DVC remote"
    assert hashlib.sha256(art.model_path.read_bytes()).hexdigest() == old.model_sha256
    assert b"fake-xgboost-model:w1" in art.model_path.read_bytes()  # v1.0.0's bytes, not HEAD's
    assert not (repo / "models").exists()  # nothing checked out into the working tree
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == status
    assert git(repo, "worktree", "list").count("\n") == 0  # the temporary worktree is gone
    again = fetch_release(repo, old, tmp_path / "again")  # now in the cache
    assert again.source == "local DVC cache"


def test_a_tampered_model_in_the_remote_is_refused_naming_file_and_hashes(repo: Path, tmp_path: Path) -> None:
    r = release(repo)
    md5 = listing(repo)["model.ubj"]
    tamper(remote_object(repo, md5), b"fake-xgboost-model:EVIL" * 64)
    drop_cache(repo)
    evil = hashlib.sha256(b"fake-xgboost-model:EVIL" * 64).hexdigest()
    with pytest.raises(DeployError) as info:
        fetch_release(repo, r, tmp_path / "out")
    msg = info.value.message
    assert msg.startswith("models/model.ubj of churn-model@v1.0.1: sha256 ")
    assert evil in msg
    assert r.model_sha256 in msg
    assert "refused before install" in msg
    # the bad object is not kept in the cache, to be trusted by a later checkout or deploy
    assert dvc.cache_object(repo, md5) is None


def test_a_tag_that_checksums_the_whole_directory(repo: Path, tmp_path: Path) -> None:
    """registry.model_file unset: the tag's sha256 is the directory's manifest (mlops.files.sha256_tree)."""
    from dataclasses import replace

    from mlops.files import sha256_tree

    r = release(repo)
    whole = replace(r, model_file="models", model_sha256=sha256_tree(repo / "models"))
    art = fetch_release(repo, whole, tmp_path / "ok")
    assert (art.serve_file, art.serve_sha256) == ("model.ubj", r.model_sha256)
    with pytest.raises(DeployError, match=r"models/ \(the whole directory\) of churn-model@v1.0.1: sha256"):
        fetch_release(repo, replace(whole, model_sha256="0" * 64), tmp_path / "bad")


def test_a_tampered_golden_file_is_refused_by_its_md5(repo: Path, tmp_path: Path) -> None:
    md5 = listing(repo)["golden.json"]
    tamper(remote_object(repo, md5), b'{"records": [], "predictions": []}')
    drop_cache(repo)
    with pytest.raises(DeployError, match=rf"models/golden.json of churn-model@v1.0.1: md5 \w+ does not match "
                                          rf"dvc.lock's {md5}"):
        fetch_release(repo, release(repo), tmp_path / "out")


def test_a_tampered_listing_is_refused(repo: Path, tmp_path: Path) -> None:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    h = lock["stages"]["train"]["outs"][0]["md5"]
    obj = remote_object(repo, h)
    items = json.loads(obj.read_text())
    items[0]["md5"], items[1]["md5"] = items[1]["md5"], items[0]["md5"]  # objects that exist, swapped
    tamper(obj, json.dumps(items).encode())
    drop_cache(repo)
    with pytest.raises(DeployError, match=r"listing .* corrupted or tampered"):
        fetch_release(repo, release(repo), tmp_path / "out")


def test_an_object_missing_from_the_remote_is_named(repo: Path, tmp_path: Path) -> None:
    md5 = listing(repo)["model.ubj"]
    remote_object(repo, md5).unlink()
    drop_cache(repo)
    # DVC keeps no listing of a directory it could not fetch whole: its own reason names the object
    with pytest.raises(DeployError, match=rf"cannot fetch models \(commit \w+\) from the DVC remote: failed to "
                                          rf"transfer '{md5}'"):
        fetch_release(repo, release(repo), tmp_path / "out")


def test_a_tampered_remote_is_refused_before_the_server_or_store_is_touched(repo: Path, admin: AdminDouble,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.deploy import apply_local

    tamper(remote_object(repo, listing(repo)["model.ubj"]), b"tampered")
    drop_cache(repo)
    admin.states["churn-model"] = {"stable": "v1.0.0", "canary": None, "canary_percent": 0, "generation": 1}
    admin.requests.clear()
    server = Server(admin.url, TOKEN)
    params = DeployParams(server_url=admin.url)
    plan = plan_local(server, release(repo), repo / ".mlops/store", params)
    with pytest.raises(DeployError, match=r"sha256 .* does not match the tag's"):
        apply_local(repo, plan, server, params)
    assert not (repo / ".mlops/store").exists()
    assert [m for m, _, _ in admin.requests] == ["GET"]  # the plan's read, nothing else


# --- plan against the server -------------------------------------------------------------------------------------


def test_plan_local_against_what_the_server_serves(repo: Path, admin: AdminDouble) -> None:
    server = Server(admin.url, TOKEN)
    params = DeployParams(server_url=admin.url, canary_percent=15)
    r = release(repo)
    store = repo / ".mlops/store"
    admin.states.pop("churn-model", None)
    first = plan_local(server, r, store, params)
    assert (first.action, first.stable) == ("first_deploy", None)
    assert any("as stable" in s for s in first.steps)
    admin.states["churn-model"] = {"stable": "v1.0.0", "canary": None, "canary_percent": 0, "previous": None,
                                   "generation": 3, "workers": 2}
    plan = plan_local(server, r, store, params)
    assert (plan.action, plan.stable) == ("deploy", "v1.0.0")
    assert any("15%" in s for s in plan.steps)
    assert any("roll back to v1.0.0" in s for s in plan.steps)
    admin.states["churn-model"]["stable"] = "v1.0.1"
    assert plan_local(server, r, store, params).action == "already_serving"
    admin.states["churn-model"].update(stable="v1.0.0", canary="v1.0.1", canary_percent=10)
    with pytest.raises(DeployError, match=r"already runs churn-model v1.0.1 as a canary"):
        plan_local(server, r, store, params)


def _apply(repo: Path, admin: AdminDouble, ref: str) -> None:
    from mlops.deploy import apply_local

    server = Server(admin.url, TOKEN)
    params = DeployParams(server_url=admin.url)
    apply_local(repo, plan_local(server, release(repo, ref), repo / ".mlops/store", params), server, params)


def test_a_load_the_server_refuses_fails_the_smoke_test_without_touching_the_stable(repo: Path,
                                                                                     admin: AdminDouble) -> None:
    from mlops.deploy import CanaryFailed

    admin.states["churn-model"] = {"stable": "v1.0.0", "canary": None, "canary_percent": 0, "previous": "v0.9.0",
                                   "generation": 4}
    admin.answers = {"load": (409, {"error": "churn-model v1.0.1: warm-up answers differ from the golden "
                                             "predictions by 0.985 (tolerance 1e-05)"})}
    admin.requests.clear()
    try:
        with pytest.raises(CanaryFailed) as info:
            _apply(repo, admin, "churn-model@v1.0.1")
    finally:
        admin.answers = {}
    exc = info.value
    assert (exc.ref, exc.serving, exc.exit_code) == ("churn-model@v1.0.1", "v1.0.0", 1)
    [check] = exc.checks
    assert (check.name, check.passed, check.figures) == ("load", False, {"status": 409})
    assert "warm-up answers differ" in check.detail
    assert "traffic stays on v1.0.0" in exc.message
    # the server's rollback with no canary would bring back the *previous* stable: it must not be called here
    assert [(m, p) for m, p, _ in admin.requests] == [
        ("GET", "/admin/models/churn-model"), ("POST", "/admin/models/churn-model/load"),
        ("GET", "/admin/models/churn-model")]
    assert (repo / ".mlops/store/churn-model/v1.0.1/model.ubj").is_file()  # installed (verified) before the load


def test_a_store_the_server_does_not_read_is_a_setup_error(repo: Path, admin: AdminDouble) -> None:
    from mlops.deploy import CanaryFailed

    admin.states["churn-model"] = {"stable": "v1.0.0", "canary": None, "canary_percent": 0, "generation": 4}
    admin.answers = {"load": (404, {"error": "churn-model v1.0.1 is not in the model store /srv/store"})}
    try:
        with pytest.raises(DeployError, match=r"does not find churn-model@v1.0.1 in its store") as info:
            _apply(repo, admin, "churn-model@v1.0.1")
    finally:
        admin.answers = {}
    assert not isinstance(info.value, CanaryFailed)
    assert "must be the store the server reads" in (info.value.hint or "")


def test_golden_records_of_another_model_fail_before_anything_is_loaded(repo: Path, admin: AdminDouble) -> None:
    from mlops.deploy import CanaryFailed

    git(repo, "merge", "-q", "--no-ff", "side", "-m", "merge side")  # v1.0.2 on main: deployable
    admin.states["churn-model"] = {"stable": "v1.0.0", "canary": None, "canary_percent": 0, "generation": 4}
    admin.requests.clear()
    with pytest.raises(CanaryFailed) as info:
        _apply(repo, admin, "churn-model@v1.0.2")
    assert [c.name for c in info.value.checks] == ["golden_file"]
    assert "golden.json was computed with model sha256 000000000000" in info.value.message
    assert [m for m, _, _ in admin.requests] == ["GET"]  # the plan's read only
    assert not (repo / ".mlops/store").exists()


def test_server_errors_are_deploy_errors(admin: AdminDouble) -> None:
    with pytest.raises(DeployError, match="refused the admin token"):
        Server(admin.url, "wrong").state("churn-model")
    with pytest.raises(DeployError, match="no admin token"):
        Server(admin.url, None).state("churn-model")
    with pytest.raises(DeployError, match=r"cannot reach the model server at http://127.0.0.1:9"):
        Server("http://127.0.0.1:9", TOKEN).state("churn-model")
    with pytest.raises(DeployError, match=r"not an http://HOST:PORT URL"):
        Server("ftp://127.0.0.1", TOKEN)


# --- kserve, end to end over the real registry and DVC remote ---------------------------------------------------


def test_kserve_canary_manifest_points_at_the_verified_remote_objects(repo: Path) -> None:
    result = deploy(repo, DeployOptions(target="kserve", ref="churn-model@v1.0.1", push=False,
                                        kubectl=str(repo / "no-kubectl")))
    assert (result.action, result.version, result.previous) == ("written", "v1.0.1", "v1.0.0")
    written = repo / "deploy/kserve/churn-model.yaml"
    assert result.where == str(written)
    doc = yaml.safe_load(written.read_text())
    assert doc["metadata"]["namespace"] == "ml"
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    [canary] = doc["spec"]["canary"]
    assert canary["trafficPercent"] == 20
    # both storageUris name objects of the DVC remote whose bytes hash to their tags' sha256, and each pod checks
    # that sha256 before its server starts
    for model, ref in ((canary["predictor"]["model"], "churn-model@v1.0.1"),
                       (doc["spec"]["predictor"]["model"], "churn-model@v1.0.0")):
        uri = model["storageUri"]
        assert "/files/md5/" in uri
        sha = release(repo, ref).model_sha256
        assert hashlib.sha256(Path(uri).read_bytes()).hexdigest() == sha
        assert f"{sha} {Path(uri).name} | sha256sum -c" in model["command"][2]
    assert result.stage_tag is None  # a cluster's rollout is not observed here: no stage tag
    assert "churn-model#production#2" not in git(repo, "tag")
    assert any("cannot read a local DVC remote" in n for n in result.notes)
    assert any("for Argo CD or Flux" in n for n in result.notes)


def test_kserve_full_rollout_of_production_with_a_storage_uri_template(repo: Path) -> None:
    result = deploy(repo, DeployOptions(target="kserve", stage="production", push=False,
                                        storage_uri="s3://models/{artifact}/sha256/{sha256}/model.ubj",
                                        kubectl=str(repo / "no-kubectl")))
    assert (result.version, result.previous) == ("v1.0.0", None)
    doc = yaml.safe_load((repo / "deploy/kserve/churn-model.yaml").read_text())
    sha = release(repo, "churn-model@v1.0.0").model_sha256
    model = doc["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"s3://models/churn-model/sha256/{sha}/model.ubj"
    assert f"{sha} model.ubj | sha256sum -c" in model["command"][2]  # the pod checks it before loading
    assert "canary" not in doc["spec"]
    assert result.notes == ("no kubectl context: wrote " + str(repo / "deploy/kserve/churn-model.yaml") +
                            " for Argo CD or Flux to sync (commit it)",)


def test_kserve_storage_uri_must_be_named_by_sha256_and_a_local_copy_is_hashed(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="does not name the copy by its sha256"):
        deploy(repo, DeployOptions(target="kserve", stage="production", push=False,
                                   storage_uri="s3://models/{artifact}/{version}/model.ubj",
                                   kubectl=str(repo / "no-kubectl")))
    sha = release(repo, "churn-model@v1.0.0").model_sha256
    copy = tmp_path / "bucket" / "sha256" / sha / "model.ubj"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"not the registered model")
    options = DeployOptions(target="kserve", stage="production", push=False,
                            storage_uri=str(tmp_path / "bucket/sha256/{sha256}/model.ubj"),
                            kubectl=str(repo / "no-kubectl"))
    with pytest.raises(DeployError, match=r"sha256 \w+ does not match the tag's"):
        deploy(repo, options)
    assert not (repo / "deploy").exists()
    # the registered bytes of v1.0.0 (HEAD is v1.0.1): its object in the DVC remote
    copy.write_bytes(remote_object(repo, listing(repo, "churn-model@v1.0.0")["model.ubj"]).read_bytes())
    assert deploy(repo, options).action == "written"


def test_kserve_refuses_a_tampered_remote_and_writes_nothing(repo: Path) -> None:
    tamper(remote_object(repo, listing(repo)["model.ubj"]), b"tampered")
    drop_cache(repo)
    with pytest.raises(DeployError, match="does not match the tag's"):
        deploy(repo, DeployOptions(target="kserve", ref="churn-model@v1.0.1", push=False,
                                   kubectl=str(repo / "no-kubectl")))
    assert not (repo / "deploy").exists()


def test_cli_kserve_json_and_usage_errors(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(repo.parent / "no-kubeconfig"))  # no cluster context: write for GitOps
    result = runner.invoke(app, ["deploy", "--target", "kserve", "--ref", "churn-model@v1.0.1", "--no-push",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["action"], data["target"], data["tag"], data["previous"]) == \
        ("written", "kserve", "churn-model@v1.0.1", "v1.0.0")
    assert data["where"] == str(repo / "deploy/kserve/churn-model.yaml")
    assert data["checks"] == []
    human = runner.invoke(app, ["deploy", "--target", "kserve", "--stage", "production", "--no-push"])
    assert human.exit_code == 0, human.output
    assert human.stdout.strip() == f"wrote InferenceService churn-model v1.0.0 to {data['where']}"
    assert "note: no kubectl context" in human.stderr
    both = runner.invoke(app, ["deploy", "--ref", "churn-model@v1.0.1", "--stage", "production"])
    assert both.exit_code == 2
    neither = runner.invoke(app, ["deploy"])
    assert neither.exit_code == 2
    local_uri = runner.invoke(app, ["deploy", "--ref", "churn-model@v1.0.1", "--no-push", "--storage-uri", "s3://x"])
    assert local_uri.exit_code == 1
    assert "--storage-uri is for --target kserve" in local_uri.stderr


# --- the smoke test's arithmetic ---------------------------------------------------------------------------------


METRICS_BEFORE = """# HELP model_infer_request_success_total ok
# TYPE model_infer_request_success_total counter
model_infer_request_success_total{model="churn-model",version="v1.0.0"} 100.0
model_infer_request_success_total{model="churn-model",version="v1.0.1"} 0.0
model_infer_request_failure_total{model="churn-model",version="v1.0.1"} 0.0
model_infer_request_duration_bucket{le="0.001",model="churn-model",version="v1.0.1"} 0.0
model_infer_request_duration_bucket{le="0.005",model="churn-model",version="v1.0.1"} 0.0
model_infer_request_duration_bucket{le="+Inf",model="churn-model",version="v1.0.1"} 0.0
"""
METRICS_AFTER = """model_infer_request_success_total{model="churn-model",version="v1.0.0"} 180.0
model_infer_request_success_total{model="churn-model",version="v1.0.1"} 19.0
model_infer_request_failure_total{model="churn-model",version="v1.0.1"} 1.0
model_infer_request_duration_bucket{le="0.001",model="churn-model",version="v1.0.1"} 10.0
model_infer_request_duration_bucket{le="0.005",model="churn-model",version="v1.0.1"} 19.0
model_infer_request_duration_bucket{le="+Inf",model="churn-model",version="v1.0.1"} 20.0
"""


def test_metrics_parsing_and_deltas() -> None:
    before, after = parse_metrics(METRICS_BEFORE), parse_metrics(METRICS_AFTER)
    assert counter(after, "model_infer_request_success", version="v1.0.1") == 19.0
    assert counter(after, "model_infer_request_success", model="churn-model") == 199.0
    assert counter(after, "model_infer_request_failure", version="v1.0.0") == 0.0
    assert histogram_quantile(before, after, "model_infer_request_duration", 0.5, version="v1.0.1") == 1.0
    assert histogram_quantile(before, after, "model_infer_request_duration", 0.9, version="v1.0.1") == 5.0
    assert histogram_quantile(before, after, "model_infer_request_duration", 0.99, version="v1.0.1") == math.inf
    assert histogram_quantile(before, before, "model_infer_request_duration", 0.99, version="v1.0.1") is None


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.99) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert percentile([float(i) for i in range(1, 101)], 0.5) == 50.0
    assert math.isnan(percentile([], 0.99))


def _samples(candidate_ok: int, candidate_failed: int, stable: int, *, latency: float = 2.0,
             orphans: int = 0) -> list[Sample]:
    return ([Sample("v1.0.1", True, latency)] * candidate_ok + [Sample("v1.0.1", False, latency)] * candidate_failed
            + [Sample("v1.0.0", True, 1.0)] * stable + [Sample(None, False, 10.0)] * orphans)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_window_verdicts() -> None:
    limits = Thresholds(max_error_rate=0.0, max_p99_ms=50.0, canary_percent=10)
    before, after = parse_metrics(METRICS_BEFORE), parse_metrics(METRICS_AFTER)
    ok = by_name(window_checks(_samples(19, 0, 181), "v1.0.1", limits, None, None, "churn-model"))
    assert ok["canary_error_rate"].passed
    assert ok["canary_error_rate"].figures["candidate_requests"] == 19
    assert ok["canary_p99"].passed
    assert ok["metrics"].passed and "not cross-checked" in ok["metrics"].detail
    failing = by_name(window_checks(_samples(18, 1, 181), "v1.0.1", limits, None, None, "churn-model"))
    assert not failing["canary_error_rate"].passed
    assert "1 of 19 candidate requests failed" in failing["canary_error_rate"].detail
    slow = by_name(window_checks(_samples(19, 0, 181, latency=80.0), "v1.0.1", limits, None, None, "churn-model"))
    assert not slow["canary_p99"].passed
    orphaned = by_name(window_checks(_samples(19, 0, 180, orphans=1), "v1.0.1", limits, None, None, "churn-model"))
    assert not orphaned["canary_error_rate"].passed  # a request with no answer counts against the candidate
    unrouted = by_name(window_checks(_samples(0, 0, 200), "v1.0.1", limits, None, None, "churn-model"))
    assert not unrouted["canary_traffic"].passed
    # /metrics: 20 candidate requests counted, one failed: the server's own failure count fails the window
    metrics = by_name(window_checks(_samples(19, 0, 181), "v1.0.1", limits, before, after, "churn-model"))
    assert not metrics["metrics"].passed
    assert metrics["metrics"].figures["server_failure"] == 1.0
    lenient = Thresholds(max_error_rate=0.1, max_p99_ms=50.0, canary_percent=10)
    agree = by_name(window_checks(_samples(19, 0, 181), "v1.0.1", lenient, before, after, "churn-model"))
    assert agree["metrics"].passed
    more_than_counted = by_name(window_checks(_samples(30, 0, 170), "v1.0.1", lenient, before, after, "churn-model"))
    assert not more_than_counted["metrics"].passed
    assert "disagree" in more_than_counted["metrics"].detail


def test_v2_request_and_golden_file(tmp_path: Path) -> None:
    records = [{"tenure": 3, "contract": "One year"}, {"tenure": 40, "contract": "Two year"}]
    body = v2_request(records, [{"name": "tenure", "datatype": "INT64", "shape": [-1]},
                                {"name": "contract", "datatype": "BYTES", "shape": [-1, 1]}])
    assert body == {"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [2], "data": [3, 40]},
                               {"name": "contract", "datatype": "BYTES", "shape": [2, 1],
                                "data": ["One year", "Two year"]}]}
    path = tmp_path / "golden.json"
    path.write_text(json.dumps({"records": records, "predictions": [0.1, 0.9]}))
    golden = read_golden(path)
    assert golden.predictions == (0.1, 0.9)
    path.write_text(json.dumps({"records": records, "predictions": [0.1]}))
    with pytest.raises(DeployError, match="one entry per record"):
        read_golden(path)
    with pytest.raises(DeployError, match="no golden records"):
        read_golden(tmp_path / "absent.json")


# --- end to end: the real server, the real pipeline ---------------------------------------------------------------


def _free_port() -> int:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(store: Path, port: int, log: Path) -> Any:

    env = {**os.environ, "MLOPS_ADMIN_TOKEN": TOKEN}
    # `mlops serve`, whether or not mlops.cli registers it yet
    code = "import sys; from mlops.cli import app; import mlops.cli.serve; app(prog_name='mlops')"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--store", str(store), "--port", str(port),
                             "--workers", "2"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")


def _stop_server(proc: Any) -> None:

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class _LoadLoop:
    """Single-record predictions on one keep-alive connection until stopped (or MAX requests): what an
    application sends while a deploy happens. Records status, x-model-version and the body's model_version."""

    def __init__(self, port: int, record: dict[str, Any], max_requests: int = 200_000) -> None:

        self.port, self.record, self.max = port, record, max_requests
        self.results: list[tuple[int, str | None, str | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = json.dumps({"instances": [self.record]})
        while not self.stop.is_set() and len(self.results) < self.max:
            try:
                conn.request("POST", "/v1/models/churn-model/predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read() or b"{}")
                self.results.append((resp.status, resp.getheader("x-model-version"), data.get("model_version")))
            except (OSError, http.client.HTTPException, ValueError):
                self.results.append((0, None, None))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def __enter__(self) -> _LoadLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _admin_state(port: int) -> dict[str, Any]:

    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/models/churn-model",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return parse_metrics(resp.read().decode())


def _deploy_cli(ref: str) -> Any:
    return runner.invoke(app, ["deploy", "--target", "local", "--ref", ref, "--no-push", "--json"])


def _promote(root: Path, message: str) -> str:

    commit_all(root, message)
    result = promote(root, PromoteOptions(push=False))
    run_dvc(root, "push", "-q")
    return f"{result.artifact}@{result.version}"


def _flipped_model(root: Path) -> None:
    """Replace models/model.ubj by a booster trained on flipped labels (golden.json stays the good model's), and
    record it in dvc.lock: a registered version whose golden predictions cannot match."""
    import xgboost as xgb

    from mlops.config import load_params
    from mlops.stages.data import TRAIN_FILE, features_and_label, load_prepared

    params = load_params(root / "params.yaml")
    x, y = features_and_label(load_prepared(root / TRAIN_FILE, params.data), params.data)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=3, tree_method="hist", enable_categorical=True,
                              max_cat_to_onehot=4, n_jobs=2, random_state=0)
    model.fit(x, 1 - y)
    target = root / "models/model.ubj"
    target.chmod(0o644)
    target.unlink()  # the workspace copy may be a link into the cache: never write through it
    model.get_booster().save_model(str(target))
    run_dvc(root, "commit", "-f", "-q", "models")


@pytest.mark.e2e
@pytest.mark.slow
def test_deploy_end_to_end_on_the_real_server(trained_project: Path, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """train, promote, deploy v1.0.0; a second version deployed under a load loop with zero failed requests, the
    switch visible in responses and /metrics; a broken version fails its smoke test: traffic stays, exit 1, no tag."""

    root = trained_project
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", TOKEN)
    port = _free_port()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["gates"] = {}  # the variants below are promoted whatever their metrics: this tests delivery
    raw["registry"]["promote_identities"] = [{"name": "Test Committer", "email": "committer@example.com"}]
    raw["deploy"] = {"server_url": f"http://127.0.0.1:{port}", "store": ".mlops/store", "canary_percent": 20,
                     "canary_seconds": 2.0, "canary_requests": 200, "max_error_rate": 0.0, "max_p99_ms": 500.0}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (root / ".gitignore").write_text((root / ".gitignore").read_text() + "/.mlops/\n")
    assert (root / "models/golden.json").is_file(), "train writes models/golden.json"
    run_dvc(root, "push", "-q")
    v1 = _promote(root, "deploy settings")
    assert v1 == "churn-model@v1.0.0"
    shutil.rmtree(root / ".dvc/cache")  # the deploy fetches from the DVC remote, as on a fresh CI runner

    proc = _start_server(root / ".mlops/store", port, tmp_path / "server.log")
    try:
        first = _deploy_cli(v1)
        assert first.exit_code == 0, first.output
        out = json.loads(first.stdout)
        assert (out["action"], out["version"], out["previous"], out["source"]) == \
            ("deployed", "v1.0.0", None, "DVC remote")
        assert out["stage_tag"] == "churn-model#production#1"
        assert all(c["passed"] for c in out["checks"])
        assert _admin_state(port)["stable"] == "v1.0.0"
        record = json.loads((root / "models/golden.json").read_text())["records"][0]

        # a second version: another seed, same interface (patch)
        raw["train"]["seed"] = 7
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        run_dvc(root, "repro", "-q")
        v2 = _promote(root, "retrain with another seed")
        assert v2 == "churn-model@v1.0.1"
        before = _metrics(port)
        with _LoadLoop(port, record) as loop:

            time.sleep(0.5)
            second = _deploy_cli(v2)
            time.sleep(0.5)
        assert second.exit_code == 0, second.output
        out = json.loads(second.stdout)
        assert (out["action"], out["version"], out["previous"]) == ("deployed", "v1.0.1", "v1.0.0")
        assert out["stage_tag"] == "churn-model#production#2"
        checks = {c["name"]: c for c in out["checks"]}
        assert checks["golden"]["passed"] and checks["golden"]["figures"]["max_abs_diff"] <= 1e-6
        assert checks["canary_error_rate"]["figures"]["candidate_requests"] > 0
        assert checks["metrics"]["passed"]
        # zero failed requests under the switch; the switch is visible in the responses
        statuses = [s for s, _, _ in loop.results]
        assert len(statuses) > 50
        assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
        assert all(h == b for _, h, b in loop.results)  # header and body agree
        versions = [v for _, v, _ in loop.results]
        assert versions[0] == "v1.0.0"
        assert versions[-1] == "v1.0.1"
        switch = versions.index("v1.0.1")
        assert set(versions[:switch]) == {"v1.0.0"}
        # ...and in /metrics: both versions answered, v1.0.1 is the stable one now
        after = _metrics(port)
        for version in ("v1.0.0", "v1.0.1"):
            grew = counter(after, "model_infer_request_success", model="churn-model", version=version) - \
                counter(before, "model_infer_request_success", model="churn-model", version=version)
            assert grew > 0
            assert counter(after, "model_infer_request_failure", model="churn-model", version=version) == 0
        assert counter(after, "mlops_model_version_info", model="churn-model", version="v1.0.1", role="stable") == 1
        assert _admin_state(port)["stable"] == "v1.0.1"

        # a broken version (trained on flipped labels): the smoke test fails, traffic stays, no stage tag
        _flipped_model(root)
        v3 = _promote(root, "a broken model")
        assert v3 == "churn-model@v1.0.2"
        with _LoadLoop(port, record) as loop:
            broken = _deploy_cli(v3)
        assert broken.exit_code == 1, broken.output
        failed = json.loads(broken.stdout)
        assert failed["action"] == "rolled_back"
        assert failed["serving"] == "v1.0.1"
        assert not all(c["passed"] for c in failed["checks"])
        assert "failed its smoke test" in broken.stderr
        state = _admin_state(port)
        assert (state["stable"], state["canary"]) == ("v1.0.1", None)
        assert {v for _, v, _ in loop.results} == {"v1.0.1"}
        assert [s for s, _, _ in loop.results].count(200) == len(loop.results)
        tags = git(root, "tag").split()
        assert "churn-model@v1.0.2" in tags
        assert not [t for t in tags if t.startswith("churn-model#production#") and t.endswith("#3")]

        # a candidate that loads and passes its golden check but fails the canary window (a p99 no server meets):
        # the server drops the canary it served for a while; traffic is back on v1.0.1, with no failed request
        params_text = (root / "params.yaml").read_text()
        strict = {**raw, "deploy": {**raw["deploy"], "max_p99_ms": 0.001}}
        (root / "params.yaml").write_text(yaml.safe_dump(strict, sort_keys=False))
        with _LoadLoop(port, record) as loop:
            slow = _deploy_cli(v1)  # v1.0.0 back as a canary beside v1.0.1
        (root / "params.yaml").write_text(params_text)
        assert slow.exit_code == 1, slow.output
        failed = json.loads(slow.stdout)
        checks = {c["name"]: c for c in failed["checks"]}
        assert checks["golden"]["passed"]
        assert not checks["canary_p99"]["passed"]
        assert checks["canary_error_rate"]["passed"]
        assert failed["serving"] == "v1.0.1"
        assert "traffic stays on v1.0.1" in slow.stderr
        state = _admin_state(port)
        assert (state["stable"], state["canary"]) == ("v1.0.1", None)
        served = [v for _, v, _ in loop.results]
        assert [s for s, _, _ in loop.results].count(200) == len(loop.results)
        assert served[-1] == "v1.0.1"
        assert len([t for t in git(root, "tag").split() if t.startswith("churn-model#production#")]) == 2

        # `mlops rollback --deploy`: v1.0.0 back on the server first (checked as a deploy is), then the stage tag
        with _LoadLoop(port, record) as loop:
            back = runner.invoke(app, ["rollback", "churn-model", "--deploy", "--no-push", "--json"])
        assert back.exit_code == 0, back.output
        out = json.loads(back.stdout)
        assert (out["action"], out["version"], out["previous"]) == ("rolled_back", "v1.0.0", "v1.0.1")
        assert out["stage_tag"] == "churn-model#production#3"
        assert _admin_state(port)["stable"] == "v1.0.0"
        assert [s for s, _, _ in loop.results].count(200) == len(loop.results)
        assert [v for _, v, _ in loop.results][-1] == "v1.0.0"
        assert git(root, "status", "--porcelain") == ""  # deploy never touches the working tree
    finally:
        _stop_server(proc)


def test_a_version_already_serving_unchecked_gets_no_stage_tag(repo: Path, admin: AdminDouble,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A first deploy that failed its checks leaves the candidate loaded (the server had nothing else); running
    the same deploy again finds it "already serving" and must not tag what no run verified."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["deploy"]["server_url"] = admin.url
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git(repo, "commit", "-q", "-am", "point deploy at the admin double")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", TOKEN)
    admin.states["churn-model"] = {"stable": "v1.0.1", "canary": None, "canary_percent": 0, "previous": None,
                                   "generation": 1, "workers": 1}
    before = set(git(repo, "tag").split())
    result = runner.invoke(app, ["deploy", "--target", "local", "--ref", "churn-model@v1.0.1", "--no-push"])
    assert result.exit_code == 1, result.output
    assert "this run checked nothing: the stage tag is not written" in result.stderr
    assert set(git(repo, "tag").split()) == before
