"""Fetch a released model artifact at its commit through DVC, and prove it is the one the tag describes.

The tag names a commit and records the model file's sha256 (`model_sha256`) and the artifact's DVC hash
(`dvc_md5`). dvc.lock at that commit (read from git, never from the working tree) gives the hash of the artifact
directory; its `.dir` listing gives each file's md5. What the local DVC cache lacks is fetched from the DVC remote
in a temporary git worktree of the commit that shares the cache, so the working tree is never touched.

Nothing is trusted because it came from the cache or the remote (DVC does not re-hash what it downloads unless the
remote sets `verify`): the listing must hash to its name, the model file to the tag's sha256 and every file to its
md5 in the listing. A mismatch raises DeployError naming the file, the expected and the actual hash, before
anything is installed or served; the bad object is dropped from the local cache so that a repaired remote is
fetched again next time.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mlops import dvc, git
from mlops.errors import DeployError, DvcError
from mlops.files import md5_file, sha256_file, sha256_tree
from mlops.formats.manifest import MANIFEST_FILE, ManifestInvalid, read_manifest
from mlops.formats.tagmeta import TagMeta
from mlops.progress import Progress, silent


@dataclass(frozen=True)
class Release:
    """One registered version as its registry tag describes it. The job reads the tag (the registry's job); this
    capability trusts the tag and checks everything else against it."""

    artifact: str
    version: str
    tag: str
    commit: str
    path: str  # the artifact's path in the repository (a DVC output), e.g. models
    model_file: str  # what model_sha256 covers, repo-relative: models/model.ubj, or the artifact directory itself
    model_sha256: str  # of that file, or of the directory's manifest (mlops.files.sha256_tree)
    dvc_md5: str | None = None  # the artifact's hash in dvc.lock as the tag recorded it
    serve_file: str = "model.ubj"  # the file a server loads, inside the artifact directory

    @property
    def ref(self) -> str:
        return f"{self.artifact}@{self.version}"

    @property
    def whole(self) -> bool:
        """True when the tag's sha256 covers the artifact as a whole: a directory (its manifest) or a single file."""
        return PurePosixPath(self.model_file) == PurePosixPath(self.path)


def _repo_path(ref: str, key: str, value: str) -> str:
    """VALUE (a path from the tag) as a clean relative repository path; DeployError otherwise."""
    p = PurePosixPath(value)
    if not value or "\\" in value or p.is_absolute() or any(part in ("..", ".") for part in p.parts) or \
            any(ord(ch) < 32 for ch in value):
        raise DeployError(f"{ref}: its tag's {key} '{value}' is not a relative path inside the repository",
                          hint="the tag was not written by mlops; deploy another version")
    return p.as_posix()


def release_from_block(artifact: str, version: str, tag: str, commit: str, block: TagMeta | None,
                       default_path: str, default_model_file: str | None) -> Release:
    """A Release from a tag's metadata block; DeployError when the block cannot vouch for the model (a tag made
    by another tool records no sha256: nothing to check the fetched file against)."""
    if not block or not block.model_sha256:
        raise DeployError(f"{artifact}@{version}: its tag records no model_sha256, so the fetched model cannot be "
                          "verified", hint="deploy a version registered by `mlops promote` (its tag carries the "
                                           "model's sha256)")
    ref = f"{artifact}@{version}"
    path = _repo_path(ref, "path", (block.path or default_path).rstrip("/"))
    model_file = _repo_path(ref, "model_file", (block.model_file or path).rstrip("/"))
    if block.version and block.version != version:
        raise DeployError(f"{artifact}@{version}: its tag's metadata describes {block.version}",
                          hint="the tag message was copied from another version; deploy another version")
    if block.commit and block.commit != commit:
        raise DeployError(f"{artifact}@{version}: the tag points at {commit[:12]} but its metadata says "
                          f"{block.commit[:12]}", hint="the tag was edited or copied; deploy another version")
    dvc_md5 = block.dvc_md5
    rel, base = PurePosixPath(model_file), PurePosixPath(path)
    if rel != base and rel.is_relative_to(base):
        serve = rel.relative_to(base).as_posix()
    elif rel == base and default_model_file:
        serve = default_model_file
    elif rel == base:
        serve = "model.ubj"  # what `mlops stage train` writes
    else:
        serve = rel.name  # a single-file artifact
    return Release(artifact, version, tag, commit, path, model_file, block.model_sha256, dvc_md5 or None, serve)


@dataclass(frozen=True)
class FetchedArtifact:
    release: Release
    directory: Path  # a copy of the artifact's files, verified
    files: dict[str, str]  # relpath inside the artifact -> md5 (DVC's)
    serve_file: str  # the file a server loads, inside DIRECTORY
    serve_sha256: str  # its sha256 (the tag's own when the tag checksums that file)
    model_md5: str  # its DVC object (its key in the remote: files/md5/xx/rest)
    source: Literal["local DVC cache", "DVC remote"]

    @property
    def model_path(self) -> Path:
        return self.directory / self.serve_file


def _lock_at(root: Path, release: Release) -> dict[str, Any]:
    raw = git.show_file(release.commit, dvc.DVC_LOCK, root)
    if raw is None:
        raise DeployError(f"{release.ref}: no {dvc.DVC_LOCK} at its commit {release.commit[:12]}",
                          hint="the version was registered without a DVC pipeline; nothing to fetch")
    try:
        return dvc.parse_lock(raw, f"{dvc.DVC_LOCK} at {release.commit[:12]}")
    except DvcError as exc:
        raise DeployError(f"{release.ref}: {exc.message}") from None


def _check_hash(release: Release, h: str, where: str) -> str:
    """H when it is a DVC md5 hash; DeployError naming WHERE otherwise (a crafted hash would name a file outside
    the cache, `0f/etc/hostname`)."""
    try:
        return dvc.check_md5(h)
    except DvcError as exc:
        raise DeployError(f"{release.ref}: {where}: {exc.message}", hint="the commit or the DVC remote holds a "
                          "crafted or corrupted entry; deploy another version") from None


def _check_relpath(release: Release, rel: str) -> str:
    p = PurePosixPath(rel)
    if not rel or "\\" in rel or p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or \
            any(ord(ch) < 32 for ch in rel):
        raise DeployError(f"{release.path} listing of {release.ref} names '{rel}', outside the artifact",
                          hint="the DVC remote holds a crafted listing; deploy another version")
    return rel


def _output_hash(root: Path, release: Release) -> str:
    lock = _lock_at(root, release)
    h = dvc.output_hash(lock, release.path)
    if h is None:
        raise DeployError(f"{release.ref}: {dvc.DVC_LOCK} at {release.commit[:12]} has no output '{release.path}'",
                          hint="the artifact path in the tag does not match the pipeline at that commit")
    _check_hash(release, h, f"{dvc.DVC_LOCK} at {release.commit[:12]}")
    if release.dvc_md5 is not None and h != release.dvc_md5:
        raise DeployError(f"{release.ref}: the tag records {release.path} as {release.dvc_md5} but {dvc.DVC_LOCK} "
                          f"at {release.commit[:12]} says {h}", hint="the tag or the commit was rewritten; "
                                                                     "deploy another version")
    return h


def _listing(root: Path, release: Release, h: str) -> dict[str, str] | None:
    """relpath -> md5 of the artifact, from the cache (None when the cache lacks the listing)."""
    if not h.endswith(".dir"):  # a single-file artifact: the output is the model file itself
        return {PurePosixPath(release.path).name: h}
    obj = dvc.cache_object(root, h)
    if obj is None:
        return None
    actual = md5_file(obj)
    if actual != h.removesuffix(".dir"):
        dvc.discard_cache_object(root, h)
        raise DeployError(f"{release.path} listing ({h}): its object hashes to {actual}: corrupted or tampered "
                          "with in the DVC cache or remote", hint="repair the DVC remote (`dvc push` from a good "
                                                                  "copy); the bad object was dropped from the cache")
    try:
        items = json.loads(obj.read_text(encoding="utf-8"))
        listing = {str(i["relpath"]): str(i.get("md5") or i["hash"]) for i in items}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DeployError(f"{release.path} listing ({h}): not a DVC directory listing") from None
    for rel, md5 in listing.items():
        _check_relpath(release, rel)
        _check_hash(release, md5, f"{release.path} listing entry '{rel}'")
    return listing


def _missing(root: Path, files: dict[str, str]) -> list[str]:
    return [rel for rel, md5 in files.items() if dvc.cache_object(root, md5) is None]


def _fetch_at_commit(root: Path, release: Release, progress: Progress) -> str:
    """`dvc fetch PATH` in a temporary worktree of the release's commit that shares ROOT's cache and remotes;
    returns DVC's last error line ("" when it fetched everything)."""
    if not dvc.has_remote(root):
        raise DeployError(f"{release.ref}: the local DVC cache lacks {release.path} and no DVC remote is configured",
                          hint="configure the remote (`dvc remote add -d NAME URL`) or reproduce the commit")
    progress(f"deploy: fetching {release.path} of {release.ref} ({release.commit[:12]}) from the DVC remote")
    tmp = Path(tempfile.mkdtemp(prefix="mlops-deploy-"))
    wt = tmp / "wt"
    try:
        git.worktree_add(wt, release.commit, root)
        dvc.prepare_worktree(root, wt)
        # a failed fetch is no error yet: the caller says what is missing, with DVC's own reason
        proc = dvc.run(["fetch", release.path], wt, check=False)
        errors = [ln.removeprefix("ERROR:").strip() for ln in proc.stdout.splitlines() if ln.startswith("ERROR")]
        return errors[0] if proc.returncode != 0 and errors else ""
    finally:
        git.worktree_remove(wt, root)
        shutil.rmtree(tmp, ignore_errors=True)


def _copy(root: Path, release: Release, files: dict[str, str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for rel, md5 in files.items():
        target = dest / rel
        if not target.resolve().is_relative_to(dest.resolve()):
            raise DeployError(f"{release.path} listing of {release.ref} names '{rel}', outside the artifact")
        obj = dvc.cache_object(root, md5)
        if obj is None:
            raise DeployError(f"{release.path}/{rel} of {release.ref}: gone from the DVC cache while deploying",
                              hint="something else is cleaning the cache (`dvc gc`?); deploy again")
        if obj.is_symlink():  # a cache object is a regular file: a link would be followed out of the cache
            raise DeployError(f"{release.path}/{rel} of {release.ref}: its DVC cache object {obj} is a symlink",
                              hint="remove it from the cache (`dvc gc` or delete it) and deploy again")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(obj, target, follow_symlinks=False)


def _check(root: Path, release: Release, files: dict[str, str], dest: Path, is_dir: bool, fetched: bool) -> None:
    """The copies in DEST (what will be installed): against the tag's sha256 first (the contract), then every file
    against its md5 in the listing."""
    if not is_dir:  # a single-file artifact: the tag checksums that file
        actual, what = sha256_file(dest / next(iter(files))), release.model_file
    elif release.whole:
        actual, what = sha256_tree(dest), f"{release.path}/ (the whole directory)"
    else:
        model = PurePosixPath(release.model_file)
        inside = model.relative_to(release.path).as_posix() if model.is_relative_to(release.path) else model.name
        if inside not in files:
            raise DeployError(f"{release.ref}: the artifact {release.path} has no {inside}, the file its tag "
                              "checksums", hint="the tag does not describe this artifact; deploy another version")
        actual, what = sha256_file(dest / inside), release.model_file
    if actual != release.model_sha256:
        if fetched:  # drop what does not hash to its own name; a good copy is fetched again next time
            for rel, md5 in files.items():
                if md5_file(dest / rel) != md5:
                    dvc.discard_cache_object(root, md5)
        raise DeployError(f"{what} of {release.ref}: sha256 {actual} does not match the tag's "
                          f"{release.model_sha256}: refused before install",
                          hint="the DVC remote (or cache) holds a tampered or corrupted model; repair it with "
                               "`dvc push` from a good copy")
    for rel, md5 in sorted(files.items()):
        got = md5_file(dest / rel)
        if got != md5:
            if fetched:
                dvc.discard_cache_object(root, md5)
            raise DeployError(f"{release.path}/{rel} of {release.ref}: md5 {got} does not match dvc.lock's "
                              f"{md5}: refused before install",
                              hint="the DVC remote (or cache) holds a tampered or corrupted file; repair it")


def fetch_release(root: Path, release: Release, dest: Path, progress: Progress = silent) -> FetchedArtifact:
    """Copy RELEASE's artifact into DEST (created), verified; fetch from the DVC remote what the cache lacks."""
    h = _output_hash(root, release)
    source: Literal["local DVC cache", "DVC remote"] = "local DVC cache"
    files = _listing(root, release, h)
    if files is None or _missing(root, files):
        reason = _fetch_at_commit(root, release, progress)
        source = "DVC remote"
        files = _listing(root, release, h)
        lacking = [release.path] if files is None else [f"{release.path}/{r}" for r in _missing(root, files)]
        if files is None or lacking:
            raise DeployError(f"{release.ref}: cannot fetch {', '.join(lacking)} (commit {release.commit[:12]}) from "
                              f"the DVC remote" + (f": {reason}" if reason else ""),
                              hint="push the model from where it was trained (`dvc push`), then deploy again")
    _copy(root, release, files, dest)
    is_dir = h.endswith(".dir")
    _check(root, release, files, dest, is_dir, fetched=source == "DVC remote")
    serve = release.serve_file if is_dir else next(iter(files))
    if is_dir and MANIFEST_FILE in files and (release.whole or serve not in files):
        # a model package: the file a server loads is the manifest's (the tag's sha256 covers the whole directory,
        # or registry.model_file names another file of it)
        try:
            serve = read_manifest(dest).files[0].path
        except ManifestInvalid as exc:
            raise DeployError(f"{release.ref}: {exc.message}", hint=exc.hint) from None
    if serve not in files:
        raise DeployError(f"{release.ref}: the artifact {release.path} has no {serve} to serve",
                          hint="set registry.model_file in params.yaml to the model file inside the artifact")
    return FetchedArtifact(release, dest, dict(files), serve, sha256_file(dest / serve), files[serve], source)
