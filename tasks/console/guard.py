"""What the console lets a request reach: files inside its folders (never through a symbolic link),
its own host names, its own origin for anything that changes state, the models it was given.

A browser on this machine visits other sites too: without these checks a page elsewhere could
drive the console (a POST with the token cookie, or a DNS name rebound to 127.0.0.1), and a run
folder holding a link could make it read or write files outside the runs folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pixelpilot.tasks.console import is_loopback

__all__ = ["LOOPBACK_NAMES", "allowed_hosts", "inside", "origin_allowed"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def inside(root: Path, rel: str | Path, *, kind: str = "file") -> Path | None:
    """``root / rel`` when every component below ``root`` is a real directory (the last one a real
    ``kind``: file or dir) and none is a symbolic link; otherwise ``None``. ``root`` itself is
    trusted (it was given on the command line)."""
    parts = Path(rel).parts
    if not parts or any(p in ("", ".", "..") or p.startswith("/") for p in parts):
        return None
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            st = os.lstat(path)
        except OSError:
            return None
        last = i == len(parts) - 1
        want = (stat.S_ISREG if kind == "file" else stat.S_ISDIR) if last else stat.S_ISDIR
        if not want(st.st_mode):  # a link is neither: lstat does not follow it
            return None
    return path


def allowed_hosts(host: str) -> set[str]:
    """Host names a request may carry: the loopback names, and the ``--host`` the console listens on
    (a DNS name that resolves to this machine is not enough: that is DNS rebinding)."""
    names = set(LOOPBACK_NAMES)
    if host not in ("0.0.0.0", "::") and not is_loopback(host):
        names.add(host.lower())
    return names


def host_of(header: str | None) -> str | None:
    """The host name in a ``Host`` header (port and IPv6 brackets removed)."""
    if not header:
        return None
    parts = urlsplit(f"//{header}")
    try:
        return parts.hostname
    except ValueError:
        return None


def origin_allowed(method: str, origin: str | None, fetch_site: str | None, host_header: str | None) -> bool:
    """A state-changing request must come from the console's own pages: same scheme-less origin as
    its Host, or from a client that is not a browser (no Origin header, no Sec-Fetch-Site)."""
    if method.upper() not in UNSAFE_METHODS:
        return True
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == (host_header or "").lower()


def task_models(paths: Iterable[Path]) -> set[str]:
    """The model specs the task files name (``model:``), as ``pixelpilot run`` would load them."""
    from pixelpilot.agent.errors import ConfigError
    from pixelpilot.tasks.spec import LocalModelSpec, OpenAIModelSpec, load_task

    found: set[str] = set()
    for p in paths:
        try:
            m = load_task(p).model
        except ConfigError:
            continue
        if isinstance(m, OpenAIModelSpec):
            found.add(f"openai:{m.openai}")
        elif isinstance(m, LocalModelSpec):
            found.add(m.local)
        elif isinstance(m, str):
            found.add(m)
    return found
