"""The machine-readable block that mlops writes into its annotated tags' messages.

A registry tag's message starts with one human line, then a JSON object between two marker lines:

    churn-model v1.3.0 (minor: input added: region)

    -----BEGIN MLOPS METADATA-----
    {"format": "mlops.registry/1", "action": "register", ...}
    -----END MLOPS METADATA-----

GTO and git show the whole message; mlops reads the block back (production's metrics for the gates, the
previous version's interface for the bump, the DVC hash for "has the model changed"). Tags made by other tools
have no block: they read as None, and mlops falls back to what git alone can tell.
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMAT = "mlops.registry/1"
BEGIN = "-----BEGIN MLOPS METADATA-----"
END = "-----END MLOPS METADATA-----"
_BLOCK = re.compile(rf"^{re.escape(BEGIN)}\s*$(?P<body>.*?)^{re.escape(END)}\s*$", re.MULTILINE | re.DOTALL)


def render_message(headline: str, block: dict[str, Any], body: str = "") -> str:
    """HEADLINE, an optional human BODY, then the metadata block (keys sorted: stable bytes)."""
    parts = [headline.strip(), ""]
    if body.strip():
        parts += [body.strip(), ""]
    parts += [BEGIN, json.dumps({"format": FORMAT, **block}, indent=2, sort_keys=True), END, ""]
    return "\n".join(parts)


def parse_block(message: str) -> dict[str, Any] | None:
    """The metadata block of a tag message, or None when it has none (or a malformed one)."""
    m = _BLOCK.search(message)
    if m is None:
        return None
    try:
        data = json.loads(m["body"])
    except ValueError:
        return None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("mlops.registry/"):
        return None
    return data


def headline(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""
