"""Checks of the machine for ``pixelpilot doctor``: each says what it found or how to fix it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Check", "checks"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str
    required: bool = False


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def checks() -> list[Check]:
    from pixelpilot.drivers.browser_launch import INSTALL_CHROMIUM, find_chromium

    out: list[Check] = []
    has_pw = importlib.util.find_spec("playwright") is not None
    out.append(
        Check("playwright (browser driver)", has_pw, "installed", "pip install 'pixelpilot[browser]'", True)
    )
    try:
        exe = find_chromium()
        out.append(Check("Chromium", True, f"{exe}: {_version([exe, '--version'])}", INSTALL_CHROMIUM, True))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        out.append(Check("Chromium", False, "", f"{exc}".replace("\n", " "), True))
    has_ocr = (
        importlib.util.find_spec("rapidocr") is not None
        and importlib.util.find_spec("onnxruntime") is not None
    )
    tiny = importlib.util.find_spec("tinyocr") is not None
    out.append(
        Check(
            "OCR (rapidocr + onnxruntime)",
            has_ocr,
            "tiny PP-OCRv6 models" if tiny else "rapidocr's bundled models",
            "pip install 'pixelpilot[ocr]'",
        )
    )
    xvfb = shutil.which("Xvfb")
    out.append(
        Check("Xvfb (headless desktop)", bool(xvfb), xvfb or "", "sudo apt-get install -y xvfb xdotool")
    )
    xdo = shutil.which("xdotool")
    out.append(
        Check(
            "xdotool (desktop keys and text)",
            bool(xdo),
            _version([xdo, "--version"]) if xdo else "",
            "sudo apt-get install -y xdotool",
        )
    )
    desk = ("mss", "Xlib", "pyautogui", "jeepney")
    missing = [m for m in desk if importlib.util.find_spec(m) is None]
    out.append(
        Check(
            "mss, python-xlib, pyautogui, jeepney (desktop driver)",
            not missing,
            "installed" if not missing else f"missing: {', '.join(missing)}",
            "pip install 'pixelpilot[desktop]'",
        )
    )
    from pixelpilot.drivers.atspi import INSTALL_ATSPI, LAUNCHERS

    bus = shutil.which("dbus-daemon")
    out.append(
        Check(
            "D-Bus session bus (desktop accessibility)", bool(bus), bus or "", "sudo apt-get install -y dbus"
        )
    )
    launcher = next((p for p in LAUNCHERS if Path(p).exists()), None)
    out.append(
        Check("AT-SPI bus launcher (the desktop's UI tree)", bool(launcher), launcher or "", INSTALL_ATSPI)
    )
    adb = shutil.which("adb")
    out.append(
        Check(
            "adb (Android)",
            bool(adb),
            _version([adb, "version"]) if adb else "",
            "sudo apt-get install -y adb",
        )
    )
    if importlib.util.find_spec("torch") is None:
        out.append(Check("torch (local model)", False, "", "pip install torch  (then pixelpilot[local])"))
    else:
        import torch

        cuda = torch.cuda.is_available()
        dev = (
            torch.cuda.get_device_name(0)
            if cuda
            else "no CUDA device: only the openai backend or tiny models"
        )
        out.append(
            Check(
                "torch / CUDA (local model)",
                cuda,
                f"torch {torch.__version__}, {dev}",
                f"torch {torch.__version__} sees no GPU; use --model openai:<url> or a CUDA machine",
            )
        )
    has_tf = importlib.util.find_spec("transformers") is not None
    out.append(Check("transformers (local model)", has_tf, "installed", "pip install 'pixelpilot[local]'"))
    has_xgr = importlib.util.find_spec("xgrammar") is not None
    out.append(
        Check("xgrammar (constrained tool calls)", has_xgr, "installed", "pip install 'pixelpilot[engine]'")
    )
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    out.append(
        Check(
            "liger-kernel (engine's fused kernels; optional, else torch.compile)",
            has_liger,
            "installed",
            "pip install 'pixelpilot[engine]'",
        )
    )
    has_ui = all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn", "multipart"))
    out.append(Check("web console (pixelpilot ui)", has_ui, "installed", "pip install 'pixelpilot[ui]'"))
    return out
