"""github capability: the sticky pull-request comment and alarm issue (PyGithub), Actions event parsing, job
summary."""

from mlops.github.client import (
    DEFAULT_API,
    Client,
    IssueRef,
    Posted,
    Target,
    parse_target,
    pr_from_event,
)
from mlops.github.context import LOCAL, CIContext
from mlops.github.marker import Identity, check_label, is_ours, watermark

__all__ = [
    "DEFAULT_API",
    "LOCAL",
    "CIContext",
    "Client",
    "Identity",
    "IssueRef",
    "Posted",
    "Target",
    "check_label",
    "is_ours",
    "parse_target",
    "pr_from_event",
    "watermark",
]
