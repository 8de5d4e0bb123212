"""github capability: the sticky pull-request comment (PyGithub), Actions event parsing, job summary."""

from mlops.github.client import (
    DEFAULT_API,
    Client,
    Identity,
    Posted,
    Target,
    check_label,
    is_ours,
    parse_target,
    pr_from_event,
    watermark,
)
from mlops.github.context import LOCAL, CIContext

__all__ = [
    "DEFAULT_API",
    "LOCAL",
    "CIContext",
    "Client",
    "Identity",
    "Posted",
    "Target",
    "check_label",
    "is_ours",
    "parse_target",
    "pr_from_event",
    "watermark",
]
