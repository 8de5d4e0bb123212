"""Every git call of the toolkit goes through this module (subprocess, -z output, leaked GIT_* removed)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlops.errors import GitError, RefNotFound

# Variables a parent git (a hook, `git rebase -x`) leaks into children and that would point our calls at
# another repository; pre-commit drops the same set.
_KEEP = {"GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY", "GIT_CONFIG_NOSYSTEM",
         "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
         "GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE", "GIT_TERMINAL_PROMPT", "GIT_ASKPASS"}
# Configuration given through the environment (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`): how
# the setup action hands git the token for pushes without writing it into .git/config (persist-credentials: false).
_ENV_CONFIG = re.compile(r"GIT_CONFIG_(COUNT|KEY_\d+|VALUE_\d+)")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") or k in _KEEP or _ENV_CONFIG.fullmatch(k)}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    if extra:
        env.update(extra)
    return env


def run(args: Sequence[str], cwd: Path | str = ".", *, input: bytes | None = None, check: bool = True,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in cwd; raise GitError with git's own first error line when it fails and check is set."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=clean_env(env),
                              check=False)
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH", hint="install git") from exc
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        first = next((line for line in err if line.startswith(("fatal:", "error:"))), err[0] if err else "")
        raise GitError(f"git {args[0]} failed: {first or 'exit code ' + str(proc.returncode)}")
    return proc


def out(args: Sequence[str], cwd: Path | str = ".", **kw: object) -> str:
    """stdout of a git command, stripped."""
    return run(args, cwd, **kw).stdout.decode().strip()  # type: ignore[arg-type]


def toplevel(cwd: Path | str = ".") -> Path:
    try:
        return Path(out(["rev-parse", "--show-toplevel"], cwd))
    except GitError as exc:
        raise GitError(f"{Path(cwd).resolve()}: not inside a git repository", hint="run `git init` first") from exc


def rev_parse(ref: str, cwd: Path | str = ".") -> str:
    """Full SHA of the commit REF names; RefNotFound if it names none."""
    proc = run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd, check=False)
    if proc.returncode != 0:
        raise RefNotFound(f"git ref '{ref}' not found",
                          hint="fetch it first (`git fetch origin main:main`, or checkout with fetch-depth: 0)")
    return proc.stdout.decode().strip()


def ref_exists(ref: str, cwd: Path | str = ".") -> bool:
    return run(["rev-parse", "--verify", "--quiet", "--end-of-options", ref], cwd, check=False).returncode == 0


def merge_base(a: str, b: str, cwd: Path | str = ".") -> str:
    rev_parse(a, cwd)
    rev_parse(b, cwd)
    proc = run(["merge-base", a, b], cwd, check=False)
    if proc.returncode != 0:
        raise RefNotFound(f"'{a}' and '{b}' have no common ancestor")
    return proc.stdout.decode().strip()


def head(cwd: Path | str = ".") -> str:
    return rev_parse("HEAD", cwd)


def current_branch(cwd: Path | str = ".") -> str | None:
    """The branch HEAD is on, or None when detached."""
    proc = run(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def is_dirty(cwd: Path | str = ".", *, untracked: bool = False) -> list[str]:
    """Paths with uncommitted changes (tracked only unless untracked=True)."""
    args = ["status", "--porcelain=v1", "-z"]
    args.append("--untracked-files=normal" if untracked else "--untracked-files=no")
    raw = run(args, cwd).stdout.decode()
    return [entry[3:] for entry in raw.split("\0") if len(entry) > 3]


def show_file(rev: str, path: str, cwd: Path | str = ".") -> bytes | None:
    """The bytes of PATH (repo-relative) at REV, or None when it does not exist there."""
    proc = run(["show", f"{rev}:{path}"], cwd, check=False)
    return proc.stdout if proc.returncode == 0 else None


def commit_message(rev: str = "HEAD", cwd: Path | str = ".") -> str:
    return run(["log", "-1", "--format=%B", rev], cwd).stdout.decode()


def trailers(rev: str = "HEAD", cwd: Path | str = ".") -> dict[str, str]:
    """Commit trailers of REV (`Key: value` lines git recognises), last one of each key wins."""
    raw = out(["log", "-1", "--format=%(trailers:only,unfold)", rev], cwd)
    result: dict[str, str] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            result[key.strip().lower()] = value.strip()
    return result


def config_get(key: str, cwd: Path | str = ".") -> str | None:
    proc = run(["config", "--get", key], cwd, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def remote_url(name: str = "origin", cwd: Path | str = ".") -> str | None:
    return config_get(f"remote.{name}.url", cwd)


def for_each_ref(pattern: str, fields: Sequence[str], cwd: Path | str = ".") -> list[list[str]]:
    """One git call for many refs: each row holds FIELDS (for-each-ref format atoms, without %()).

    Rows are split on NUL and fields on a control byte, so tag messages with newlines survive.
    """
    sep = "%01"
    fmt = sep.join(f"%({f})" for f in fields) + "%00"
    raw = run(["for-each-ref", f"--format={fmt}", pattern], cwd).stdout.decode(errors="replace")
    rows = []
    for record in raw.split("\0"):
        record = record.lstrip("\n")
        if record:
            rows.append(record.split("\x01"))
    return rows


def changed_paths(a: str, b: str | None = None, cwd: Path | str = ".") -> list[str]:
    """Paths that differ between A and B (or the working tree when B is None)."""
    args = ["diff", "--name-only", "-z", a] + ([b] if b else [])
    return [p for p in run(args, cwd).stdout.decode().split("\0") if p]


# --- registry: tags, pushes and fetches (appended for the model registry) ---------------------------------


def tag_commit(name: str, cwd: Path | str = ".") -> str | None:
    """The commit that tag NAME points at (peeled), or None when no such tag exists."""
    proc = run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"refs/tags/{name}^{{commit}}"], cwd,
               check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def create_annotated_tag(name: str, target: str, message: str, cwd: Path | str = ".", *, sign: bool = False,
                         date: str | None = None) -> None:
    """`git tag -a` (or `-s` when SIGN) NAME at TARGET with MESSAGE kept verbatim; fails if NAME exists.

    DATE ("@<epoch> +0000") sets the tagger date (GIT_COMMITTER_DATE)."""
    run(["tag", "-s" if sign else "-a", "--cleanup=verbatim", "-F", "-", "--end-of-options", name, target], cwd,
        input=message.encode(), env={"GIT_COMMITTER_DATE": date} if date else None)


def delete_unpublished_tag(name: str, cwd: Path | str = ".") -> None:
    """Delete a local tag that this process just created and failed to push (never a published one)."""
    run(["tag", "-d", name], cwd, check=False)


def push_atomic(remote: str, refspecs: Sequence[str], cwd: Path | str = ".") -> tuple[bool, list[tuple[str, str]], str]:
    """`git push --atomic --porcelain REMOTE REFSPECS`: (ok, [(ref, reason)], git's first error line).

    The list holds the rejected refs ("!"), and also the refs the remote already had as they are ("=", reason
    "up to date"): a push that updated nothing did not publish anything of its own."""
    proc = run(["push", "--atomic", "--porcelain", remote, *refspecs], cwd, check=False)
    refused: list[tuple[str, str]] = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        # porcelain: "<flag>\t<from>:<to>\t<summary> (<reason>)"; "!" rejected, "=" up to date
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] in ("!", "="):
            refused.append((parts[1].split(":")[-1], parts[2] if parts[0] == "!" else "up to date"))
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    first = next((ln for ln in err if ln.startswith(("fatal:", "error:", "remote:"))), err[0] if err else "")
    return proc.returncode == 0, refused, first


def fetch_tags(remote: str, cwd: Path | str = ".", artifacts: Sequence[str] = ()) -> None:
    """Fetch the registry tags of ARTIFACTS (`NAME@*` and `NAME#*`, GTO's names) from REMOTE without moving a
    local one: a registry tag that differs there fails with git's own rejected line. Other tags (a moving `v1`
    of the actions, a release tag) are left alone; no ARTIFACTS fetches every tag."""
    refspecs = [f"refs/tags/{a}{sep}*:refs/tags/{a}{sep}*" for a in artifacts for sep in ("@", "#")] or \
        ["refs/tags/*:refs/tags/*"]
    proc = run(["fetch", "--no-tags", "--no-write-fetch-head", remote, *refspecs], cwd, check=False)
    if proc.returncode != 0:
        err = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        rejected = [ln for ln in err if ln.startswith("! ")]
        first = next((ln for ln in err if ln.startswith(("fatal:", "error:"))), err[0] if err else "")
        detail = "; ".join(" ".join(ln.split()) for ln in rejected[:3]) or first
        raise GitError(f"git fetch failed: {detail or 'exit code ' + str(proc.returncode)}")


def remote_tags(remote: str, names: Sequence[str], cwd: Path | str = ".") -> set[str]:
    """Which of the tags NAMES REMOTE has (one `git ls-remote`); GitError when it cannot be reached."""
    if not names:
        return set()
    listed = out(["ls-remote", "--tags", "--refs", remote, *[f"refs/tags/{n}" for n in names]], cwd)
    have = {line.split("\t", 1)[1].removeprefix("refs/tags/") for line in listed.splitlines() if "\t" in line}
    return have & set(names)


def remote_exists(name: str, cwd: Path | str = ".") -> bool:
    return name in out(["remote"], cwd).split()


def worktree_add(path: Path | str, rev: str, cwd: Path | str = ".") -> None:
    """A detached worktree of REV at PATH (for reading or reproducing another revision)."""
    run(["worktree", "add", "--detach", "--force", str(path), rev], cwd)


def worktree_remove(path: Path | str, cwd: Path | str = ".") -> None:
    """Remove a worktree made by worktree_add (and prune its record); quiet when it is already gone."""
    run(["worktree", "remove", "--force", str(path)], cwd, check=False)
    run(["worktree", "prune"], cwd, check=False)


def is_ancestor(commit: str, ref: str, cwd: Path | str = ".") -> bool:
    """True when COMMIT is REF or one of its ancestors (`git merge-base --is-ancestor`); GitError when git cannot
    tell (a commit missing from this clone)."""
    proc = run(["merge-base", "--is-ancestor", "--end-of-options", commit, ref], cwd, check=False)
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    raise GitError(f"git merge-base failed: {err[0] if err else 'exit code ' + str(proc.returncode)}",
                   hint="fetch the full history (`git fetch --unshallow`, or checkout with fetch-depth: 0)")


def verify_tag(name: str, allowed_signers: Path, cwd: Path | str = ".") -> bool:
    """True when tag NAME carries an SSH signature made by a key of the ALLOWED_SIGNERS file (`git verify-tag`;
    git refuses a key the file does not list). Only that file is trusted: the user's own signing configuration
    and GPG keyring play no part."""
    # the signature's own header picks the program: OpenPGP and X.509 ones are sent to `false`, so that a key in
    # the runner's GPG keyring is never what vouches for a release
    proc = run(["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={allowed_signers}",
                "-c", "gpg.program=false", "-c", "gpg.openpgp.program=false", "-c", "gpg.x509.program=false",
                "verify-tag", "--end-of-options", f"refs/tags/{name}"], cwd, check=False)
    return proc.returncode == 0


def commit_subject(rev: str = "HEAD", cwd: Path | str = ".") -> str:
    """The first line of REV's commit message."""
    return out(["log", "-1", "--format=%s", rev], cwd)


# --- monitor --retrain: a branch made in a temporary worktree, pushed to the remote (appended) ---------------------


def fetch_branch(remote: str, branch: str, cwd: Path | str = ".") -> str:
    """The commit REMOTE's BRANCH points at (fetched into FETCH_HEAD, no local ref moved); GitError otherwise."""
    run(["fetch", "--no-tags", remote, f"refs/heads/{branch}"], cwd)
    return rev_parse("FETCH_HEAD", cwd)


def commit_paths(paths: Sequence[str], message: str, cwd: Path | str = ".") -> str:
    """Stage PATHS (force: a .gitignore of the data's folder may list them) and commit; the new commit's SHA.
    Without a configured identity the commit is made as mlops (a CI checkout has none)."""
    run(["add", "--force", "--", *paths], cwd)
    ident: dict[str, str] = {}
    if config_get("user.name", cwd) is None:
        ident.update(GIT_AUTHOR_NAME="mlops", GIT_COMMITTER_NAME="mlops")
    if config_get("user.email", cwd) is None:
        ident.update(GIT_AUTHOR_EMAIL="mlops@localhost", GIT_COMMITTER_EMAIL="mlops@localhost")
    run(["commit", "--quiet", "--no-verify", "-m", message], cwd, env=ident)
    return head(cwd)


def push_new_branch(remote: str, sha: str, branch: str, cwd: Path | str = ".") -> None:
    """Create BRANCH on REMOTE at SHA; GitError when it exists there already or the push is refused."""
    ok, refused, first = push_atomic(remote, [f"{sha}:refs/heads/{branch}"], cwd)
    if not ok or refused:
        why = refused[0][1] if refused else first
        raise GitError(f"git push of branch {branch} to {remote} failed: {why or 'refused'}",
                       hint="check that the token may push branches (contents: write)")


def delete_remote_branch(remote: str, branch: str, cwd: Path | str = ".") -> bool:
    """Delete BRANCH on REMOTE (one this process pushed and could not use); False when the push fails."""
    return run(["push", "--quiet", remote, f":refs/heads/{branch}"], cwd, check=False).returncode == 0
