"""Starting or reaching Chromium for the browser driver: Debian's Chromium found on this machine, one
Playwright per thread, a remote browser's address as logs may show it, a fresh context with its page."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pixelpilot.drivers.browser_tree import js
from pixelpilot.tools.errors import DriverUnavailable

__all__ = [
    "CHROMIUM_ARGS",
    "CONNECT_TIMEOUT_MS",
    "find_chromium",
    "open_context",
    "playwright_session",
    "redact",
]

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)
_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
)
INSTALL_CHROMIUM = "sudo apt-get install -y chromium   (or set PIXELPILOT_CHROMIUM=/path/to/chrome)"


CONNECT_TIMEOUT_MS = 30_000
"""How long reaching a remote browser (``connect``/``cdp``) may take."""


def redact(url: str) -> str:
    """``url`` without a password or a token in its query (what a log or an error may show)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}:****@{netloc}" if parts.password else f"{parts.username}@{netloc}"
    query = "&".join(
        f"{k}=****" if re.search(r"token|key|secret|pass|auth", k, re.I) else f"{k}={v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def open_context(
    browser: Any,
    viewport: tuple[int, int],
    device_scale_factor: float,
    base_url: str | None,
    storage_state: str | os.PathLike[str] | None,
) -> tuple[Any, Any]:
    """A new context of ``browser`` (watched by watch.js) and its first page."""
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        device_scale_factor=device_scale_factor,
        base_url=base_url,
        storage_state=str(storage_state) if storage_state is not None else None,
    )
    context.add_init_script(js("watch.js"))
    return context, context.new_page()


def find_chromium(env: Mapping[str, str] | None = None) -> str:
    """Path of a Chromium binary: ``$PIXELPILOT_CHROMIUM``, else Debian's, else one on PATH."""
    override = (os.environ if env is None else env).get("PIXELPILOT_CHROMIUM")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise DriverUnavailable(
            f"PIXELPILOT_CHROMIUM={override} is not an executable file", install=INSTALL_CHROMIUM
        )
    for cand in _CANDIDATES:
        path = cand if os.path.isabs(cand) else shutil.which(cand)
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    raise DriverUnavailable("Chromium was not found", install=INSTALL_CHROMIUM)


class _Playwright:
    """One Playwright per thread, shared by the drivers launched there (the sync API allows one)."""

    _local = threading.local()

    @classmethod
    def acquire(cls) -> Any:
        from playwright.sync_api import sync_playwright

        if getattr(cls._local, "pw", None) is None:
            cls._local.pw = sync_playwright().start()
            cls._local.users = 0
        cls._local.users += 1
        return cls._local.pw

    @classmethod
    def release(cls) -> None:
        if getattr(cls._local, "pw", None) is None:
            return
        cls._local.users -= 1
        if cls._local.users <= 0:
            pw, cls._local.pw = cls._local.pw, None
            with contextlib.suppress(Exception):
                pw.stop()


@contextlib.contextmanager
def playwright_session() -> Iterator[Any]:
    """This thread's Playwright (the sync API allows one per thread), shared with the drivers
    launched here and stopped when the last user is done."""
    try:
        pw = _Playwright.acquire()
    except ImportError as exc:
        raise DriverUnavailable(
            "the browser driver needs Playwright", install="pip install 'pixelpilot[browser]'"
        ) from exc
    try:
        yield pw
    finally:
        _Playwright.release()
