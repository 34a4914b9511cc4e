"""Processes a driver starts die with the process that started them, even when it is SIGKILLed.

Xvfb and launched applications run in sessions of their own (so that a whole process group can be
stopped at close), which also puts them out of reach of a signal sent to the parent's group. On Linux
each such child asks the kernel for a signal when its parent dies (``PR_SET_PDEATHSIG``): nothing is
orphaned by ``kill -9``, a CI time-out or ``docker stop``.

The signal follows the *thread* that started the child: start drivers from the thread that owns them
(the main thread in the CLI and the pytest plugin).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

__all__ = ["die_with_parent", "stop_groups"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child receives ``sig`` when this process
    dies. ``None`` where the platform has no such facility (the child then lives on after a SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no Python objects allocated
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), sig)

    return preexec


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 3.0) -> None:
    """Stop processes started in sessions of their own, with everything they started: SIGTERM to each
    process group, then SIGKILL to a group whose leader has not exited within ``timeout`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
