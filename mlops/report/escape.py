"""Untrusted text (branch names, commit messages, param values, column names) made inert for markdown and mermaid.

Markdown output goes to a GitHub comment: it must not break the table or code block it sits in, inject HTML,
or mention people and issues. Every ASCII punctuation character that markdown (GFM, GitHub math) gives meaning to
is backslash-escaped, HTML's own are written as entities, line breaks become spaces, and `@` / `#` get a zero-width
space after them so that GitHub links no user, team or issue. Bare URLs get one too (after `://`, inside `www.`),
so that GFM's autolinks turn no `https://...` or `www....` into a link.
"""

from __future__ import annotations

import re

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
