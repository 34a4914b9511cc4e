"""The web console against a running server: real Chromium through Playwright for the pages, httpx for
the JSON API (every endpoint, bad input included), the token rule, and the index that rebuilds itself
from the run directories."""

from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pixelpilot.agent import Agent
from pixelpilot.drivers import FakeDriver, FakeWidget

from ..conftest import EXAMPLES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_runs(runs: Path) -> list[str]:
    """Three real runs written by agents on the in-memory driver: two passed, one failed."""
    ids = []
    for task, fail in (("login", False), ("checkout", True), ("search", False)):
        d = FakeDriver(
            [FakeWidget("Sign in", (20, 20, 100, 30)), FakeWidget("Hello", (20, 80, 100, 30), role="text")]
        )
        agent = Agent(d, output=runs, task=task)
        try:
            with agent:
                agent.click("Sign in")
                if fail:
                    agent.click("Sign out")
        except Exception:
            pass
        ids.append(agent.recorder.path.name)
        time.sleep(0.01)
    return ids


class Server:
    def __init__(self, app, port: int) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("the console did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_scripted_dir):
    from pixelpilot.tasks.console.app import create_app

    root = tmp_path_factory.mktemp("console")
    runs, tasks = root / "runs", root / "tasks"
    tasks.mkdir()
    shutil.copytree(EXAMPLES / "demo_app", tasks / "demo_app")
    shutil.copy(EXAMPLES / "demo.yaml", tasks / "demo.yaml")
    (tasks / "slow.yaml").write_text(
        "name: slow\nsteps:\n  - open: demo_app/index.html\n  - wait_for: {text: Never shown, timeout: 60}\n"
    )
    (tasks / "confirm.yaml").write_text(
        "name: confirm\npolicy: {confirm: [Sign in]}\nsteps:\n  - open: demo_app/index.html\n"
        "  - type: {text: alice, into: Username}\n  - type: {text: wonderland, into: Password}\n"
        "  - click: Sign in\n  - wait_for: Welcome, alice\n"
    )
    (root / "secret.txt").write_text("outside the runs folder")
    ids = make_runs(runs)
    app = create_app(runs, tasks=tasks, model=str(tiny_scripted_dir), refresh_interval=0)
    server = Server(app, free_port())
    yield {"url": server.url, "runs": runs, "tasks": tasks, "root": root, "ids": ids}
    server.stop()


def api(site, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
    return httpx.request(method, site["url"] + path, timeout=60, **kw)


# -- the JSON API ------------------------------------------------------------------------------------
def test_runs_api_lists_filters_sorts_and_reads_one_run(site):
    r = api(site, "GET", "/api/runs").json()
    assert r["total"] == 3 and {x["task"] for x in r["runs"]} == {"login", "checkout", "search"}
    assert api(site, "GET", "/api/runs?status=failed").json()["runs"][0]["task"] == "checkout"
    assert [x["task"] for x in api(site, "GET", "/api/runs?q=log").json()["runs"]] == ["login"]
    by_task = [x["task"] for x in api(site, "GET", "/api/runs?sort=task&order=asc").json()["runs"]]
    assert by_task == ["checkout", "login", "search"]
    assert api(site, "GET", "/api/runs?sort=secret").status_code == 400

    one = api(site, "GET", f"/api/runs/{site['ids'][1]}").json()
    assert one["meta"]["status"] == "failed" and [s["outcome"] for s in one["steps"]] == ["passed", "failed"]
    frame = api(site, "GET", one["steps"][0]["frame"])
    assert frame.status_code == 200 and frame.content[:4] in (
        b"\x89PNG",
        b"\xff\xd8\xff\xe0",
        b"\xff\xd8\xff\xdb",
    )
    assert "<html" in api(site, "GET", f"/runs/{site['ids'][0]}/").text.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/nope",
        "/api/runs/..",
        "/api/runs/.pixelpilot",
        "/runs/nope/",
        "/runs/{id}/..%2F..%2Fsecret.txt",
        "/runs/{id}/../../secret.txt",
        "/runs/%2E%2E/secret.txt",
        "/runs/{id}/%2E%2E/%2E%2E/secret.txt",
        "/runs/{id}/frames/none.png",
    ],
)
def test_unknown_runs_and_paths_that_try_to_leave_are_404(site, path):
    r = api(site, "GET", path.format(id=site["ids"][0]))
    assert r.status_code == 404 and "outside the runs folder" not in r.text


def test_playground_api_refuses_what_is_not_a_picture_or_too_big(site):
    from pixelpilot.tasks.console.app import MAX_UPLOAD

    text = api(
        site, "POST", "/api/playground", files={"image": ("x.png", b"hello")}, data={"instruction": "x"}
    )
    assert text.status_code == 415 and "not a picture" in text.json()["detail"]
    big = api(
        site,
        "POST",
        "/api/playground",
        files={"image": ("x.png", b"\0" * (MAX_UPLOAD + 1))},
        data={"instruction": "x"},
    )
    assert big.status_code == 413
    nothing = api(site, "POST", "/api/playground", data={"instruction": "x"})
    assert nothing.status_code == 422


def test_playground_api_act_returns_the_point_in_the_pictures_pixels(site):
    buf = io.BytesIO()
    Image.new("RGB", (1280, 800), "white").save(buf, format="PNG")
    r = api(
        site,
        "POST",
        "/api/playground",
        files={"image": ("s.png", buf.getvalue(), "image/png")},
        data={"instruction": "Sign in", "mode": "act"},
    ).json()
    assert r["point"] == [337, 334] and r["call"]["arguments"]["coordinate"] == [
        263,
        418,
    ]  # the scripted reply
    assert "<tool_call>" in r["raw"] and r["tokens_in"] > 0 and r["latency_ms"] > 0 and r["error"] is None


def test_jobs_api_bad_input(site):
    assert api(site, "POST", "/api/jobs", json={"task_file": "../secret.txt"}).status_code == 400
    assert api(site, "POST", "/api/jobs", json={"task_file": "missing.yaml"}).status_code == 400
    assert (
        api(site, "POST", "/api/jobs", json={"task_file": "demo.yaml", "driver": "moon"}).status_code == 422
    )
    assert api(site, "GET", "/api/jobs/nope").status_code == 404
    assert api(site, "POST", "/api/jobs/nope/stop").status_code == 404
    assert api(site, "GET", "/api/jobs/nope/events").status_code == 404
    assert "demo.yaml" in api(site, "GET", "/api/tasks").json()["tasks"]


def test_openapi_schema_documents_every_endpoint(site):
    paths = api(site, "GET", "/openapi.json").json()["paths"]
    for p in (
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/jobs",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/stop",
        "/api/jobs/{job_id}/confirm",
        "/api/playground",
        "/api/screenshot",
        "/api/tasks",
    ):
        assert p in paths, p


def test_the_index_rebuilds_itself_from_the_run_directories(site, tmp_path):
    from pixelpilot.tasks.console.index import RunIndex

    runs = tmp_path / "runs"
    ids = make_runs(runs)
    ix = RunIndex(runs)
    assert ix.refresh()["updated"] == 3 and ix.refresh()["updated"] == 0  # nothing changed: nothing re-read
    shutil.rmtree(runs / ids[0])
    meta = json.loads((runs / ids[1] / "run.json").read_text())
    (runs / ids[1] / "run.json").write_text(json.dumps({**meta, "status": "passed"}))
    done = ix.refresh()
    assert done["removed"] == 1 and done["updated"] == 1
    assert {r["status"] for r in ix.list()[1]} == {"passed"}
    ix.close()
    ix.db_path.write_bytes(b"not a database")  # a damaged index is rebuilt, the runs are the truth
    again = RunIndex(runs)
    again.refresh()
    assert again.list()[0] == 2
    again.close()


# -- the token rule ----------------------------------------------------------------------------------
def test_non_loopback_needs_a_token_and_every_request_then_carries_it(tmp_path, capsys):
    from pixelpilot.tasks.cli import main
    from pixelpilot.tasks.console.app import create_app

    assert main(["ui", "--host", "0.0.0.0", "--runs", str(tmp_path / "r")]) == 2
    assert "token" in capsys.readouterr().out

    server = Server(create_app(tmp_path / "r", token="s3cret"), free_port())
    try:
        for path in ("/", "/api/runs", "/openapi.json", "/api/jobs"):
            assert httpx.get(server.url + path).status_code == 401
            assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert (
            httpx.get(server.url + "/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )
        first = httpx.get(server.url + "/?token=s3cret")
        assert first.status_code == 200 and "pixelpilot_token" in first.cookies
        assert httpx.get(server.url + "/api/runs", cookies={"pixelpilot_token": "s3cret"}).status_code == 200
    finally:
        server.stop()


# -- the pages, in Chromium ----------------------------------------------------------------------------


@pytest.mark.browser
def test_runs_page_lists_filters_sorts_and_opens_a_report(site, browser):
    page = browser.page
    page.goto(site["url"] + "/")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#runs tbody tr").count() == 3
    page.fill("#q", "check")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 1")
    assert "failed" in page.inner_text("#runs tbody tr")
    page.fill("#q", "")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 3")
    page.click("th[data-sort=task]")
    page.wait_for_function("document.querySelector('#runs tbody tr td a').textContent === 'checkout'")
    page.click("#runs tbody tr >> nth=0 >> a")
    page.wait_for_load_state()
    assert page.url.endswith(f"/runs/{site['ids'][1]}/") and "Sign out" in page.content()


def start(browser, site, task: str):  # type: ignore[no-untyped-def]
    """Open the live page, pick ``task`` and press Start."""
    page = browser.page
    page.goto(site["url"] + "/live")
    page.wait_for_function("document.querySelectorAll('#task option').length > 0")
    page.select_option("#task", task)
    page.click("#start")
    return page


@pytest.mark.browser
def test_live_page_streams_the_demo_task_to_the_end(site, browser):
    page = start(browser, site, "demo.yaml")
    page.wait_for_selector("body[data-state=passed]", timeout=90_000)
    rows = page.locator("#steps tbody tr")
    assert rows.count() == 19 and "passed" in rows.nth(18).inner_text()
    assert page.locator("#frame").get_attribute("src").startswith("/runs/")
    run = next(p for p in site["runs"].iterdir() if p.name.endswith("-demo"))
    assert json.loads((run / "run.json").read_text())["status"] == "passed"


def run_steps(site, run_id: str) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    run = site["runs"] / run_id
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
    return json.loads((run / "run.json").read_text()), steps


@pytest.mark.browser
def test_live_page_asks_a_person_before_an_action_the_policy_wants_confirmed(site, browser):
    page = start(browser, site, "confirm.yaml")
    page.wait_for_selector("#ask:visible", timeout=60_000)
    assert "allow click on 'Sign in" in page.inner_text("#question")
    assert page.locator("#steps tbody tr").count() == 3  # the run waits at the click
    page.click("#allow")
    page.wait_for_selector("body[data-state=passed]", timeout=60_000)
    run_id = page.get_attribute("#report", "href").split("/")[2]
    meta, steps = run_steps(site, run_id)
    assert meta["status"] == "passed" and [s["kind"] for s in steps][-2:] == ["click", "wait_for"]


def test_a_refusal_in_the_console_fails_the_step_with_the_rule(site):
    job = api(site, "POST", "/api/jobs", json={"task_file": "confirm.yaml"}).json()
    deadline = time.monotonic() + 60
    while (question := api(site, "GET", f"/api/jobs/{job['id']}").json()["question"]) is None:
        assert time.monotonic() < deadline, "the run never asked"
        time.sleep(0.2)
    assert (
        api(site, "POST", f"/api/jobs/{job['id']}/confirm", json={"n": 99, "allow": True}).status_code == 409
    )
    assert api(site, "POST", f"/api/jobs/{job['id']}/confirm", json={"n": "x"}).status_code == 422
    ok = api(site, "POST", f"/api/jobs/{job['id']}/confirm", json={"n": question["n"], "allow": False})
    assert ok.status_code == 200
    while (done := api(site, "GET", f"/api/jobs/{job['id']}").json())["exit_code"] is None:
        assert time.monotonic() < deadline + 60
        time.sleep(0.2)
    meta, steps = run_steps(site, done["run_id"])
    assert done["status"] == "failed" and meta["status"] == "failed"
    assert steps[-1]["kind"] == "click" and steps[-1]["error_type"] == "PolicyRefused"
    assert "[policy confirm: Sign in]" in steps[-1]["error"]
    assert len(steps) == 4  # open, type, type, the refused click: the run went no further


@pytest.mark.browser
def test_stop_mid_run_leaves_a_complete_log(site, browser):
    page = start(browser, site, "slow.yaml")
    page.wait_for_function("document.querySelectorAll('#steps tbody tr').length >= 1", timeout=60_000)
    page.wait_for_timeout(1500)  # into the 60-second wait_for step: that step is the one interrupted
    page.click("#stop")
    page.wait_for_selector("body[data-state=interrupted]", timeout=60_000)
    run = next(p for p in site["runs"].iterdir() if p.name.endswith("-slow"))
    meta = json.loads((run / "run.json").read_text())
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
    assert meta["status"] == "interrupted" and [s["outcome"] for s in steps] == ["passed", "interrupted"]
    assert (run / "report.html").is_file()
    assert page.locator("#steps tbody tr").count() == 2


@pytest.mark.browser
def test_playground_page_draws_the_models_point(site, browser, tmp_path):
    shot = tmp_path / "screen.png"
    Image.new("RGB", (1280, 800), "white").save(shot)
    page = browser.page
    page.goto(site["url"] + "/playground")
    page.set_input_files("#file", str(shot))
    page.fill("#instruction", "Sign in")
    page.check("input[name=mode][value=act]")
    page.click("#run")
    page.wait_for_selector("body[data-result='1']", timeout=60_000)
    assert "<tool_call>" in page.inner_text("#raw") and "point (337, 334) px" in page.inner_text("#facts")
    img = page.locator("#img").bounding_box()
    mk = page.locator("#marker").bounding_box()
    k = img["width"] / 1280
    cx, cy = mk["x"] + mk["width"] / 2, mk["y"] + mk["height"] / 2
    assert abs(cx - (img["x"] + 337 * k)) < 3 and abs(cy - (img["y"] + 334 * k)) < 3


@pytest.mark.browser
def test_screenshot_api_takes_a_browser_frame_of_a_page(site):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site["tasks"] / "demo_app"))
    web = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        page = f"http://127.0.0.1:{web.server_address[1]}/index.html"
        r = api(site, "POST", "/api/screenshot", json={"driver": "browser", "url": page})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == (1280, 800)
    finally:
        web.shutdown()
    assert api(site, "POST", "/api/screenshot", json={"driver": "phone"}).status_code == 422


@pytest.mark.desktop
def test_screenshot_api_takes_a_desktop_frame(site):
    r = api(site, "POST", "/api/screenshot", json={"driver": "desktop"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (1280, 800)


@pytest.mark.browser
def test_jobs_api_lifecycle_streams_the_models_raw_reply(site, tiny_scripted_dir):
    """A model-driven task launched over the API: the events carry each step with its raw reply and
    frame, then the end; the job and its run are listed afterwards."""
    (site["tasks"] / "model.yaml").write_text(
        f"name: model-task\nmodel: {tiny_scripted_dir}\nsteps:\n  - open: demo_app/index.html\n"
        "  - goal: {goal: Sign in, max_steps: 1}\n"
    )
    job = api(site, "POST", "/api/jobs", json={"task_file": "model.yaml"})
    assert job.status_code == 201
    job_id = job.json()["id"]
    events = []
    with httpx.stream("GET", f"{site['url']}/api/jobs/{job_id}/events", timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "end":
                    break
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 2
    goal = [e for e in events if e["type"] == "step"][1]
    assert goal["kind"] == "goal" and "<tool_call>" in goal["raw"] and goal["point"] == [337, 334]
    assert api(site, "GET", goal["frame"]).status_code == 200
    run_id = events[0]["run_id"]
    assert api(site, "GET", f"/api/jobs/{job_id}").json()["run_id"] == run_id
    assert job_id in {j["id"] for j in api(site, "GET", "/api/jobs").json()["jobs"]}
    listed = api(site, "GET", "/api/runs?q=model-task").json()["runs"]
    assert [x["id"] for x in listed] == [run_id] and listed[0]["model"]
    assert api(site, "GET", f"/runs/{run_id}/steps.jsonl").text.count("\n") == 2
