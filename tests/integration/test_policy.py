"""The action policy against a real browser and a scripted model: a navigation to a host the policy does not
allow, a forbidden action and a click that needs a person's confirmation are each refused — the servers' own
request logs and the page prove nothing happened — the refusal is in the run's record, and the model's next
prompt carries it (the loop goes on)."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pixelpilot.agent import Agent, read_run
from pixelpilot.agent.locate import Locator
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.policy import Policy, PolicyRefused
from pixelpilot.agent.qwen import pixels_to_grid
from pixelpilot.drivers import BrowserDriver

pytestmark = pytest.mark.browser


class Logged(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


def serve(root: Path) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Logged, directory=str(root)))
    srv.paths = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def call(args: dict, said: str) -> str:
    return (
        f"Action: {said}\n<tool_call>\n"
        + json.dumps({"name": "computer_use", "arguments": args})
        + "\n</tool_call>"
    )


def test_refused_navigation_forbidden_action_and_unconfirmed_click(tmp_path, chromium):
    partner_root, app_root = tmp_path / "partner", tmp_path / "app"
    partner_root.mkdir()
    app_root.mkdir()
    (partner_root / "index.html").write_text("<h1>Partner</h1>")
    partner = serve(partner_root)
    port = partner.server_address[1]
    (app_root / "index.html").write_text(
        f"""<html><body style="font-family:sans-serif;margin:20px">
<p><a id=partner href="http://localhost:{port}/index.html">Partner site</a></p>
<button id=del onclick="fetch('/deleted.txt'); document.getElementById('out').textContent='deleted'">Delete account</button>
<p id=out>-</p></body></html>"""
    )
    (app_root / "deleted.txt").write_text("gone")
    app = serve(app_root)
    try:
        with BrowserDriver.launch(viewport=(1280, 800)) as d:
            d.goto(f"http://127.0.0.1:{app.server_address[1]}/index.html")
            boxes = {n.name: n.box for n in d.ui_tree() if n.name in ("Partner site", "Delete account")}

            def click(name: str) -> dict:
                return {
                    "action": "left_click",
                    "coordinate": list(pixels_to_grid(boxes[name].center, (1280, 800))),
                }

            model = ScriptedModel(
                [
                    call(click("Partner site"), "Open the partner site."),
                    call({"action": "key", "keys": ["ctrl", "a"]}, "Select all."),
                    call(click("Delete account"), "Delete the account."),
                    call({"action": "terminate", "status": "failure"}, "I am not allowed to."),
                ]
            )
            policy = Policy(allow_domains=["127.0.0.1"], forbid=["key"], confirm=["Delete|Pay|Buy|Send"])
            agent = Agent(
                d,
                model=model,
                locator=Locator(use_ocr=False),
                policy=policy,
                output=tmp_path / "runs",
                task="p",
            )
            with agent:
                result = agent.run("Tidy up the account", max_steps=6)
            assert result.model_calls == 4  # the loop went on after each refusal
            out = d.page.text_content("#out")
            url = d.page.url
    finally:
        partner.shutdown()
        app.shutdown()
    # the applications' own state: the partner was never asked, nothing was deleted
    assert partner.paths == []  # type: ignore[attr-defined]
    assert "/deleted.txt" not in app.paths and out == "-"  # type: ignore[attr-defined]
    assert url.startswith("http://127.0.0.1")
    # the record: each refused step failed with its rule; the run is not passed
    run = read_run(agent.recorder.path)
    refused = [s for s in run.steps if s.outcome == "failed"]
    assert len(refused) == 3 and all(s.error_type == "PolicyRefused" for s in refused), refused
    assert (
        f"does not allow loading http://localhost:{port}/index.html [policy allow_domains" in refused[0].error
    )
    assert "forbids 'key' actions [policy forbid: key]" in refused[1].error
    assert "needs a person's confirmation (confirm: Delete|Pay|Buy|Send)" in refused[2].error
    assert run.meta["status"] == "failed"
    # the model was told: each later prompt carries the refusal
    texts = [json.dumps(p.messages, default=str) for p in model.prompts]
    assert "REFUSED by the policy" in texts[1] and "forbid: key" in texts[2] and "confirm: Delete" in texts[3]


def test_open_and_upload_are_checked_before_they_happen(tmp_path, chromium):
    with BrowserDriver.launch() as d:
        agent = Agent(d, policy=Policy(block_domains=["example.com"]), upload_base=tmp_path / "task")
        with pytest.raises(PolicyRefused, match="block_domains: example.com"):
            agent.open("https://www.example.com/login")
        outside = tmp_path / "elsewhere.txt"
        outside.write_text("x")
        d.goto("data:text/html,<label for=f>File</label><input id=f type=file>")
        with pytest.raises(PolicyRefused, match="allows uploads only from"):
            agent.upload(outside, into="File")
        assert d.page.evaluate("document.getElementById('f').files.length") == 0
