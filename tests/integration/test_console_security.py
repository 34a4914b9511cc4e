"""The console reads and writes only where it should, and renders hostile run data as text.

Every case here was reproduced against the console before this change: a picture of /etc/passwd from
/api/screenshot, files served and written through links in run folders, script run from a run.json
field on the runs page, requests accepted from other origins and host names, a 500 for the whole list
over one bad run.json, 500s for huge pictures and non-ASCII tokens."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib

import httpx
import pytest
from PIL import Image

from ..conftest import EXAMPLES
from .test_console import Server, free_port, make_runs


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from pixelpilot.tasks.console.app import create_app

    root = tmp_path_factory.mktemp("hostile")
    runs, tasks, outside = root / "runs", root / "tasks", root / "outside"
    tasks.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret outside the runs folder")
    (outside / "elsewhere.yaml").write_text(
        "name: elsewhere\nmodel: openai:http://evil.test/v1\nsteps:\n  - see: x\n"
    )
    shutil.copy(EXAMPLES / "demo.yaml", tasks / "demo.yaml")
    (tasks / "linked.yaml").symlink_to(outside / "elsewhere.yaml")  # a task file that is a link out
    ids = make_runs(runs)
    good = runs / ids[0]
    # a run folder holding links: to a file outside, and a dangling report.html pointing outside
    (good / "frames" / "leak.png").symlink_to(outside / "secret.txt")
    linked = runs / ids[2]
    (linked / "report.html").unlink()
    (linked / "report.html").symlink_to(outside / "written-through-link.html")
    # a whole run folder that is a link
    (runs / "20990101-000000-linkrun").symlink_to(good)
    # hostile run.json values
    xss = runs / "20990101-000001-xss"
    shutil.copytree(runs / ids[1], xss)
    (xss / "report.html").unlink()  # rendered by the console from the hostile run.json
    meta = json.loads((xss / "run.json").read_text())
    bad = '<img src=x onerror="window.__xss=1">'
    meta.update(
        task=bad, driver=bad, model=bad, status=bad, total_steps=bad, steps=bad, error=bad, started=bad
    )
    (xss / "run.json").write_text(json.dumps(meta))
    # malformed run.json files: not JSON, JSON of the wrong shape
    (runs / "20990101-000002-broken").mkdir()
    (runs / "20990101-000002-broken" / "run.json").write_text("{not json")
    (runs / "20990101-000003-list").mkdir()
    (runs / "20990101-000003-list" / "run.json").write_text("[1, 2, 3]")
    port = free_port()
    server = Server(
        create_app(runs, tasks=tasks, model="openai:http://127.0.0.1:9/v1", refresh_interval=0), port
    )
    yield {"url": server.url, "port": port, "runs": runs, "ids": ids, "outside": outside, "xss": xss.name}
    server.stop()


def get(h, path: str, **kw):  # type: ignore[no-untyped-def]
    return httpx.get(h["url"] + path, timeout=30, **kw)


def post(h, path: str, **kw):  # type: ignore[no-untyped-def]
    return httpx.post(h["url"] + path, timeout=30, **kw)


def test_screenshot_only_opens_http_pages(hostile):
    for url in (
        "file:///etc/passwd",
        "FILE:///etc/hostname",
        "chrome://version",
        "javascript:alert(1)",
        "data:text/html,x",
    ):
        r = post(hostile, "/api/screenshot", json={"url": url})
        assert r.status_code == 400 and "only http(s) pages" in r.json()["detail"]
        assert not r.content.startswith(b"\x89PNG")


def test_links_in_run_folders_are_neither_served_nor_written_through(hostile):
    good = hostile["ids"][0]
    assert get(hostile, f"/runs/{good}/frames/leak.png").status_code == 404
    assert get(hostile, "/runs/20990101-000000-linkrun/run.json").status_code == 404
    assert get(hostile, "/api/runs/20990101-000000-linkrun").status_code == 404
    listed = {r["id"] for r in get(hostile, "/api/runs?limit=1000").json()["runs"]}
    assert "20990101-000000-linkrun" not in listed
    r = get(hostile, f"/runs/{hostile['ids'][2]}/")
    assert r.status_code == 404
    assert not (hostile["outside"] / "written-through-link.html").exists()
    assert "secret" not in get(hostile, f"/runs/{good}/frames/leak.png").text


def test_one_bad_run_json_is_skipped_not_a_500_for_the_list(hostile):
    r = get(hostile, "/api/runs?limit=1000")
    assert r.status_code == 200
    ids = {x["id"] for x in r.json()["runs"]}
    assert set(hostile["ids"]) <= ids and hostile["xss"] in ids
    assert "20990101-000002-broken" not in ids and "20990101-000003-list" not in ids
    assert r.json()["index"]["skipped"] >= 0
    assert get(hostile, "/api/runs/20990101-000002-broken").status_code == 422


@pytest.mark.browser
def test_hostile_run_fields_render_as_text_and_run_no_script(hostile, browser):
    page = browser.page
    page.goto(hostile["url"] + "/")
    page.wait_for_selector("body[data-loaded='1']")
    row = page.locator(f"#runs tbody tr[data-id='{hostile['xss']}']")
    assert row.count() == 1
    assert '<img src=x onerror="window.__xss=1">' in row.inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#runs img").count() == 0
    page.goto(hostile["url"] + f"/runs/{hostile['xss']}/")  # the run's own report, rendered from run.json
    assert page.evaluate("window.__xss") is None
    assert '<img src=x onerror="window.__xss=1">' in page.inner_text("body")


def test_other_host_names_are_refused(hostile):
    r = get(hostile, "/api/runs", headers={"Host": f"rebound.example:{hostile['port']}"})
    assert r.status_code == 421
    assert get(hostile, "/api/runs", headers={"Host": f"localhost:{hostile['port']}"}).status_code == 200


def test_state_changes_from_another_origin_are_refused(hostile):
    other = {"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}
    r = post(hostile, "/api/jobs", content=json.dumps({"task_file": "demo.yaml"}), headers=other)
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = post(hostile, "/api/jobs", json={"task_file": "demo.yaml"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert get(hostile, "/api/jobs").json()["jobs"] == []  # nothing was started
    same = {"Origin": hostile["url"]}
    assert post(hostile, "/api/jobs/nope/stop", headers=same).status_code == 404  # reached the route


def test_a_symlinked_task_file_is_not_offered_and_the_rest_still_are(hostile):
    tasks = get(hostile, "/api/tasks").json()["tasks"]
    assert tasks == ["demo.yaml"]
    r = post(hostile, "/api/jobs", json={"task_file": "linked.yaml"})
    assert r.status_code == 400


def test_only_the_consoles_models_can_be_loaded(hostile):
    r = post(hostile, "/api/jobs", json={"task_file": "demo.yaml", "model": "openai:http://evil.test/v1"})
    assert r.status_code == 403 and "neither the console's" in r.json()["detail"]
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="PNG")
    r = post(
        hostile,
        "/api/playground",
        files={"image": ("s.png", buf.getvalue(), "image/png")},
        data={"instruction": "x", "model": "/some/other/checkpoint"},
    )
    assert r.status_code == 403


def _png_header_only(width: int, height: int) -> bytes:
    """A small PNG that claims a huge size (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_a_picture_of_too_many_pixels_is_refused_before_decoding(hostile):
    r = post(
        hostile,
        "/api/playground",
        files={"image": ("bomb.png", _png_header_only(20_000, 20_000), "image/png")},
        data={"instruction": "x"},
    )
    assert r.status_code == 413 and "400000000 pixels" in r.json()["detail"]
    r = post(
        hostile,
        "/api/playground",
        files={"image": ("big.png", _png_header_only(10_000, 10_000), "image/png")},
        data={"instruction": "x"},
    )
    assert (
        r.status_code == 413
        and "10000x10000 (100 megapixels); pictures are limited to 40" in r.json()["detail"]
    )


def test_a_non_ascii_token_is_a_401_not_a_500(tmp_path):
    from pixelpilot.tasks.console.app import create_app

    server = Server(create_app(tmp_path / "r", token="s3cret"), free_port())
    try:
        r = httpx.get(server.url + "/api/runs", headers=[(b"Authorization", "Bearer ünïcødé".encode())])
        assert r.status_code == 401
    finally:
        server.stop()
    assert os.listdir(tmp_path / "r") == [".pixelpilot"]
