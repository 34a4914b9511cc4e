"""Drivers: where screenshots come from and where actions go."""

from .base import Box, Driver, ElementDriver, Navigable, Screen, Settling, UINode
from .browser import BrowserDriver, NavigationResult, find_chromium
from .fake import FakeDriver, FakeWidget

__all__ = [
    "Box",
    "BrowserDriver",
    "Driver",
    "ElementDriver",
    "FakeDriver",
    "FakeWidget",
    "Navigable",
    "NavigationResult",
    "Screen",
    "Settling",
    "UINode",
    "find_chromium",
]
