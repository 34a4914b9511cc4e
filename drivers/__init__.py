"""Drivers: where screenshots come from and where actions go."""

from pixelpilot.drivers.android import AndroidDriver
from pixelpilot.drivers.base import (
    Box,
    DialogHandler,
    Driver,
    ElementDriver,
    FocusReader,
    Navigable,
    Screen,
    Settling,
    UINode,
)
from pixelpilot.drivers.browser import BrowserDriver, NavigationResult, find_chromium
from pixelpilot.drivers.desktop import DesktopDriver
from pixelpilot.drivers.fake import FakeDriver, FakeWidget

__all__ = [
    "AndroidDriver",
    "Box",
    "BrowserDriver",
    "DesktopDriver",
    "DialogHandler",
    "Driver",
    "ElementDriver",
    "FakeDriver",
    "FakeWidget",
    "FocusReader",
    "Navigable",
    "NavigationResult",
    "Screen",
    "Settling",
    "UINode",
    "find_chromium",
]
