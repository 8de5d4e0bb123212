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

__all__ = ["DEFAULT_API", "Client", "Identity", "Posted", "Target", "check_label", "is_ours", "parse_target",
           "pr_from_event", "watermark"]
