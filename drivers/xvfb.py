"""A private X server (Xvfb) for headless desktop runs: started on a free display, torn down with
nothing left behind (no process, lock file or socket)."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from pixelpilot.drivers.procs import die_with_parent, stop_groups
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["INSTALL_XVFB", "VirtualDisplay"]

log = logging.getLogger(__name__)
INSTALL_XVFB = "sudo apt-get install -y xvfb xdotool"


class VirtualDisplay:
    """``Xvfb`` on the first free display number (``-displayfd``). Use :meth:`start` and :meth:`stop`."""

    def __init__(self, size: tuple[int, int] = (1280, 800), depth: int = 24) -> None:
        self.size, self.depth = size, depth
        self.display: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="pixelpilot-xvfb-", suffix=".log", delete=False)  # noqa: SIM115 - closed in stop()

    def start(self, timeout: float = 10.0) -> str:
        exe = os.environ.get("PIXELPILOT_XVFB") or shutil.which("Xvfb")
        if not exe or not Path(exe).is_file():
            raise DriverUnavailable(
                "Xvfb (the virtual X server for headless desktop runs) is not installed", install=INSTALL_XVFB
            )
        r, w = os.pipe()
        w_, h_ = self.size
        try:
            self._proc = subprocess.Popen(
                [
                    exe,
                    "-displayfd",
                    str(w),
                    "-screen",
                    "0",
                    f"{w_}x{h_}x{self.depth}",
                    "-nolisten",
                    "tcp",
                    "+extension",
                    "RANDR",
                ],
                pass_fds=(w,),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),  # Xvfb removes its lock and socket on TERM
            )
        finally:
            os.close(w)
        number = b""
        deadline = time.monotonic() + timeout
        try:
            while not number.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([r], [], [], left)[0]:
                    raise DriverError(f"Xvfb did not start within {timeout:g} s: {self.log_tail()}")
                chunk = os.read(r, 16)
                if not chunk:
                    raise DriverError(f"Xvfb exited while starting: {self.log_tail()}")
                number += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(r)
        self.display = f":{int(number.strip())}"
        log.info("Xvfb %s started (%dx%dx%d)", self.display, w_, h_, self.depth)
        return self.display

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-500:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_groups([proc], timeout=5)
        if self.display and proc is not None:
            # Xvfb removes its lock and socket when it stops; one killed outright leaves them. Only
            # files that are still this server's go: the number may already be another Xvfb's (one
            # started beside this one, e.g. by a parallel run, once this one had let it go).
            n = self.display.lstrip(":")
            lock = Path(f"/tmp/.X{n}-lock")
            try:
                ours = int(lock.read_text().strip() or 0) == proc.pid
            except (OSError, ValueError):
                ours = False
            if ours:
                for leftover in (lock, Path(f"/tmp/.X11-unix/X{n}")):
                    with contextlib.suppress(FileNotFoundError, PermissionError):
                        leftover.unlink()
        self._log.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._log.name)
