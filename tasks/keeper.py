"""The driver a long-lived worker keeps from one task to the next (``pixelpilot run DIR --keep-drivers``).

A browser stays up and each task gets a fresh context (no cookies, storage or pages of the last task);
a desktop keeps its display and each task's application is stopped before the next starts its own; an
Android device stays connected. A driver is replaced when the next task asks for another one (another
kind, headless or not, another endpoint, display or device) or when it died with its last task.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from pixelpilot.drivers.base import Driver
from pixelpilot.tasks import spec as S
from pixelpilot.tasks.runner import RunOptions, browser_context, browser_launch, make_driver

__all__ = ["DriverKeeper"]

log = logging.getLogger(__name__)


class DriverKeeper:
    def __init__(self) -> None:
        self.driver: Driver | None = None
        self._key: tuple[Any, ...] | None = None
        self.started = 0
        """How many drivers this keeper started (1 for a batch that never needed another)."""
        self.served = 0
        """How many tasks the current driver has served, this one included."""

    def acquire(self, task: S.TaskFile, opts: RunOptions, base: Path) -> Driver:
        """The driver for ``task``: the kept one, made fresh for it, or a new one."""
        kind = opts.driver or task.driver_kind
        key = _key(kind, task, opts)
        if self.driver is not None and (key != self._key or not getattr(self.driver, "alive", True)):
            self.close()
        if self.driver is None:
            self.driver, self._key = make_driver(task, opts, base, launch=False), key
            self.started += 1
            self.served = 1
            return self.driver
        self.served += 1
        if kind == "browser":
            from pixelpilot.drivers.browser import BrowserDriver

            assert isinstance(self.driver, BrowserDriver)
            try:
                self.driver = self.driver.fresh_context(**browser_context(task, base))
            except BaseException:
                self.close()
                raise
        elif kind == "desktop":
            from pixelpilot.drivers.desktop import DesktopDriver

            assert isinstance(self.driver, DesktopDriver)
            self.driver.stop_apps()
        elif task.android.open_app:
            from pixelpilot.tools.actions import OpenApp

            self.driver.perform(OpenApp(app=task.android.open_app))
        return self.driver

    def close(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.close()
        self.driver, self._key = None, None


def _key(kind: str, task: S.TaskFile, opts: RunOptions) -> tuple[Any, ...]:
    """What a kept driver must match to serve the next task."""
    if kind == "browser":
        return (kind, tuple(sorted(browser_launch(task, opts).items())))
    if kind == "desktop":
        d = task.desktop
        headed = opts.headed if opts.headed is not None else (d.headless is False)
        return (kind, headed, d.size, d.depth, d.display, d.monitor, d.scale)
    a = task.android
    serial = tuple(a.serial) if isinstance(a.serial, list) else a.serial
    return (kind, serial, a.host, a.port, a.scale)
