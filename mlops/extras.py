"""Optional parts of the toolkit (pip extras): a command that needs one checks it first and says what to install."""

from __future__ import annotations

import importlib.util
from typing import Literal

from mlops.errors import MissingExtra

Extra = Literal["pipeline", "serve"]

# The modules each extra brings; a command checks them before it imports anything heavy.
MODULES: dict[Extra, tuple[str, ...]] = {
    "pipeline": ("numpy", "pandas", "sklearn", "xgboost", "deepchecks"),
    "serve": ("numpy", "xgboost", "uvicorn", "orjson", "prometheus_client"),
}


def missing(extra: Extra) -> list[str]:
    """The modules of EXTRA that cannot be imported here."""
    return [m for m in MODULES[extra] if importlib.util.find_spec(m) is None]


def require(extra: Extra, what: str) -> None:
    """MissingExtra naming WHAT needs EXTRA and the modules it lacks, with the install line as the hint."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(f"{what} needs the '{extra}' extra, which is not installed (missing: {', '.join(absent)})",
                           hint=f'pip install "mlops[{extra}]"')
