"""The desktop driver on a real X server (Xvfb) with real applications (Tk, xterm)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent import Agent, DriverError, read_run
from pixelpilot.drivers.desktop import DesktopDriver
from pixelpilot.tools import actions as A
from tests.support.procs import lock_owner

from ..conftest import ROOT, run_dirs

APP = ROOT / "tests" / "apps" / "tk_app.py"
pytestmark = pytest.mark.desktop


@pytest.fixture(scope="session")
def x_tools() -> None:
    import shutil

    missing = [t for t in ("Xvfb", "xdotool", "xterm") if not shutil.which(t)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing on CI: .ci/run must install xvfb xdotool xterm")
        pytest.skip(f"{missing} not installed")


class Events:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def wait(self, name: str, timeout: float = 5.0, **match: object) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in reversed(self.all()):
                if e["event"] == name and all(e.get(k) == v for k, v in match.items()):
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {name} event {match or ''} in {self.all()}")


@pytest.fixture
def tk(x_tools, tmp_path):
    events = Events(tmp_path / "events.jsonl")
    with DesktopDriver.start() as d:
        d.launch([sys.executable, str(APP), str(events.path)])
        events.wait("ready")
        yield d, events


def test_display_lifecycle_leaves_nothing_behind(x_tools):
    d = DesktopDriver.start(size=(800, 600))
    n = d.display.lstrip(":")
    pid = d._xvfb.pid
    assert Path(f"/tmp/.X11-unix/X{n}").exists()
    assert d.observe().image.size == (800, 600)
    d.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    owner = lock_owner(
        Path(f"/tmp/.X{n}-lock")
    )  # gone, or another X server's (a parallel test took the number)
    assert owner != pid
    assert owner is not None or not Path(f"/tmp/.X11-unix/X{n}").exists()
    assert (
        "DISPLAY" not in os.environ or os.environ["DISPLAY"] != d.display
    )  # never exported to our own process


def test_two_drivers_in_parallel_get_two_displays(x_tools, tmp_path):
    e1, e2 = Events(tmp_path / "a.jsonl"), Events(tmp_path / "b.jsonl")
    with DesktopDriver.start() as d1, DesktopDriver.start() as d2:
        assert d1.display != d2.display
        d1.launch([sys.executable, str(APP), str(e1.path), "--geometry", "600x420+0+0"])
        d2.launch([sys.executable, str(APP), str(e2.path), "--geometry", "600x420+600+300"])
        e1.wait("ready"), e2.wait("ready")
        a1, a2 = Agent(d1), Agent(d2)
        assert a1.click("Enable").point[0] < 600 and a2.click("Enable").point[0] > 600
        e1.wait("check", value=True), e2.wait("check", value=True)


def test_every_computer_use_action_on_a_tk_app(tk):
    d, ev = tk
    agent = Agent(d)
    # typing ASCII and non-ASCII into the entry (click it first: no window manager, focus follows the pointer)
    agent.perform(A.Click(at=(145, 27)))
    agent.type("héllo wörld ✓ 日本 ok")
    rec = agent.click("Submit")
    assert rec.locator == "ocr"
    assert ev.wait("submit")["text"] == "héllo wörld ✓ 日本 ok"
    agent.perform(A.TripleClick(at=(145, 27)))
    ev.wait("triple")
    agent.click("Enable")
    ev.wait("check", value=True)
    # the list: wheel scroll over it, then a double click opens an item
    agent.scroll("down", 300, target="Item 5")
    scrolled = ev.wait("list_scroll")
    assert scrolled["first"] > 0 and scrolled["top"] != "Item 1"
    target = f"Item {int(scrolled['top'].split()[1]) + 2}"  # on screen now, two rows below the new top
    agent.perform(A.DoubleClick(at=agent.locate(target).point))
    ev.wait("list_open", item=target)
    # the canvas: pointer move, drag (press-move-release), middle click, horizontal scroll, right-click menu
    canvas = agent.locate("Canvas").point
    agent.perform(A.MouseMove(at=(canvas[0], canvas[1] + 60)))
    ev.wait("pointer_enter")
    agent.perform(A.Drag(start=(canvas[0] - 80, canvas[1] + 40), end=(canvas[0] + 20, canvas[1] + 90)))
    drag = ev.wait("drag")
    assert (drag["end"][0] - drag["start"][0], drag["end"][1] - drag["start"][1]) == (100, 50)
    agent.perform(A.MiddleClick(at=(canvas[0], canvas[1] + 60)))
    ev.wait("middle")
    agent.perform(A.RightClick(at=(canvas[0], canvas[1] + 60)))
    agent.click("Delete")  # an item of the popup menu, found by OCR
    ev.wait("menu", item="Delete")
    # a key combination, and wait
    agent.key("ctrl+shift+k")
    ev.wait("combo")
    agent.perform(A.Wait(seconds=0.1))
    agent.wait_for("Combo pressed", timeout=5)


def test_horizontal_and_vertical_scroll_reach_an_x_window_as_wheel_buttons(x_tools):
    # Tk 8.6 drops X buttons 6/7, so a bare Xlib window reports what the server delivers
    from Xlib import X
    from Xlib import display as xdisplay

    with DesktopDriver.start() as d:
        conn = xdisplay.Display(d.display)
        win = conn.screen().root.create_window(
            100,
            100,
            400,
            300,
            0,
            conn.screen().root_depth,
            event_mask=X.ButtonPressMask,
            background_pixel=conn.screen().white_pixel,
        )
        win.map()
        conn.sync()
        time.sleep(0.2)
        for action in (
            A.Scroll(at=(300, 250), dx=200),
            A.Scroll(at=(300, 250), dx=-100),
            A.Scroll(at=(300, 250), dy=300),
            A.Scroll(at=(300, 250), dy=-100),
        ):
            d.perform(action)
        time.sleep(0.2)
        buttons = []
        while conn.pending_events():
            e = conn.next_event()
            if e.type == X.ButtonPress:
                buttons.append(e.detail)
        conn.close()
    assert buttons == [7, 7, 6, 5, 5, 5, 4]  # right ×2, left ×1, down ×3, up ×1 (100 px per wheel click)


def test_xterm_types_a_shell_command_with_non_ascii_text(x_tools, tmp_path):
    out = tmp_path / "out.txt"
    with DesktopDriver.start() as d:
        d.launch(["xterm", "-u8", "-geometry", "100x20+0+0"], env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
        agent = Agent(d)
        agent.perform(A.Click(at=(200, 100)))
        agent.type(f"printf '%s' 'grüße, ✓ 日本' > {out}\n")
        deadline = time.time() + 5
        while not (out.exists() and out.read_text()) and time.time() < deadline:
            time.sleep(0.05)
    assert out.read_text(encoding="utf-8") == "grüße, ✓ 日本"


def test_image_targets_by_template_matching(tk, tmp_path):
    d, ev = tk
    agent = Agent(d)
    shot = d.observe().image
    loc = agent.locate("Submit")
    x, y = loc.point
    shot.crop((x - 40, y - 14, x + 40, y + 14)).save(tmp_path / "submit.png")
    rec = agent.click(image=tmp_path / "submit.png")
    assert rec.locator == "template" and abs(rec.point[0] - x) <= 2 and abs(rec.point[1] - y) <= 2
    ev.wait("submit")
    # the same button cut on a screen at 1.5x (HiDPI) and at 0.75x (zoomed out): found all the same
    for k in (1.5, 0.75):
        big = Image.open(tmp_path / "submit.png")
        big.resize((round(big.width * k), round(big.height * k)), Image.LANCZOS).save(
            tmp_path / f"submit{k}.png"
        )
        before = sum(e["event"] == "submit" for e in ev.all())
        rec = agent.click(image=tmp_path / f"submit{k}.png")
        assert rec.locator == "template" and abs(rec.point[0] - x) <= 3 and abs(rec.point[1] - y) <= 3, k
        deadline = time.time() + 5
        while sum(e["event"] == "submit" for e in ev.all()) == before and time.time() < deadline:
            time.sleep(0.05)
        assert sum(e["event"] == "submit" for e in ev.all()) > before, k  # (retried when nothing shows)


def test_monitor_not_at_the_origin(x_tools, tmp_path):
    # Xvfb ignores `xrandr --setmonitor`, so the second monitor is given as its region of a 2560x800 screen
    ev = Events(tmp_path / "e.jsonl")
    with DesktopDriver.start(size=(2560, 800), monitor=(1280, 0, 1280, 800)) as d:
        assert d.monitor == {"left": 1280, "top": 0, "width": 1280, "height": 800}
        d.launch([sys.executable, str(APP), str(ev.path), "--geometry", "600x420+1380+50"])
        ev.wait("ready")
        screen = d.observe()
        assert screen.image.size == (1280, 800)
        rec = Agent(d).click("Enable")
        assert (
            400 < rec.point[0] < 700 and rec.point[1] < 120
        )  # frame pixels of that monitor, not of the screen
        ev.wait("check", value=True)
    with (
        pytest.raises(DriverError, match="not inside the 1280x800 screen"),
        DesktopDriver.start(monitor=(1000, 0, 1280, 800)),
    ):
        pass


def test_scale_is_honoured_end_to_end(x_tools, tmp_path):
    ev = Events(tmp_path / "e.jsonl")
    with DesktopDriver.start(scale=0.5) as d:
        d.launch([sys.executable, str(APP), str(ev.path)])
        ev.wait("ready")
        screen = d.observe()
        assert (screen.width, screen.height, screen.image.size, screen.scale) == (640, 400, (640, 400), 0.5)
        d.perform(A.Click(at=(206, 13)))  # "Enable" at (413, 27) on the screen is (206, 13) in the frame
        ev.wait("check", value=True)


def test_crashed_app_is_a_driver_error_and_the_log_survives(x_tools, tmp_path):
    ev = Events(tmp_path / "e.jsonl")
    with DesktopDriver.start() as d:
        d.launch([sys.executable, str(APP), str(ev.path), "--crash-after", "1.5"])
        ev.wait("ready")
        agent = Agent(d, output=tmp_path / "runs", task="crash")
        with pytest.raises(DriverError, match=r"tk_app\.py .*exited \(code 3\)"), agent:
            agent.click("Enable")
            time.sleep(2.0)
            agent.click("Submit")
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "error" and [s.outcome for s in run.steps] == ["passed", "error"]


def test_killed_xvfb_is_a_driver_error(x_tools, tmp_path):
    with DesktopDriver.start() as d:
        agent = Agent(d, output=tmp_path / "runs", task="xvfb")
        agent.perform(A.MouseMove(at=(10, 10)))
        os.killpg(d._xvfb.pid, signal.SIGKILL)
        time.sleep(0.3)
        with pytest.raises(DriverError, match=r"the X server \(Xvfb :\d+\) has exited"):
            agent.perform(A.Click(at=(10, 10)))
        agent.close()
    run = read_run(agent.recorder.path)
    assert [s.outcome for s in run.steps] == ["passed", "error"] and run.meta["status"] == "error"


def test_cli_desktop_task_without_any_display(x_tools, tmp_path):
    ev = tmp_path / "events.jsonl"
    task = tmp_path / "desk.yaml"
    task.write_text(f"""
name: desktop demo
driver:
  desktop:
    launch: [{sys.executable}, {APP}, {ev}]
steps:
  - click: Enable
  - key: ctrl+shift+k
  - wait_for: Combo pressed
  - see: Submit
""")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(task), "--output", str(tmp_path / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = run_dirs(tmp_path / "runs")[0]
    run = read_run(run_dir)
    assert run.meta["driver"] == "desktop" and [s.locator for s in run.steps][:1] == ["ocr"]
    html = (run_dir / "report.html").read_text()
    assert all(s.frame and (run_dir / s.frame).is_file() and s.frame in html for s in run.steps)
    assert '"event": "combo"' in ev.read_text()


def test_no_xvfb_exits_3_with_the_apt_line(tmp_path):
    task = tmp_path / "desk.yaml"
    task.write_text("driver: desktop\nsteps:\n  - see: anything\n")
    res = subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(task), "--output", str(tmp_path / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PIXELPILOT_XVFB": "/nonexistent/Xvfb"},
        timeout=60,
    )
    assert res.returncode == 3, res.stdout
    assert "Xvfb" in res.stdout and "apt-get install -y xvfb" in res.stdout
