"""What happens on the browser's pages besides the DOM, as the browser driver follows it: the
navigation an action starts, the dialogs it opens, new tabs, downloads and uploads, the session's
storage, URL and response waits. :class:`PageActivity` is the part of :class:`BrowserDriver` that
listens to Playwright's page events and answers them; the driver adopts each page it acts on."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpilot.drivers.base import DialogPolicy, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

__all__ = ["PageActivity"]

log = logging.getLogger(__name__)


class PageActivity:
    """Mixed into :class:`~pixelpilot.drivers.browser.BrowserDriver` (which sets these up)."""

    page: Any
    _context: Any
    _nav: dict[str, Any] | None
    _dialog_policy: DialogPolicy
    _next_dialog: DialogPolicy | None
    _dialogs: list[dict[str, Any]]
    _opened: list[Any]
    _responses: list[tuple[str, int]]
    _downloads: list[Any]
    _downloaded: list[str]

    if TYPE_CHECKING:

        def _boundary(self, what: str) -> contextlib.AbstractContextManager[None]: ...

        def _adopt(self, page: Any) -> None: ...

        def _element(self, node: UINode) -> Any: ...

        def _px(self, p: A.Point) -> tuple[float, float]: ...

    def _on_download(self, download: Any) -> None:
        if download in self._downloads:  # one event, however many listeners saw it
            return
        self._downloads.append(download)
        self._downloaded.append(download.suggested_filename)

    def _on_popup(self, page: Any) -> None:
        self._opened.append(page)

    # -- files --------------------------------------------------------------------------------------
    def choose_files(
        self, at: A.Point, files: Sequence[str | os.PathLike[str]], node: UINode | None = None
    ) -> None:
        """Choose ``files``: set on ``node`` when it is a file input, else through the file chooser that
        a click at ``at`` (a button of the page's own) opens."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        with self._boundary("choose files"):
            if node is not None:
                element = self._element(node)
                if element is not None and element.evaluate(
                    "(e) => e.tagName === 'INPUT' && e.type === 'file'"
                ):
                    element.set_input_files([str(f) for f in files])
                    return
            try:
                with self.page.expect_file_chooser(timeout=10_000) as chooser:
                    self.page.mouse.click(*self._px(at))
            except PlaywrightTimeout:
                raise DriverError(
                    "the click opened no file chooser: name the file input or its button"
                ) from None
            chooser.value.set_files([str(f) for f in files])

    def take_downloads(self, folder: Path | None, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Downloads started since the last call, saved into ``folder`` (when given): name, URL, path."""
        taken, self._downloads = self._downloads, []
        out = []
        for d in taken:
            record: dict[str, Any] = {"name": d.suggested_filename, "url": d.url, "file": None}
            with self._boundary(f"save the download {d.suggested_filename}"):
                failure = d.failure()
                if failure:
                    record["error"] = failure
                elif folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / Path(d.suggested_filename).name
                    n = 1
                    while target.exists():
                        n += 1
                        target = (
                            folder
                            / f"{Path(d.suggested_filename).stem}-{n}{Path(d.suggested_filename).suffix}"
                        )
                    d.save_as(str(target))
                    record["file"] = str(target)
            out.append(record)
        return out

    def wait_for_download(self, part: str, *, timeout: float) -> bool:
        """Wait until a download whose name contains ``part`` started (one already started counts)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        if any(part in name for name in self._downloaded):
            return True
        with self._boundary(f"wait for a download {part!r}"):
            try:
                d = self.page.wait_for_event(
                    "download", predicate=lambda d: part in d.suggested_filename, timeout=timeout * 1000
                )
            except PlaywrightTimeout:
                return False
        if d not in self._downloads:
            self._downloads.append(d)
        return True

    # -- sessions and waits ------------------------------------------------------------------------
    def save_storage_state(self, path: str | os.PathLike[str]) -> Path:
        """Save the context's cookies and local storage (launch with ``storage_state=`` to reuse them)."""
        out = Path(path)
        with self._boundary("save the storage state"):
            self._context.storage_state(path=str(out))
        return out

    def wait_for_url(self, part: str, *, timeout: float) -> str | None:
        """Wait until the page's URL contains ``part``; returns the URL (None after ``timeout``)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        with self._boundary(f"wait for a URL with {part!r}"):
            if part not in self.page.url:
                try:
                    self.page.wait_for_url(lambda url: part in url, timeout=timeout * 1000)
                except PlaywrightTimeout:
                    return None
            return str(self.page.url)

    def wait_for_response(self, part: str, *, timeout: float) -> tuple[str, int] | None:
        """Wait for a response whose URL contains ``part`` — one received since the last action counts
        (it usually arrives while that action settles); returns its URL and status (None after
        ``timeout``)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for url, status in self._responses:
            if part in url:
                return url, status
        with self._boundary(f"wait for a response from {part!r}"):
            try:
                resp = self.page.wait_for_event(
                    "response", predicate=lambda r: part in r.url, timeout=timeout * 1000
                )
            except PlaywrightTimeout:
                return None
        return str(resp.url), int(resp.status)

    # -- tabs -------------------------------------------------------------------------------------
    @property
    def tab(self) -> dict[str, Any]:
        """The page steps act on: its index among the context's pages and its URL."""
        pages = self._context.pages
        return {"index": pages.index(self.page) if self.page in pages else None, "url": self.page.url}

    def tabs(self) -> list[dict[str, Any]]:
        with self._boundary("list the tabs"):
            return [{"index": i, "url": p.url, "title": p.title()} for i, p in enumerate(self._context.pages)]

    def switch_tab(self, which: int | str) -> dict[str, Any]:
        """Act on another page of the context: by index, or by a part of its title or URL."""
        with self._boundary("switch tabs"):
            pages = self._context.pages
            if isinstance(which, int):
                if not -len(pages) <= which < len(pages):
                    raise DriverError(f"there is no tab {which}: {len(pages)} open")
                page = pages[which]
            else:
                found = [p for p in pages if which.lower() in p.title().lower() or which in p.url]
                if len(found) != 1:
                    what = "no tab" if not found else f"{len(found)} tabs"
                    raise DriverError(
                        f"{what} with {which!r} in the title or URL; open: "
                        + ", ".join(f"{i}: {p.title()!r} {p.url}" for i, p in enumerate(pages))
                    )
                page = found[0]
            page.bring_to_front()
            self._adopt(page)
            return self.tab

    def close_tab(self) -> dict[str, Any]:
        """Close the page steps act on and go back to the last page still open."""
        with self._boundary("close a tab"):
            pages = [p for p in self._context.pages if p is not self.page]
            if not pages:
                raise DriverError("this is the only tab: close the browser instead")
            self.page.close()
            pages[-1].bring_to_front()
            self._adopt(pages[-1])
            return self.tab

    # -- dialogs (alert, confirm, prompt, beforeunload) --------------------------------------------
    def set_dialog_policy(self, policy: DialogPolicy, *, once: bool = False) -> None:
        if once:
            self._next_dialog = policy
        else:
            self._dialog_policy = policy

    def take_dialogs(self) -> list[dict[str, Any]]:
        taken, self._dialogs = self._dialogs, []
        return taken

    def _on_dialog(self, dialog: Any) -> None:
        policy = self._next_dialog if self._next_dialog is not None else self._dialog_policy
        self._next_dialog = None
        action, text = (policy, None) if isinstance(policy, str) else policy
        record = {"type": dialog.type, "message": dialog.message, "default": dialog.default_value or None}
        try:
            if action == "accept":
                dialog.accept(text) if text is not None else dialog.accept()
                record["action"] = "accepted" + (f" with {text!r}" if text is not None else "")
            else:
                dialog.dismiss()
                record["action"] = "dismissed"
        except Exception as exc:  # noqa: BLE001 - the page went away meanwhile: say so in the record
            record["action"] = f"could not answer: {exc}"
        log.info("%s dialog %r %s", dialog.type, dialog.message, record["action"])
        self._dialogs.append(record)

    # -- navigation started by an action -----------------------------------------------------------
    def _main(self, frame: Any) -> bool:
        try:
            return bool(frame == self.page.main_frame)
        except Exception:  # noqa: BLE001 - a closing page has no main frame to compare with
            return False

    def _on_request(self, request: Any) -> None:
        if self._nav is not None and request.is_navigation_request() and self._main(request.frame):
            self._nav.update(url=request.url, requested=True, status=None, error=None, committed=False)

    def _on_response(self, response: Any) -> None:
        if len(self._responses) < 2000:
            self._responses.append((response.url, response.status))
        request = response.request
        if self._nav is not None and request.is_navigation_request() and self._main(request.frame):
            self._nav.update(url=response.url, status=response.status)

    def _on_request_failed(self, request: Any) -> None:
        if self._nav is not None and request.is_navigation_request() and self._main(request.frame):
            self._nav.update(url=request.url, error=request.failure or "the request failed")

    def _on_navigated(self, frame: Any) -> None:
        if self._nav is not None and self._main(frame):
            if not self._nav.get("error"):  # a failed one commits Chromium's error page: keep its URL
                self._nav["url"] = frame.url
            self._nav["committed"] = True
