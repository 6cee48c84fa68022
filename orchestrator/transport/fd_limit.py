"""The process's open-file limit: every in-flight device holds one or two sockets."""

from __future__ import annotations

import resource
from contextlib import suppress


def raise_nofile_limit(needed: int) -> tuple[int, str | None]:
    """Raise the open-file soft limit toward ``needed``; return (limit now, warning or None)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        return soft, (
            f"open-file limit is {soft} but this concurrency needs about {needed}; "
            f"lower --concurrency or raise the limit (ulimit -n {needed})"
        )
    return soft, None
