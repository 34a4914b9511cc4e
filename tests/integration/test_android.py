"""The Android driver against a fake adb server that speaks the real wire protocol (no emulator exists
here). State is checked through the fake device itself, with adbutils and with the real adb CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pixelpilot.agent import Agent, DriverError, DriverUnavailable, read_run
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.qwen import render_text
from pixelpilot.drivers.android import ADB_KEYBOARD, AndroidDriver
from pixelpilot.tools import actions as A
from tests.support.fake_adb import LATIN_IME, FakeAdbServer, FakeDevice

from ..conftest import ROOT, run_dirs

pytestmark = pytest.mark.android


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    # adbutils starts `adb start-server` when it cannot connect; a test must never start a real one
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


@pytest.fixture
def phone():
    dev = FakeDevice("fake-5554")
    with FakeAdbServer([dev]) as srv, AndroidDriver.connect(port=srv.port) as d:
        yield d, dev, srv


def adb(srv: FakeAdbServer, *args: str, **kw) -> subprocess.CompletedProcess:
    exe = shutil.which("adb")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("adb is missing on CI: .ci/run must install it (apt-get install -y adb)")
        pytest.skip("adb is not installed")
    return subprocess.run([exe, "-P", str(srv.port), *args], capture_output=True, timeout=30, **kw)


def test_taps_text_swipes_and_buttons_change_the_device(phone):
    d, dev, _ = phone
    agent = Agent(d)
    rec = agent.click("Notes")  # resolved from the uiautomator hierarchy, no model
    assert rec.locator == "ui-tree" and dev.screen == "notes"
    agent.type("Grocery list", into="Title")  # the field's hint
    assert dev.title == "Grocery list" and ("text", "Grocery list") in dev.events
    agent.click("Save")
    assert dev.saved == ["Grocery list"]
    agent.perform(A.Swipe(start=(540, 1500), end=(540, 900)))
    assert dev.list_offset == 4
    agent.perform(A.LongPress(at=(540, 600), duration=1))
    assert ("long_press", "540", "600") in dev.events
    agent.perform(A.SystemButton(button="Back"))
    assert dev.screen == "home"
    agent.perform(A.OpenApp(app="com.android.settings"))
    assert dev.screen == "settings"
    agent.click("Wi-Fi: off")
    assert dev.wifi is True
    agent.perform(A.SystemButton(button="Home"))
    agent.key("menu")
    assert dev.screen == "home" and ("key", "MENU") in dev.events
    with pytest.raises(DriverError, match="cannot open 'com.nope'"):
        d.perform(A.OpenApp(app="com.nope"))


def test_non_ascii_text_goes_through_adbkeyboard_and_the_ime_is_restored(phone):
    d, dev, srv = phone
    agent = Agent(d)
    agent.click("Notes")
    agent.type("Café ✓ 日本", into="Title")
    assert dev.title == "Café ✓ 日本" and dev.ime == LATIN_IME
    assert any("am broadcast -a ADB_INPUT_B64 --es msg" in r for r in srv.log)
    assert any(f"ime set {ADB_KEYBOARD}" in r for r in srv.log)


def test_non_ascii_without_adbkeyboard_says_what_to_install(phone):
    d, dev, _ = phone
    dev.adb_keyboard = False
    Agent(d).click("Notes")
    d.perform(A.Click(at=(540, 240)))
    with pytest.raises(
        DriverError, match="needs the ADBKeyBoard input method .* adb install ADBKeyboard.apk"
    ):
        d.perform(A.Type(text="Grüße"))


def test_typing_is_verified_retried_and_failed_with_what_was_entered(phone):
    d, dev, _ = phone
    Agent(d).click("Notes")
    d.perform(A.Click(at=(540, 240)))
    dev.drop_text_after = 4  # the keyboard loses the tail: the rest is typed again
    d.perform(A.Type(text="Shopping"))
    assert dev.title == "Shopping" and [e for e in dev.events if e[0] == "text"] == [
        ("text", "Shop"),
        ("text", "ping"),
    ]
    dev.mangle_text = True
    with pytest.raises(
        DriverError,
        match=r"typed ' now' on fake-5554, but the focused field holds 'Shopping NOW' \(expected 'Shopping now'\)",
    ):
        d.perform(A.Type(text=" now"))


def test_rotation_is_honoured(phone):
    d, dev, _ = phone
    dev.rotation = 1
    screen = d.observe()
    assert (screen.width, screen.height) == (1920, 1080) and screen.image.size == (1920, 1080)
    node = next(n for n in screen.tree if n.name == "Notes")
    d.perform(A.Click(at=node.box.center))
    assert dev.screen == "notes"


def test_the_real_adb_cli_against_the_same_server(phone):
    d, dev, srv = phone
    listing = adb(srv, "devices", "-l", text=True).stdout
    assert "fake-5554\tdevice" in listing and "model:Pixel_Fake" in listing
    assert adb(srv, "-s", "fake-5554", "shell", "input", "tap", "270", "380").returncode == 0
    assert dev.screen == "notes"
    png = adb(srv, "-s", "fake-5554", "exec-out", "screencap", "-p").stdout
    assert png.startswith(b"\x89PNG") and png == d._screencap()  # the CLI sees what the driver sees
    assert adb(srv, "-s", "fake-5554", "shell", "input", "keyevent", "4").returncode == 0
    assert dev.screen == "home"


def test_device_selection(monkeypatch):
    a, b = FakeDevice("emulator-5554"), FakeDevice("R58M123")
    with FakeAdbServer([]) as srv:
        with pytest.raises(DriverUnavailable, match="no Android device is connected"):
            AndroidDriver.connect(port=srv.port)
        srv.devices.append(a)
        assert AndroidDriver.connect(port=srv.port).serial == "emulator-5554"
        srv.devices.append(b)
        with pytest.raises(
            DriverError,
            match=r"several devices are connected \(emulator-5554 \(device\), R58M123 \(device\)\)",
        ):
            AndroidDriver.connect(port=srv.port)
        assert AndroidDriver.connect("R58M123", port=srv.port).serial == "R58M123"
        monkeypatch.setenv("ANDROID_SERIAL", "R58M123")
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(srv.port))
        assert AndroidDriver.connect().serial == "R58M123"  # both environment variables honoured
        monkeypatch.delenv("ANDROID_SERIAL")
        with pytest.raises(DriverError, match="no device 'nope'"):
            AndroidDriver.connect("nope")
        b.state = "unauthorized"
        with pytest.raises(
            DriverError, match="R58M123 is unauthorized: accept the 'Allow USB debugging' prompt"
        ):
            AndroidDriver.connect("R58M123")
        b.state = "offline"
        with pytest.raises(DriverError, match="R58M123 is offline: reconnect it"):
            AndroidDriver.connect("R58M123")
    with pytest.raises(DriverUnavailable, match=r"no adb server answers at 127\.0\.0\.1:9"):
        AndroidDriver.connect(port=9)


def test_dropped_connection_mid_run_is_a_driver_error_and_the_log_survives(tmp_path):
    dev = FakeDevice("fake-5554")
    srv = FakeAdbServer([dev]).start()
    d = AndroidDriver.connect(port=srv.port)
    agent = Agent(d, output=tmp_path, task="drop")
    with (
        pytest.raises(DriverError, match=r"lost the device fake-5554 \(adb server 127\.0\.0\.1:\d+\)"),
        agent,
    ):
        agent.click("Notes")
        srv.drop_next_service()
        agent.perform(A.Click(at=(540, 240)))
    srv.stop()
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "error" and [s.outcome for s in run.steps] == ["passed", "error"]


def grid999(p):  # screen pixels → the mobile grid (the tool says 999x999)
    return [round(p[0] / 1080 * 999), round(p[1] / 1920 * 999)]


def call(args: dict, action: str) -> str:
    return (
        f"Thought: next.\nAction: {action}\n<tool_call>\n"
        + json.dumps({"name": "mobile_use", "arguments": args})
        + "\n</tool_call>"
    )


def test_goal_loop_uses_mobile_use_and_the_999_grid(phone):
    d, dev, _ = phone
    model = ScriptedModel(
        [
            call({"action": "click", "coordinate": grid999((270, 380))}, "I opened the Notes app."),
            call({"action": "click", "coordinate": grid999((540, 240))}, "I tapped the title field."),
            call({"action": "type", "text": "Milk"}, "I typed Milk."),
            call({"action": "click", "coordinate": grid999((230, 400))}, "I saved the note."),
            call({"action": "terminate", "status": "success"}, "Done."),
        ]
    )
    result = Agent(d, model=model).run("Write a note called Milk", max_steps=8)
    assert result.status == "passed" and dev.saved == ["Milk"]
    last = render_text(model.prompts[-1])
    assert "The screen's resolution is 999x999." in last and '"name": "mobile_use"' in last
    assert "Step 1: I opened the Notes app.; Step 2: I tapped the title field.;" in last
    first = result.steps[0].model
    assert first["grid_point"] == grid999((270, 380)) and abs(first["pixel_point"][0] - 270) <= 1


def test_a_mai_ui_model_drives_the_phone_in_its_own_action_format(phone):
    """The mai-ui profile: MAI-UI's system prompt and history, its action names (open an app by name, a
    lower-case system button, ``fail``) performed on the device."""
    from pixelpilot.agent.qwen.profile import MAI_UI

    d, dev, _ = phone

    def mai(thinking: str, arguments: dict) -> str:
        call = json.dumps({"name": "mobile_use", "arguments": arguments})
        return f"<thinking>\n{thinking}\n</thinking>\n<tool_call>\n{call}\n</tool_call>"

    def where(name: str) -> list[int]:
        node = next(n for n in d.ui_tree() if name in (n.name, n.text))
        return grid999(node.box.center)

    plan = iter(
        [
            lambda: mai("Open Settings by its package.", {"action": "open", "text": "com.android.settings"}),
            lambda: mai("Turn Wi-Fi on.", {"action": "click", "coordinate": where("Wi-Fi: off")}),
            lambda: mai("Back home.", {"action": "system_button", "button": "home"}),
            lambda: mai("Done.", {"action": "terminate", "status": "success"}),
        ]
    )
    model = ScriptedModel(lambda prompt: next(plan)(), profile=MAI_UI)
    result = Agent(d, model=model).run("Turn on Wi-Fi", max_steps=6)
    assert result.status == "passed", result.reason
    assert dev.wifi is True and dev.screen == "home"
    last = model.prompts[-1].messages
    assert last[0]["content"][0]["text"].startswith("You are a GUI agent.")
    assert last[1]["content"] == [{"type": "text", "text": "Turn on Wi-Fi"}]
    said = [m["content"][0]["text"] for m in last if m["role"] == "assistant"]
    assert said[0].endswith(
        '{"name":"mobile_use","arguments":{"action":"open","text":"com.android.settings"}}\n</tool_call>'
    )
    assert sum(1 for m in last if m["role"] == "user" and m["content"][0]["type"] == "image") == 3


def test_cli_task_on_android(tmp_path):
    dev = FakeDevice("fake-5554")
    task = tmp_path / "phone.yaml"
    task.write_text(
        "name: phone\ndriver:\n  android:\n    open_app: com.example.notes\nsteps:\n"
        "  - type: {text: Eggs, into: Title}\n  - click: Save\n  - wait_for: 'Saved: Eggs'\n"
    )
    with FakeAdbServer([dev]) as srv:
        env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(srv.port), "ADBUTILS_ADB_PATH": "/bin/false"}
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "pixelpilot.tasks.cli",
                "run",
                str(task),
                "--output",
                str(tmp_path / "runs"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert dev.saved == ["Eggs"]
        srv.devices.clear()
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "pixelpilot.tasks.cli",
                "run",
                str(task),
                "--output",
                str(tmp_path / "runs"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert res.returncode == 3 and "no Android device is connected" in res.stdout
    run = read_run(run_dirs(tmp_path / "runs")[0])
    assert run.meta["driver"] == "android" and all(s.frame for s in run.steps)


def test_a_device_pool_gives_each_worker_its_own_device(tmp_path):
    a, b = FakeDevice("pool-a"), FakeDevice("pool-b")
    folder = tmp_path / "tasks"
    folder.mkdir()
    for i in range(4):
        (folder / f"note{i}.yaml").write_text(
            f"name: note{i}\ndriver:\n  android:\n    serial: [pool-a, pool-b]\n    open_app: com.example.notes\n"
            f"steps:\n  - type: {{text: Note {i}, into: Title}}\n  - click: Save\n  - wait_for: 'Saved: Note {i}'\n"
        )
    out = tmp_path / "runs"
    with FakeAdbServer([a, b]) as srv:
        env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(srv.port), "ADBUTILS_ADB_PATH": "/bin/false"}
        cmd = [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(folder), "--devices", "pool-a,pool-b"]
        res = subprocess.run(
            [*cmd, "--workers", "3", "--keep-drivers", "--output", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 passed" in res.stdout and "2 worker(s)" in res.stdout  # no more workers than devices
    assert sorted(a.saved + b.saved) == ["Note 0", "Note 1", "Note 2", "Note 3"] and a.saved and b.saved
    metas = [read_run(r).meta for r in run_dirs(out)]
    by_worker: dict[int, set[str]] = {}
    for m in metas:
        by_worker.setdefault(m["worker"]["pid"], set()).add(m["device"])
    assert len(by_worker) == 2 and all(len(d) == 1 for d in by_worker.values())  # a worker keeps its own
    assert set().union(*by_worker.values()) == {"pool-a", "pool-b"}


@pytest.mark.parametrize("sdk", [34, 30])
def test_typing_over_a_fields_text_replaces_it_before_and_after_android_13(sdk, tmp_path):
    # Android 13 selects with Ctrl+A (input keycombination); before it, input has no keycombination
    dev = FakeDevice("fake-5554", sdk=sdk)
    with FakeAdbServer([dev]) as srv, AndroidDriver.connect(port=srv.port) as d:
        with Agent(d, output=tmp_path, task="retype") as agent:
            d.perform(A.OpenApp(app="com.example.notes"))
            agent.type("Milk", into="Title")
            agent.type("Bread", into="Title")  # replaces what the field holds
        assert dev.title == "Bread"
        combos = [e for e in dev.events if e[0] == "combination"]
        assert bool(combos) == (sdk >= 33)
