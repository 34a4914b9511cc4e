"""Stopping runs: SIGTERM and SIGINT end a run as ``interrupted`` with its log and report complete, and
a worker whose parent dies (even by SIGKILL) stops the same way.

A parent that starts ``pixelpilot run`` workers (batch runs, the console) hands each one the read end
of a pipe whose write end only the parent holds (:func:`spawn`); the worker watches it
(:func:`install`) and, when it reads end-of-file — the parent is gone — sends itself SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelpilot.agent.errors import Interrupted

__all__ = ["ENV", "Worker", "install", "spawn"]

ENV = "PIXELPILOT_LIFELINE"
"""The file descriptor a worker watches for its parent's death."""

log = logging.getLogger(__name__)


def install() -> None:
    """In the main thread of a run: SIGTERM and SIGHUP raise :class:`Interrupted` (SIGINT raises
    KeyboardInterrupt as always), once — a second signal while the run records its end and closes its
    browser is ignored, so that nothing is left half-closed. Starts the lifeline watcher if this
    process was given one."""
    fired = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        if fired.is_set():
            log.warning("already stopping; %s ignored while the run is recorded", signal.Signals(signum).name)
            return
        fired.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(f"interrupted ({signal.Signals(signum).name})")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    fd = os.environ.pop(ENV, None)
    if fd is not None and fd.isdigit():
        threading.Thread(target=_watch, args=(int(fd),), name="pixelpilot-lifeline", daemon=True).start()


def _watch(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    log.warning("the process that started this run is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class Worker:
    """A ``pixelpilot run`` process and the parent's end of its lifeline."""

    proc: subprocess.Popen[Any]
    lifeline: int | None

    def release(self) -> None:
        """Close the lifeline once the worker has ended (or to tell it to stop)."""
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None


def spawn(cmd: Sequence[str], **kwargs: Any) -> Worker:
    """Start a worker that stops (as interrupted) when this process dies. It runs in a session of its
    own, so a terminal's Ctrl-C reaches the parent alone, which then stops its workers itself."""
    r, w = os.pipe()
    env = {**(kwargs.pop("env", None) or os.environ), ENV: str(r)}
    try:
        proc = subprocess.Popen(list(cmd), pass_fds=(r,), env=env, start_new_session=True, **kwargs)
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    return Worker(proc, w)
