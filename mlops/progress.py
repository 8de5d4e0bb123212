"""Progress callbacks: the core reports, the CLI renders (terminal or plain CI lines)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(_message: str) -> None:
    """A progress sink that drops everything (library default)."""
