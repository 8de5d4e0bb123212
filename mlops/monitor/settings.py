"""`monitor:` in params.yaml: what counts as drift, decay and staleness, and how the check reads its input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops.config import MetricName, MonitorParams
from mlops.errors import ParamsInvalid
from mlops.files import read_yaml

__all__ = ["PARAMS_FILE", "MetricName", "MonitorParams", "load_monitor_params", "parse_monitor_params"]

PARAMS_FILE = "params.yaml"
def parse_monitor_params(raw: Any, source: str = PARAMS_FILE) -> MonitorParams:
    """MonitorParams from the `monitor:` mapping RAW (None: the defaults); ParamsInvalid naming the key."""
    if raw is None:
        return MonitorParams()
    if not isinstance(raw, dict):
        raise ParamsInvalid(f"{source}: key 'monitor' must be a mapping, got {type(raw).__name__}")
    try:
        return MonitorParams.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in ("monitor", *err["loc"]))
        if err["type"] == "extra_forbidden":
            what = f"unknown key '{loc}'"
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            what = f"key '{loc}': {err['msg']} (got {shown})"
        raise ParamsInvalid(f"{source}: {what}", hint="see `monitor:` in the params.yaml reference") from None


def load_monitor_params(path: Path | str = PARAMS_FILE) -> MonitorParams:
    """`monitor:` of PATH (the file and the section are optional)."""
    raw = read_yaml(path, ParamsInvalid, required=False) or {}
    if not isinstance(raw, dict):
        raise ParamsInvalid(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    return parse_monitor_params(raw.get("monitor"), str(path))
