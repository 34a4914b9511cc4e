"""A page's video from Chromium's screencast (CDP ``Page.startScreencast``), written as WebM (VP8) by
OpenCV — for ``--video`` where Playwright's own recorder cannot run: it needs an ffmpeg build that
``playwright install`` downloads, and pixelpilot never downloads browsers or their tools.

Frames arrive while the page's Playwright connection is busy (every step of a test is), each with
Chromium's timestamp; the video shows each frame for as long as it was on screen.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Screencast"]

FPS = 25


class Screencast:
    """Records one page from :meth:`start` until :meth:`stop`; :meth:`save` writes the WebM."""

    def __init__(self, page: Any, *, quality: int = 70) -> None:
        self._page = page
        self._quality = quality
        self._frames: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._cdp: Any = None
        self._size: tuple[int, int] | None = None
        """The page's viewport (width, height): the video's size, whatever size a frame came in."""

    def start(self) -> Screencast:
        vp = self._page.viewport_size
        if vp:
            self._size = (int(vp["width"]), int(vp["height"]))
        self._cdp = self._page.context.new_cdp_session(self._page)
        self._cdp.on("Page.screencastFrame", self._on_frame)
        self._cdp.send("Page.startScreencast", {"format": "jpeg", "quality": self._quality})
        return self

    def _on_frame(self, event: dict[str, Any]) -> None:
        import base64

        with self._lock:
            self._frames.append((float(event["metadata"]["timestamp"]), base64.b64decode(event["data"])))
        with contextlib.suppress(Exception):  # the page is closing: no more frames to ask for
            self._cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})

    def stop(self) -> None:
        if self._cdp is None:
            return
        try:
            self._cdp.send("Page.stopScreencast")
            self._cdp.detach()
        except Exception:  # noqa: BLE001 - a page already closed has stopped its screencast
            pass
        self._cdp = None

    @property
    def frames(self) -> int:
        return len(self._frames)

    def save(self, path: str | Path) -> Path | None:
        """Write the video (``None`` when no frame came); each frame held until the next one's time."""
        import cv2

        with self._lock:
            frames = sorted(self._frames)
        if not frames:
            return None
        first = cv2.imdecode(np.frombuffer(frames[0][1], np.uint8), cv2.IMREAD_COLOR)
        if first is None:
            return None
        # a frame taken while the page was still being laid out can be a few pixels narrower (seen under
        # load: 1266 of 1280): the video is the viewport's size, each frame fitted to it
        w, h = self._size or (first.shape[1], first.shape[0])
        out = Path(path)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"VP80"), FPS, (w, h))
        try:
            for (t, data), nxt in zip(frames, [*frames[1:], (frames[-1][0] + 1 / FPS, b"")], strict=True):
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    continue
                if image.shape[:2] != (h, w):
                    image = cv2.resize(image, (w, h))
                for _ in range(max(1, round((nxt[0] - t) * FPS))):
                    writer.write(image)
        finally:
            writer.release()
        return out
