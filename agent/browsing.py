"""The steps only a browser (or a driver with files and tabs) takes: tabs, uploads, waiting for a URL, a
response or a download, and the storage state of a login. :class:`Browsing` is that part of
:class:`~pixelpilot.agent.session.Agent`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pixelpilot.agent.errors import ConfigError, DriverError, StepFailed
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.agent.query import Target, as_param, describe
from pixelpilot.drivers.base import Screen

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["Browsing"]


class Browsing:
    """Mixed into :class:`~pixelpilot.agent.session.Agent`."""

    driver: Any

    @property
    def _me(self) -> Agent:
        return cast("Agent", self)

    def switch_tab(self, which: int | str) -> StepRecord:
        """Act on another tab of the browser: by index (0 the first, -1 the last), or by a part of its
        title or URL. (A click that opens a new tab switches to it by itself.)"""

        def body(_: Screen, rec: StepRecord) -> None:
            switch = getattr(self.driver, "switch_tab", None)
            if switch is None:
                raise DriverError(f"the {self._me._driver_name} driver has no tabs")
            rec.result = {"tab": switch(which)}

        return self._me.pipeline.run("switch_tab", str(which), {"which": which}, body, observe_first=False)

    def close_tab(self) -> StepRecord:
        """Close the tab steps act on; the last tab still open becomes the current one."""

        def body(_: Screen, rec: StepRecord) -> None:
            close = getattr(self.driver, "close_tab", None)
            if close is None:
                raise DriverError(f"the {self._me._driver_name} driver has no tabs")
            rec.result = {"tab": close()}

        return self._me.pipeline.run("close_tab", "", {}, body, observe_first=False)

    def upload(self, file: str | Path, *, into: Target) -> StepRecord:
        """Choose ``file`` in the file chooser that ``into`` opens (a file input's label, or the button
        that opens the chooser): located and hit-tested like a click."""
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"no file to upload at {path}")

        def body(screen: Screen, rec: StepRecord) -> None:
            self._me.policy.check_upload(path, self._me.upload_base)
            choose = getattr(self.driver, "choose_files", None)
            if choose is None:
                raise DriverError(f"the {self._me._driver_name} driver cannot upload files")
            loc = self._me._locate(screen, into, None, rec)
            point = self._me.pipeline.hit(loc, describe(into))
            t = self._me.clock()
            choose(point, [path.resolve()], loc.node)
            rec.timings["act"] = _ms(t, self._me.clock())
            rec.action = {"action": "upload", "file": path.name, "at": list(point)}
            rec.actions.append(rec.action)
            self._me.pipeline.settle(rec)

        return self._me.pipeline.run(
            "upload", f"{path.name} into {describe(into)}", {"file": str(path), "into": as_param(into)}, body
        )

    def _wait_browser(
        self, url: str | None, response: str | None, limit: float, download: str | None = None
    ) -> StepRecord:
        what = (
            f"url {url!r}"
            if url is not None
            else f"response {response!r}"
            if response is not None
            else f"download {download!r}"
        )

        def body(_: Screen, rec: StepRecord) -> None:
            kind = "url" if url is not None else "response" if response is not None else "download"
            waiter = getattr(self.driver, f"wait_for_{kind}", None)
            if waiter is None:
                raise DriverError(f"the {self._me._driver_name} driver cannot wait for a {kind}")
            t = self._me.clock()
            got = waiter(url or response or download, timeout=limit)
            if not got:
                raise StepFailed(f"no {what} within {limit:g} s")
            rec.result = {
                "waited_ms": _ms(t, self._me.clock()),
                kind: list(got) if isinstance(got, tuple) else got,
            }
            if kind == "download":
                self._me.pipeline.collect_downloads(rec)

        params = {"url": url, "response": response, "download": download, "timeout": limit}
        return self._me.pipeline.run("wait_for", what, params, body, observe_first=False)

    def save_storage_state(self, path: str | Path) -> Path:
        """Save the browser's cookies and local storage to ``path`` (JSON): log in once, then start
        later runs with ``BrowserDriver.launch(storage_state=path)`` or ``browser: {storage_state: path}``."""
        save = getattr(self.driver, "save_storage_state", None)
        if save is None:
            raise DriverError(f"the {self._me._driver_name} driver has no storage state")
        return Path(save(path))
