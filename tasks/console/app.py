"""``pixelpilot ui``: the web console — runs table, live runs, playground — and its JSON API.

Pages are server-rendered shells that call the API; the API is documented by its OpenAPI schema at
``/openapi.json``. Nothing outside the runs folder is read or written on behalf of a request, except
task files under the tasks folder (read by the run that is launched) and uploads (held in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import secrets
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from pixelpilot.agent.errors import ConfigError, ModelError
from pixelpilot.tasks.console.guard import allowed_hosts, host_of, inside, origin_allowed, task_models
from pixelpilot.tasks.console.index import SORTABLE, RunIndex
from pixelpilot.tasks.console.jobs import JobManager, step_summary
from pixelpilot.tasks.console.playground import MODES, Playground
from pixelpilot.tools.errors import PixelPilotError
from pixelpilot.tools.images import PictureError, open_picture

__all__ = ["MAX_UPLOAD", "create_app"]

log = logging.getLogger(__name__)

MAX_UPLOAD = 16 * 1024 * 1024
"""Largest screenshot the playground accepts (bytes)."""
MAX_PIXELS = 40_000_000
"""Largest screenshot the playground decodes (pixels): 8K is 33 megapixels."""


class LaunchRequest(BaseModel):
    task_file: str = Field(description="a task file under the console's tasks folder (relative path)")
    driver: Literal["browser", "desktop", "android"] | None = Field(default=None, description="override")
    model: str | None = Field(default=None, description="override the task file's model")
    headless: bool = True


class ConfirmRequest(BaseModel):
    n: int = Field(description="the question's number (from the job's `question` or its confirm event)")
    allow: bool = Field(
        description="true performs the action; false refuses it (the step fails with the rule)"
    )


class ScreenshotRequest(BaseModel):
    driver: Literal["browser", "desktop"] = "browser"
    url: str | None = Field(default=None, description="browser: the page to open first")


def create_app(
    runs: Path,
    *,
    tasks: Path | None = None,
    model: str | None = None,
    token: str | None = None,
    host: str = "127.0.0.1",
    refresh_interval: float = 0.5,
) -> FastAPI:
    """The console's app. ``host``: what it listens on — requests must name it or a loopback name."""
    runs = runs.resolve()
    tasks = (tasks or Path.cwd()).resolve()
    hosts = allowed_hosts(host)
    index = RunIndex(runs)
    index.refresh()
    jobs = JobManager(runs)
    playground = Playground(model)
    templates = Environment(
        loader=FileSystemLoader(str(resources.files("pixelpilot.tasks.console").joinpath("templates"))),
        autoescape=select_autoescape(["html"]),
    )
    last = {"refresh": time.monotonic()}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        jobs.close()
        index.close()

    app = FastAPI(
        lifespan=lifespan,
        title="pixelpilot console",
        version="1",
        description="Runs, live task runs and the model playground of pixelpilot.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.index, app.state.jobs, app.state.runs = index, jobs, runs

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug of ours: a short JSON answer, the traceback in the console's log (never to the client)."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    def fresh_index() -> RunIndex:
        if time.monotonic() - last["refresh"] >= refresh_interval:
            index.refresh()
            last["refresh"] = time.monotonic()
        return index

    @app.middleware("http")
    async def need_token(request: Request, call_next: Any) -> Response:
        if token is None:
            return await call_next(request)
        given = (
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            or request.cookies.get("pixelpilot_token")
            or request.query_params.get("token")
        )
        if not given or not secrets.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
            return JSONResponse(
                {
                    "detail": "this console needs its token: Authorization: Bearer <token>, or ?token=<token> once"
                },
                status_code=401,
            )
        response: Response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie("pixelpilot_token", token, httponly=True, samesite="strict")
        return response

    @app.middleware("http")
    async def same_site_only(request: Request, call_next: Any) -> Response:
        """Runs before the token check (added after it): a request for another host name (DNS
        rebinding) or a state change from another origin (a page elsewhere posting here) is refused."""
        if host_of(request.headers.get("host")) not in hosts:
            return JSONResponse(
                {"detail": "unknown host: this console answers to " + ", ".join(sorted(hosts))}, 421
            )
        if not origin_allowed(
            request.method,
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
            request.headers.get("host"),
        ):
            return JSONResponse({"detail": "cross-origin requests cannot change anything here"}, 403)
        return await call_next(request)

    def allowed_models() -> set[str]:
        """The console's model and the ones its task files name: a request cannot load any other."""
        return task_models(_task_files()) | ({model} if model else set())

    def check_model(spec: str | None) -> None:
        if spec is not None and spec not in allowed_models():
            raise HTTPException(
                403,
                f"model {spec!r} is neither the console's (--model) nor named by a task file under {tasks}",
            )

    def _task_files() -> list[Path]:
        from pixelpilot.tasks.batch import collect_tasks

        try:
            found = collect_tasks([tasks])
        except ConfigError:
            return []
        # collect_tasks resolves links: one that led out of the tasks folder is not offered
        return [
            p for p in found if p.is_relative_to(tasks) and inside(tasks, p.relative_to(tasks)) is not None
        ]

    # -- pages ---------------------------------------------------------------------------------------
    def page(name: str, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**ctx))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def runs_page() -> HTMLResponse:
        return page("runs.html", title="Runs", runs=str(runs))

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> HTMLResponse:
        return page("live.html", title="Live", tasks=str(tasks), model=model or "")

    @app.get("/playground", response_class=HTMLResponse, include_in_schema=False)
    def playground_page() -> HTMLResponse:
        return page("playground.html", title="Playground", model=model or "", modes=MODES)

    # -- runs ----------------------------------------------------------------------------------------
    def run_dir(run_id: str) -> Path:
        """A run folder directly under the runs folder: a real folder holding a real run.json, no link."""
        if "/" in run_id or "\\" in run_id or run_id.startswith(".") or not run_id:
            raise HTTPException(404, f"no run {run_id!r}")
        path = inside(runs, run_id, kind="dir")
        if path is None or inside(path, "run.json") is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return path

    @app.get("/api/runs", summary="List runs (filter, sort, page)")
    def list_runs(
        q: str | None = Query(None, description="text in the task, run id, model, driver or task file"),
        status: str | None = Query(None, description="passed, failed, error, interrupted, running, …"),
        sort: str = Query("started", description=f"one of {', '.join(SORTABLE)}"),
        order: Literal["asc", "desc"] = "desc",
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        ix = fresh_index()
        try:
            total, rows = ix.list(q=q, status=status, sort=sort, order=order, limit=limit, offset=offset)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"total": total, "runs": rows, "index": ix.last_refresh}

    @app.get("/api/runs/{run_id}", summary="One run: its run.json and its steps")
    def get_run(run_id: str) -> dict[str, Any]:
        path = run_dir(run_id)
        try:
            meta = json.loads((path / "run.json").read_text("utf-8"))
        except (OSError, ValueError):
            raise HTTPException(422, f"run {run_id!r} has an unreadable run.json") from None
        steps = []
        try:
            for line in (path / "steps.jsonl").read_text("utf-8").splitlines():
                if line.strip():
                    try:
                        steps.append(step_summary(json.loads(line), run_id))
                    except ValueError:
                        continue
        except OSError:
            pass
        return {"id": run_id, "meta": meta, "steps": steps, "report": f"/runs/{run_id}/"}

    @app.get("/runs/{run_id}/", include_in_schema=False)
    def report(run_id: str) -> Response:
        path = run_dir(run_id)
        report = path / "report.html"
        if os.path.lexists(report) and inside(path, "report.html") is None:
            raise HTTPException(404, f"run {run_id!r} has no report (report.html is not a plain file)")
        if not report.exists():  # a run still going (or killed): render what is there
            from pixelpilot.agent.report import write_report

            write_report(path)  # written whole, in a new file: never through a link
        return FileResponse(report, media_type="text/html")

    @app.get("/runs/{run_id}/{rel:path}", summary="A file of a run (frames, steps.jsonl, report)")
    def run_file(run_id: str, rel: str) -> Response:
        target = inside(run_dir(run_id), rel)
        if target is None:
            raise HTTPException(404, f"no file {rel!r} in run {run_id!r}")
        return FileResponse(target)

    # -- live ----------------------------------------------------------------------------------------
    @app.get("/api/tasks", summary="Task files the console can launch")
    def list_tasks() -> dict[str, Any]:
        found = [str(p.relative_to(tasks)) for p in _task_files()]
        return {"root": str(tasks), "tasks": found[:500]}

    @app.post("/api/jobs", status_code=201, summary="Start a task file; watch it at /api/jobs/{id}/events")
    def launch(req: LaunchRequest) -> dict[str, Any]:
        target = inside(tasks, req.task_file)
        if target is None:
            raise HTTPException(400, f"no task file {req.task_file!r} under {tasks}")
        check_model(req.model)
        job = jobs.launch(target, driver=req.driver, model=req.model, headless=req.headless)
        return job.describe()

    def job_of(job_id: str) -> Any:
        job = jobs.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @app.get("/api/jobs", summary="Runs started from the console")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [j.describe() for j in jobs.jobs.values()]}

    @app.get("/api/jobs/{job_id}", summary="One started run")
    def get_job(job_id: str) -> dict[str, Any]:
        return dict(job_of(job_id).describe())

    @app.post("/api/jobs/{job_id}/stop", summary="Stop a run cleanly (its log stays complete)")
    async def stop_job(job_id: str) -> dict[str, Any]:
        job = job_of(job_id)
        await asyncio.to_thread(jobs.stop, job)
        return dict(job.describe())

    @app.post(
        "/api/jobs/{job_id}/confirm",
        summary="Answer the run's question: may it perform the action its policy asks to confirm?",
    )
    def confirm_job(job_id: str, req: ConfirmRequest) -> dict[str, Any]:
        job = job_of(job_id)
        if not job.answer(req.n, req.allow):
            raise HTTPException(409, f"job {job_id!r} is not waiting on question {req.n}")
        return {"n": req.n, "allow": req.allow}

    @app.get(
        "/api/jobs/{job_id}/events",
        summary="Server-sent events: start, each step (frame URL, raw reply), end",
        response_class=StreamingResponse,
    )
    async def job_events(job_id: str) -> StreamingResponse:
        job = job_of(job_id)

        async def stream() -> Any:
            it = jobs.events(job)
            while True:
                event = await asyncio.to_thread(next, it, None)
                if event is None:
                    return
                yield f"event: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    # -- playground ----------------------------------------------------------------------------------
    @app.post("/api/playground", summary="One model call on a screenshot: locate, act or ask")
    async def run_playground(
        image: Annotated[UploadFile, File(description="a PNG or JPEG screenshot")],
        instruction: Annotated[str, Form(min_length=1)],
        mode: Annotated[Literal["locate", "act", "ask"], Form()] = "locate",
        model_spec: Annotated[str | None, Form(alias="model")] = None,
    ) -> dict[str, Any]:
        data = await image.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"the screenshot is larger than {MAX_UPLOAD // 2**20} MiB")
        try:
            picture = open_picture(data, what="the screenshot", max_pixels=MAX_PIXELS)
        except PictureError as exc:
            if exc.too_large:
                raise HTTPException(413, str(exc)) from None
            raise HTTPException(415, "not a picture: upload a PNG or JPEG screenshot") from None
        check_model(model_spec)
        try:
            return await asyncio.to_thread(playground.run, picture, instruction, mode, model_spec)
        except ModelError as exc:
            raise HTTPException(503, str(exc)) from None
        except PixelPilotError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.post(
        "/api/screenshot",
        summary="Take a screenshot with a fresh driver (PNG)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def screenshot(req: ScreenshotRequest) -> Response:
        if req.url is not None and urlsplit(req.url).scheme.lower() not in ("http", "https"):
            raise HTTPException(400, f"only http(s) pages can be shown here, not {req.url[:100]!r}")

        def take() -> bytes:
            from pixelpilot.drivers import BrowserDriver, DesktopDriver

            if req.driver == "browser":
                with BrowserDriver.launch() as d:
                    if req.url:
                        d.goto(req.url)
                        d.settle()
                    img = d.observe(tree=False).image
            else:
                with DesktopDriver.start(headless=True) as d:
                    img = d.observe(tree=False).image
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return buf.getvalue()

        try:
            return Response(await asyncio.to_thread(take), media_type="image/png")
        except PixelPilotError as exc:
            raise HTTPException(503, str(exc)) from None

    return app
