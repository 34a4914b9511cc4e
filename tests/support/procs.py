"""Processes found in /proc by their command line, and the X server a display's lock file names. The suite runs on two workers (``pytest -n 2``):
a test that looks for its own processes passes a needle only they carry (its ``tmp_path``), so it
never sees — or kills — another test's."""

from __future__ import annotations

from pathlib import Path


def pids_running(*needles: bytes | str) -> list[int]:
    """Live processes whose command line holds every needle."""
    want = [n.encode() if isinstance(n, str) else n for n in needles]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd and all(n in cmd for n in want):
            found.append(int(entry.name))
    return found


def lock_owner(lock: Path) -> int | None:
    """The pid an X display's lock file (``/tmp/.X<n>-lock``) names; None: gone, or not a number."""
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None
