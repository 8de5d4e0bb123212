"""Untrusted text (branch names, commit messages, param values, column names, served traffic) made inert for
markdown and mermaid, and the one jinja environment of the toolkit's documents (report, monitor).

Markdown output goes to a GitHub comment: it must not break the table or code block it sits in, inject HTML,
or mention people and issues. Every ASCII punctuation character that markdown (GFM, GitHub math) gives meaning to
is backslash-escaped, HTML's own are written as entities, line breaks become spaces, and `@` / `#` get a zero-width
space after them so that GitHub links no user, team or issue. Bare URLs get one too (after `://`, inside `www.`),
so that GFM's autolinks turn no `https://...` or `www....` into a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

OVERRIDE_DIR = ".mlops/templates"  # a repo overrides a document's template by placing one of the same name here

_ZWSP = "&#8203;"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_BACKSLASHED = set("\\`*_{}[]()!|~^$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_SCHEME = re.compile(r"://")
_WWW = re.compile(r"(?i)(w)(ww\.)")
# GitHub links `GH-123` to issue 123 as it does `#123`.
_GH_REF = re.compile(r"(?i)\b(gh)(-\d)")


def md(value: object, max_len: int = 200) -> str:
    """VALUE as inert inline markdown text (safe in a table cell, a heading or a paragraph)."""
    text = _CONTROL.sub(" ", str(value))
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    out: list[str] = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch == "@":
            out.append("@" + _ZWSP)
        elif ch == "#":
            out.append("&#35;" + _ZWSP)
        elif ch in _BACKSLASHED:
            out.append("\\" + ch)
        else:
            out.append(ch)
    # GFM autolinks (any scheme's `://`, and `www.`): a zero-width space keeps them plain text.
    text = _WWW.sub(r"\1" + _ZWSP + r"\2", _SCHEME.sub("://" + _ZWSP, "".join(out)))
    return _GH_REF.sub(r"\1" + _ZWSP + r"\2", text)


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:/+\-()%]")


def mermaid(value: object, max_len: int = 40) -> str:
    """VALUE as a mermaid string literal's content: a conservative character set, no quotes or brackets."""
    text = _MERMAID_UNSAFE.sub("_", _CONTROL.sub(" ", str(value)))
    return text[:max_len]


def template_env(root: Path | None, *, html: bool, filters: Mapping[str, Callable[..., Any]] | None = None,
                 globals_: Mapping[str, Any] | None = None) -> Any:
    """The jinja environment of a document: ROOT's `.mlops/templates/` first, then the packaged templates.

    Markdown is not HTML-escaped by jinja: its templates escape every untrusted value with `|md` instead."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

    loaders: list[Any] = []
    if root is not None and (root / OVERRIDE_DIR).is_dir():
        loaders.append(FileSystemLoader(str(root / OVERRIDE_DIR)))
    loaders.append(PackageLoader("mlops", "templates"))
    env = Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, keep_trailing_newline=True,
                      autoescape=html, trim_blocks=True, lstrip_blocks=True)  # noqa: S701
    env.filters["md"] = md
    env.filters.update(filters or {})
    env.globals.update(globals_ or {})
    return env
