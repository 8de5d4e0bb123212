"""Small helpers the format modules share: atomic writes and the one-line error prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write TEXT to PATH through a temporary file renamed into place: a failure never leaves half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


def json_text(obj: Any) -> str:
    """Indented JSON with one trailing newline, keys in the order given (the files are read by people too)."""
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"
