"""The bottom of the exception tree, shared by ``drivers`` and ``agent``.

The full tree is drawn in :mod:`agent.errors`; it lives here only because ``tools`` is the package
every other one may depend on.
"""

from __future__ import annotations

__all__ = ["DriverError", "DriverUnavailable", "PixelPilotError"]


class PixelPilotError(Exception):
    """Root of every pixelpilot error."""


class DriverError(PixelPilotError):
    """The driver could not observe or act (the browser died, the display went away, ...)."""


class DriverUnavailable(DriverError):
    """A program or package the driver needs is missing; the message says how to install it."""

    def __init__(self, message: str, *, install: str | None = None) -> None:
        self.install = install
        super().__init__(message + (f"\n  install it with: {install}" if install else ""))
