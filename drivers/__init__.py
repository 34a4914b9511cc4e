"""Drivers: where screenshots come from and where actions go."""

from .android import AndroidDriver
from .base import Box, Driver, ElementDriver, FocusReader, Navigable, Screen, Settling, UINode
from .browser import BrowserDriver, NavigationResult, find_chromium
from .desktop import DesktopDriver
from .fake import FakeDriver, FakeWidget

__all__ = [
    "AndroidDriver",
    "Box",
    "BrowserDriver",
    "DesktopDriver",
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
