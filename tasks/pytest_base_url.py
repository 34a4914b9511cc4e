"""``base_url`` for the pytest plugin when neither pytest-base-url nor pytest-playwright provides it
(registered by :mod:`pixelpilot.tasks.pytest_plugin` only then)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def base_url(pytestconfig: pytest.Config) -> str | None:
    """``--base-url``, else the ``base_url`` ini value, else None."""
    return pytestconfig.getoption("base_url") or pytestconfig.getini("base_url") or None
