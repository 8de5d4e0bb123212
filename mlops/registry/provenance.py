"""Which registered versions may reach production: the registry's provenance rule, applied by deploy.

Anyone who can push a tag can make `NAME@vX.Y.Z`, on any commit, with a metadata block of their choosing; the
promote gates are then never consulted. So a version is trusted only when both hold:

- its commit is on the main branch (`registry.main_branch`): reachable from this clone's `MAIN` or
  `REMOTE/MAIN` (`git merge-base --is-ancestor`), i.e. it went through review and the merge;
- its tag was made by the promote workflow: the tagger is one of `registry.promote_identities` (default: the
  `github-actions[bot]` identity that actions/setup/git-auth.sh gives the promote job), or the tag carries an
  SSH signature that `git verify-tag` accepts with the keys of `registry.allowed_signers`.

A tagger name is only a claim (anyone can set `user.name`); it stops honest mistakes and tags pushed outside the
workflow, and pairs with a tag ruleset on the forge that lets only the Actions app create `*@v*` tags. A signature
check is the strong form: configure `allowed_signers` and sign in the promote job (`user.signingkey`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops import git
from mlops.config import RegistryParams
from mlops.errors import GitError, RegistryError
from mlops.registry.tags import VersionInfo


class UntrustedVersion(RegistryError):
    """A registered version fails the provenance rule: off main, or tagged by someone other than promote."""


@dataclass(frozen=True)
class Provenance:
    main_ref: str  # the ref the commit was found on (refs/heads/main or refs/remotes/origin/main)
    vouched_by: str  # "tagger NAME <EMAIL>" or "signature (allowed_signers FILE)"


def _main_refs(root: Path, reg: RegistryParams) -> list[str]:
    candidates = [f"refs/heads/{reg.main_branch}", f"refs/remotes/{reg.remote}/{reg.main_branch}"]
    return [r for r in candidates if git.ref_exists(r, root)]


def _on_main(root: Path, info: VersionInfo, reg: RegistryParams) -> str:
    refs = _main_refs(root, reg)
    if not refs:
        raise UntrustedVersion(f"{info.tag}: no branch '{reg.main_branch}' in this clone to check that its commit "
                               "was merged", hint=f"fetch it (`git fetch {reg.remote} {reg.main_branch}`), or set "
                                                  "registry.main_branch in params.yaml")
    for ref in refs:
        try:
            if git.is_ancestor(info.commit, ref, root):
                return ref
        except GitError as exc:
            raise UntrustedVersion(f"{info.tag}: cannot tell whether commit {info.commit[:12]} is on "
                                   f"{reg.main_branch}: {exc.message}", hint=exc.hint) from None
    raise UntrustedVersion(f"{info.tag}: its commit {info.commit[:12]} is not on {reg.main_branch}: only versions "
                           "merged to main are deployed",
                           hint="merge the change and let the promote workflow register it (a shallow clone "
                                "needs fetch-depth: 0)")


def _identity(tagger: str) -> tuple[str, str]:
    """("name", "email") of a tagger as the registry reads it: `NAME <EMAIL>`."""
    name, _, rest = tagger.rpartition(" <")
    return (name.strip(), rest.removesuffix(">").strip().lower()) if rest.endswith(">") else (tagger.strip(), "")


def _vouched(root: Path, info: VersionInfo, reg: RegistryParams) -> str:
    name, email = _identity(info.tagger)
    for ident in reg.promote_identities:
        if ident.name == name and ident.email.lower() == email:
            return f"tagger {ident.name} <{ident.email}>"
    if reg.allowed_signers:
        signers = Path(reg.allowed_signers)
        signers = signers if signers.is_absolute() else root / signers
        if not signers.is_file():
            raise UntrustedVersion(f"registry.allowed_signers: {reg.allowed_signers} not found",
                                   hint="commit the SSH allowed_signers file, or remove the key from params.yaml")
        if git.verify_tag(info.tag, signers, root):
            return f"signature (allowed_signers {reg.allowed_signers})"
    allowed = ", ".join(f"{i.name} <{i.email}>" for i in reg.promote_identities) or "none"
    signed = " nor signed by a key of registry.allowed_signers" if reg.allowed_signers else ""
    raise UntrustedVersion(f"{info.tag}: tagged by {info.tagger or 'nobody'}, not by the promote identity "
                           f"({allowed}){signed}",
                           hint="register versions through the promote workflow; to trust another tagger, list it "
                                "under registry.promote_identities in params.yaml")


def check(root: Path, info: VersionInfo, reg: RegistryParams) -> Provenance:
    """The provenance of INFO (see the module docstring); UntrustedVersion, one line, when it has none."""
    ref = _on_main(root, info, reg)
    return Provenance(ref, _vouched(root, info, reg))
