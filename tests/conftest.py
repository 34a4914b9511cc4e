"""Shared fixtures. Unit tests use fakes only; integration tests start real programs (Chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _chromium() -> str | None:
    from agent.errors import DriverUnavailable
    from drivers.browser import find_chromium

    try:
        return find_chromium()
    except DriverUnavailable:
        return None


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: .ci/run must install it (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed (sudo apt-get install -y chromium)")
    return exe


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[object]:
    """One browser for the session; tests navigate it as they need."""
    from drivers.browser import BrowserDriver

    with BrowserDriver.launch(headless=True, viewport=(1280, 800)) as d:
        yield d


@pytest.fixture
def demo_url() -> str:
    return (EXAMPLES / "demo_app" / "index.html").as_uri()
