"""The locator language on every driver that has a tree: MiniWoB++'s pages (PyPI ``miniwob``, not written
here: each result is the environment's own reward), and the fake Android device's uiautomator tree (its
own state). The desktop's AT-SPI tree is exercised by the Qt Linguist test in test_desktop_apps.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixelpilot.agent import Agent
from pixelpilot.drivers import BrowserDriver
from pixelpilot.drivers.android import AndroidDriver
from pixelpilot.tasks import RunOptions, run_task
from tests.support.fake_adb import FakeAdbServer, FakeDevice


def miniwob_page(task: str) -> Path:
    try:
        import miniwob
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("miniwob is missing on CI: scripts/install.sh installs it (pixelpilot[bench])")
        pytest.skip("miniwob is not installed (pip install 'pixelpilot[bench]')")
    return Path(miniwob.__file__).parent / "html" / "miniwob" / f"{task}.html"


@pytest.mark.browser
def test_a_task_file_reads_a_table_keeps_the_values_and_expects_the_reward(tmp_path, chromium):
    """read-table: the instruction names a row of a table; the value in that row goes into the field.
    The instruction's own words are read, the row found by a relation, the values kept with save_as and
    typed through ${name}; MiniWoB's reward display (right of its "Last reward:" label) proves it."""
    page = miniwob_page("read-table")
    task = tmp_path / "read-table.yaml"
    task.write_text(
        f"""name: read a table
driver: {{browser: {{viewport: [500, 320]}}}}
steps:
  - open: {page.as_uri()}
  - click: START
  - read: {{target: {{css: "#query span", first: true}}, save_as: key}}
  - read: {{target: {{role: cell, row: {{role: cell, name: "${{key}}", exact: true}}}}, save_as: value}}
  - type: {{text: "${{value}}", into: {{role: textbox, inside: {{css: "#area"}}}}}}
  - expect: {{target: {{role: textbox, inside: {{css: "#area"}}}}, to_have_value: "${{value}}"}}
  - click: {{role: button, name: Submit}}
  - expect: {{target: {{right_of: "Last reward:"}}, to_have_text: "/^(1\\\\.00|0\\\\.\\\\d+)$/"}}
"""
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", "\n".join(
        f"{s.kind} {s.instruction} {s.outcome} {s.error}" for s in res.steps
    )
    assert set(res.values) == {"key", "value"} and res.values["value"]
    reads = [s for s in res.steps if s.kind == "read"]
    assert reads[1].result == {"text": res.values["value"]}
    # the typed step names the value, not the placeholder
    assert res.steps[4].params["text"] == res.values["value"]


def _episode(d: BrowserDriver, task: str, seed: int) -> str:
    d.page.goto(miniwob_page(task).as_uri())
    d.page.wait_for_selector("#sync-task-cover", state="visible")
    d.page.evaluate(f"Math.seedrandom({seed})")
    d.page.evaluate("core.startEpisodeReal()")
    d.page.wait_for_function("WOB_TASK_READY === true")
    return str(d.page.evaluate("core.getUtterance()"))


@pytest.mark.browser
@pytest.mark.parametrize("seed", [1, 2])
def test_scopes_count_and_chaining_on_a_social_feed(chromium, seed):
    """social-media-all: every post by one user, some scrolled out of the feed's own scrolling box.
    Posts are counted on the whole page, each is scoped by ``has_text`` and ``nth``, the icon inside it
    is found by chaining; a wrong post or a missed one gives a negative reward."""
    import re

    with BrowserDriver.launch(viewport=(500, 320)) as d:
        u = _episode(d, "social-media-all", seed)
        button = re.search(r'"(\w+)"', u).group(1).lower()
        user = re.search(r"by (@\S+?) and", u).group(1)
        agent = Agent(d)
        posts = agent.find(css="#area .media").filter(has_text=user)
        n = posts.count()
        assert n >= 1
        for i in range(1, n + 1):
            posts.nth(i).find(css=f".{button}").click()
        agent.find(role="button", name="Submit").click()
        assert d.page.evaluate("WOB_RAW_REWARD_GLOBAL") == 1
        # the post markers the page set are on exactly the user's posts
        marked = d.page.evaluate(
            f"Array.from(document.querySelectorAll('#area .media')).filter(m => m.querySelector('.{button}.active'))"
            ".map(m => m.querySelector('.username').textContent)"
        )
        assert marked == [user] * n


@pytest.mark.android
def test_locators_on_the_android_uiautomator_tree(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    dev = FakeDevice("fake-5554")
    with FakeAdbServer([dev]) as srv, AndroidDriver.connect(port=srv.port) as d:
        agent = Agent(d)
        agent.click("Notes")
        agent.type("Groceries", into={"test_id": "title"})  # the resource id's name
        assert dev.title == "Groceries"
        agent.click({"test_id": "com.example.notes:id/save"})
        assert dev.saved == ["Groceries"]
        agent.expect({"test_id": "toast"}, text="Saved: Groceries")
        assert agent.count({"test_id": "item"}) == 8
        assert agent.text({"text": "/^Note \\d+$/", "inside": {"test_id": "list"}, "nth": 3}) == "Note 3"
        agent.click({"text": "/^Note/", "below": {"test_id": "save"}})  # the nearest below the button
        assert ("open", "Note 1") in dev.events
        agent.find(test_id="list").find(text="Note 5").click()  # chained
        assert ("open", "Note 5") in dev.events
        agent.expect({"test_id": "item"}, count=8)
        agent.expect({"text": "Note 99"}, state="hidden", timeout=0.5)


@pytest.mark.desktop
def test_locators_on_the_desktop_accessibility_tree(tmp_path):
    """The same forms on zenity's form (Debian, GTK 3) through AT-SPI: count by role, a field right of
    its caption, a value expected back, a chained find inside the dialog; zenity's own printed answer
    proves what was confirmed."""
    import shutil
    import time

    from pixelpilot.drivers.desktop import DesktopDriver

    missing = [p for p in ("Xvfb", "xdotool", "zenity", "dbus-daemon") if not shutil.which(p)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing on CI: scripts/install.sh installs them")
        pytest.skip(f"{missing} not installed")
    log = tmp_path / "app.log"
    with DesktopDriver.start() as d:
        d.launch(
            ["zenity", "--forms", "--add-entry=Name", "--add-entry=City", "--add-password=Password"], log=log
        )
        agent = Agent(d)
        agent.wait_for({"role": "button", "name": "OK"})
        assert agent.count({"role": "textbox"}) == 3
        agent.type("Zoë", into={"role": "textbox", "right_of": "Name"})
        agent.type("Málaga", into={"role": "textbox", "right_of": {"text": "City", "exact": True}})
        agent.expect({"role": "textbox", "right_of": "City"}, value="Málaga")
        agent.type("s3cret", into={"role": "textbox", "nth": -1})  # the last field
        agent.find(role="dialog").find(role="button", name="OK").click()
        deadline = time.monotonic() + 5
        while "Zoë" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "Zoë|Málaga|s3cret" in log.read_text(encoding="utf-8").splitlines()
