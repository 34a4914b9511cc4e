"""Task file → TaskResult: build the driver, run the steps through an Agent, record the run."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlparse

from pixelpilot.agent.errors import ConfigError, DriverUnavailable, RunLogError, StepFailed
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.policy import Policy
from pixelpilot.agent.runlog import RunWriter, slugify
from pixelpilot.agent.secrets import SecretStore
from pixelpilot.agent.secrets import known as known_secret
from pixelpilot.agent.session import Agent, AgentSettings
from pixelpilot.agent.step import outcome_of
from pixelpilot.drivers.base import Driver
from pixelpilot.tasks import spec as S

if TYPE_CHECKING:
    from pixelpilot.tasks.keeper import DriverKeeper

__all__ = ["ExitCode", "RunOptions", "TaskResult", "make_driver", "resolve_url", "run_task"]

log = logging.getLogger(__name__)


class ExitCode:
    PASSED = 0
    FAILED = 1
    USAGE = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130


@dataclass(frozen=True)
class RunOptions:
    """What the CLI (or a caller) decides for a run, over the task file's own settings."""

    output: str | os.PathLike[str] = "runs"
    headed: bool | None = None
    slow_mo: float | None = None
    model: str | None = None
    """Overrides the task file's ``model:``."""
    cache: bool | None = None
    """Overrides the task file's ``cache:``."""
    driver: str | None = None
    """browser, desktop or android: overrides the task file's ``driver:`` kind (with that driver's defaults)."""
    model_name: str | None = None
    timeout: float | None = None
    """Overrides the task file's ``settings.run_timeout`` (seconds)."""
    step_timeout: float | None = None
    """Overrides the task file's ``settings.step_timeout`` (seconds)."""
    model_timeout: float | None = None
    """Seconds one model-server request may take in all (the openai backend)."""
    secrets: str | os.PathLike[str] | None = None
    """A dotenv file of the task's secrets (the environment is read too)."""
    yes: bool = False
    """Allow every action the task's policy asks a person to confirm."""
    browser_endpoint: str | None = None
    """A browser that runs elsewhere, over the task file's own: a Playwright browser server (``ws://…``)
    or a DevTools endpoint (``http://host:9222``, ``ws://…/devtools/browser/…``); see :func:`endpoint_kind`."""
    ask: Callable[[str], bool] | None = None
    """How a person is asked to confirm an action (the terminal when None; the console's Live page)."""


DEFAULT_MODEL = "qwen3-vl-4b"
MODEL_STEPS = (S.GoalStep, S.ActStep, S.AskStep, S.CheckStep)


@dataclass
class TaskResult:
    task: str
    status: str
    """passed, failed, error, interrupted."""
    run_dir: Path | None
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """Answers kept with ``ask: {save_as: name}``."""

    @property
    def exit_code(self) -> int:
        return {
            "passed": ExitCode.PASSED,
            "failed": ExitCode.FAILED,
            "error": ExitCode.FAILED,
            "interrupted": ExitCode.INTERRUPTED,
            "environment": ExitCode.ENVIRONMENT,
        }.get(self.status, ExitCode.FAILED)


def resolve_url(value: str, base: Path, base_url: str | None = None) -> str:
    """A URL as given; with a ``base_url``, a relative one joined to it; else a path relative to the
    task file's folder as a file:// URL."""
    scheme = urlparse(value).scheme
    if scheme and len(scheme) > 1:
        return value
    if base_url:
        return urljoin(base_url, value)
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    return path.resolve().as_uri()


def endpoint_kind(url: str) -> dict[str, str]:
    """``--browser-endpoint``: ``{"cdp": url}`` for a DevTools endpoint (http(s)://, or a ws:// path under
    /devtools/), ``{"connect": url}`` for a Playwright browser server (other ws:// addresses)."""
    scheme = urlparse(url).scheme
    if scheme in ("http", "https") or (scheme in ("ws", "wss") and "/devtools/" in urlparse(url).path):
        return {"cdp": url}
    if scheme in ("ws", "wss"):
        return {"connect": url}
    raise ConfigError(
        f"browser endpoint {url!r}: expected ws://host:port/... (a Playwright browser server) "
        "or http://host:port (a Chromium's DevTools endpoint)"
    )


def make_driver(task: S.TaskFile, opts: RunOptions, base: Path, *, launch: bool = True) -> Driver:
    """The driver a task file asks for (options over the file's own), apps launched from ``base``
    (unless ``launch`` is false: :func:`launch_apps` then)."""
    kind = opts.driver or task.driver_kind
    if kind == "android":
        from pixelpilot.drivers.android import AndroidDriver
        from pixelpilot.tools.actions import OpenApp

        a = task.android
        phone = (
            _connect_any(a)
            if isinstance(a.serial, list)
            else AndroidDriver.connect(a.serial, host=a.host, port=a.port, scale=a.scale)
        )
        if a.open_app:
            phone.perform(OpenApp(app=a.open_app))
        return phone
    if kind == "desktop":
        from pixelpilot.drivers.desktop import DesktopDriver

        d = task.desktop
        headless = (
            not opts.headed if opts.headed is not None else (d.headless if d.headless is not None else True)
        )
        driver = DesktopDriver.start(
            headless=headless, size=d.size, depth=d.depth, display=d.display, monitor=d.monitor, scale=d.scale
        )
        if d.launch and launch:
            try:
                driver.launch(d.launch, cwd=str(base))
            except BaseException:
                driver.close()
                raise
        return driver
    from pixelpilot.drivers.browser import BrowserDriver

    return BrowserDriver.launch(**browser_launch(task, opts), **browser_context(task, base))


def _connect_any(a: S.AndroidOptions) -> Driver:
    """One of the devices a task file lists: $ANDROID_SERIAL when it is one (a batch's device pool
    gives each worker its own), else the first that is online."""
    from pixelpilot.drivers.android import AndroidDriver
    from pixelpilot.tools.errors import DriverError

    serials = list(a.serial or [])
    pooled = os.environ.get("ANDROID_SERIAL")
    if pooled in serials:
        serials = [pooled]
    problems = []
    for serial in serials:
        try:
            return AndroidDriver.connect(serial, host=a.host, port=a.port, scale=a.scale)
        except DriverError as exc:
            problems.append(str(exc))
    raise DriverError("none of the task's devices can be used: " + "; ".join(problems))


def browser_launch(task: S.TaskFile, opts: RunOptions) -> dict[str, Any]:
    """What starts (or reaches) the task's browser: kept across tasks by a long-lived worker."""
    b = task.browser
    headless = (
        not opts.headed if opts.headed is not None else (b.headless if b.headless is not None else True)
    )
    endpoint = opts.browser_endpoint or os.environ.get("PIXELPILOT_BROWSER_ENDPOINT")
    remote = endpoint_kind(endpoint) if endpoint else {"connect": b.connect, "cdp": b.cdp}
    return {
        **remote,
        "headless": headless,
        "slow_mo": opts.slow_mo if opts.slow_mo is not None else b.slow_mo,
    }


def browser_context(task: S.TaskFile, base: Path) -> dict[str, Any]:
    """What each task gets afresh: its viewport, base URL and saved storage."""
    b = task.browser
    state = None
    if b.storage_state:
        state = Path(b.storage_state) if Path(b.storage_state).is_absolute() else base / b.storage_state
        if not state.is_file():
            raise ConfigError(f"browser.storage_state: no such file {state}", file=str(base))
    return {
        "viewport": b.viewport,
        "device_scale_factor": b.device_scale_factor,
        "base_url": b.base_url,
        "storage_state": state,
    }


def _model_options(task: S.TaskFile, opts: RunOptions, spec: str) -> dict[str, Any]:
    """Backend options from the task file's ``model:`` mapping and the command line."""
    extra: dict[str, Any] = {}
    if isinstance(task.model, S.LocalModelSpec) and not opts.model:
        extra = task.model.model_dump(exclude={"local"}, exclude_none=True)
    if isinstance(task.model, S.OpenAIModelSpec) and not opts.model:
        extra = task.model.model_dump(include={"timeout", "retries", "profile"}, exclude_none=True)
    if opts.model_timeout is not None and spec.startswith("openai:"):
        extra["timeout"] = opts.model_timeout
    return extra


def _model_spec(task: S.TaskFile, opts: RunOptions) -> tuple[str, str | None] | None:
    """Which model the task uses: the CLI's, the task file's, or the default when model steps need one."""
    if opts.model:
        return opts.model, opts.model_name
    if isinstance(task.model, S.OpenAIModelSpec):
        urls = task.model.openai
        return "openai:" + (urls if isinstance(urls, str) else ",".join(urls)), task.model.name
    if isinstance(task.model, S.LocalModelSpec):
        return task.model.local, opts.model_name
    if task.model:
        return task.model, opts.model_name
    if any(isinstance(s, MODEL_STEPS) for s in task.steps):
        return DEFAULT_MODEL, None
    return None


def _load_secrets(task: S.TaskFile, task_path: Path, opts: RunOptions) -> None:
    """Read every secret the task names (``type: {secret: NAME}``, ``${secret:NAME}``) before anything
    runs: a missing one is a bad task, and from now on each value is scrubbed from what is written."""
    names = {s.args.secret for s in task.steps if isinstance(s, S.TypeStep) and s.args.secret}
    names |= set(_SECRET_REF.findall(task_path.read_text(encoding="utf-8", errors="replace")))
    if not names:
        return
    store = SecretStore(opts.secrets)
    for name in sorted(names):
        store.get(name, where=str(task_path))


_VALUE = re.compile(r"\$\{(?:(env):)?([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_REF = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(step: Any, values: dict[str, Any], index: int) -> Any:
    """The step with ``${name}`` replaced by the value saved under that name (``read:`` or ``ask:``
    with ``save_as``) — in every text of the step. A name nothing saved is an error that says so."""
    raw = step.model_dump(mode="json", by_alias=True, exclude_unset=True)
    found = False

    def fill(v: Any) -> Any:
        nonlocal found
        if isinstance(v, str) and "${" in v:
            found = True

            def one(m: re.Match[str]) -> str:
                if m[1] == "env":
                    if m[2] not in os.environ:
                        raise ConfigError(f"steps[{index}]: ${{env:{m[2]}}}: no environment variable {m[2]}")
                    return os.environ[m[2]]
                if m[2] not in values:
                    known = ", ".join(sorted(values)) or "none yet"
                    raise ConfigError(
                        f"steps[{index}]: no value named {m[2]!r} (read: or ask: with save_as keep one; "
                        f"kept so far: {known})"
                    )
                return str(values[m[2]])

            return _VALUE.sub(one, v)
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    filled = fill(raw)
    return type(step).model_validate(filled) if found else step


def _run_step(
    agent: Agent, step: Any, base: Path, values: dict[str, Any], base_url: str | None = None
) -> None:
    match step:
        case S.OpenStep():
            agent.open(resolve_url(step.open, base, base_url))
        case S.ClickStep():
            if step.image is not None:
                agent.click(image=base / step.image.image, nth=step.image.nth)
            else:
                agent.click(step.target)
        case S.TypeStep():
            t = step.args
            if t.secret is not None:  # registered with its value before the run began
                agent.type(secret=known_secret(t.secret), into=t.into, nth=t.nth, clear=t.clear)
            else:
                agent.type(t.text, into=t.into, nth=t.nth, clear=t.clear)
        case S.KeyStep():
            agent.key(step.key)
        case S.ScrollStep():
            sc = step.args
            agent.scroll(sc.direction, sc.amount, target=sc.target)
        case S.WaitForStep():
            w = step.args
            agent.wait_for(
                w.target if w.target is not None else w.text,
                url=w.url,
                response=w.response,
                download=w.download,
                state=w.state,
                timeout=w.timeout,
            )
        case S.SeeStep():
            agent.see(step.see)
        case S.SelectStep():
            se = step.args
            agent.select(se.option, field=se.field)
        case S.GoalStep():
            g = step.args
            res = agent.run(
                g.goal, max_steps=g.max_steps, max_seconds=g.max_seconds, max_model_calls=g.max_model_calls
            )
            if res.answer is not None:
                values.setdefault("answer", res.answer)
            if not res.ok:
                raise StepFailed(f"goal {g.goal!r} ended {res.status}: {res.reason}")
        case S.ActStep():
            agent.act(step.act)
        case S.AskStep():
            q = step.args
            answer = agent.ask(q.question)
            if q.save_as:
                values[q.save_as] = answer
        case S.CheckStep():
            agent.check(step.check, strict=True)
        case S.HoverStep():
            agent.hover(step.hover)
        case S.DoubleClickStep():
            agent.double_click(step.double_click)
        case S.RightClickStep():
            agent.right_click(step.right_click)
        case S.ReadStep():
            r = step.read
            got: str | int | None = (
                agent.text(r.target)
                if r.what == "text"
                else agent.value(r.target)
                if r.what == "value"
                else agent.count(r.target)
            )
            values[r.save_as] = got
        case S.ExpectStep():
            e = step.expect
            agent.expect(
                e.target,
                text=e.to_have_text,
                value=e.to_have_value,
                count=e.to_have_count,
                state=e.to_be,
                timeout=e.timeout,
            )
        case S.CheckBoxStep():
            agent.set_checked(step.check_box, True)
        case S.UncheckBoxStep():
            agent.set_checked(step.uncheck_box, False)
        case S.ScrollIntoViewStep():
            agent.scroll_into_view(step.scroll_into_view)
        case S.DragStep():
            agent.drag(step.drag.source, step.drag.to, nth=step.drag.nth)
        case S.UploadStep():
            u = step.upload
            agent.upload(Path(u.file) if Path(u.file).is_absolute() else base / u.file, into=u.into)
        case S.SwitchTabStep():
            agent.switch_tab(step.switch_tab)
        case S.CloseTabStep():
            agent.close_tab()
        case S.DialogStep():
            agent.on_dialog(S.dialog_policy(step.dialog), once=True)
        case _:  # pragma: no cover - the schema admits nothing else
            raise ConfigError(f"unsupported step {step!r}")


def run_task(
    path: str | os.PathLike[str],
    options: RunOptions | None = None,
    *,
    on_step: Callable[[StepRecord], None] | None = None,
    on_start: Callable[[S.TaskFile, Path], None] | None = None,
    driver_factory: Callable[[S.TaskFile, RunOptions], Driver] | None = None,
    model_factory: Callable[[str, str | None], Any] | None = None,
    keeper: DriverKeeper | None = None,
) -> TaskResult:
    """Run one task file. Raises :class:`ConfigError` for a bad file (nothing runs),
    :class:`DriverUnavailable` when the environment lacks what the driver needs, and
    :class:`ModelError` when the model cannot be loaded."""
    opts = options or RunOptions()
    task_path = Path(path)
    task = S.load_task(task_path)
    _load_secrets(task, task_path, opts)
    name = task.name or task_path.stem.removesuffix(".task")
    spec = _model_spec(task, opts)
    model = None
    if spec is not None:
        from pixelpilot.agent.models import load_model

        extra = _model_options(task, opts, spec[0])
        if spec[0].startswith("openai:") and "," in spec[0]:
            extra["session"] = name  # replicas: a task's runs go to the same one (its prefix cache)
        model = model_factory(*spec) if model_factory else load_model(spec[0], model_name=spec[1], **extra)
    own = driver_factory is None
    if keeper is not None:  # a long-lived worker's: kept after the run
        driver = keeper.acquire(task, opts, task_path.parent)
    elif driver_factory is not None:
        driver = driver_factory(task, opts)
    else:
        driver = make_driver(task, opts, task_path.parent, launch=False)

    def _close(driver: Driver) -> None:
        if keeper is None:
            _close_driver(driver)

    try:
        run = RunWriter(
            opts.output,
            slugify(name),
            meta={
                "task": name,
                "task_file": str(task_path),
                "driver": driver.name,
                **({"browser_endpoint": ep} if (ep := getattr(driver, "endpoint", None)) else {}),
                **({"device": serial} if (serial := getattr(driver, "serial", None)) else {}),
                "model": getattr(model, "name", None),
                "total_steps": len(task.steps),
                # the task as written (placeholders, not values): `pixelpilot export` writes from it
                "task_spec": task.model_dump(
                    mode="json", by_alias=True, exclude_defaults=True, exclude_none=True
                ),
                # a long-lived worker's: which process, and how many tasks its driver has served
                **({"worker": {"pid": os.getpid(), "driver_task": keeper.served}} if keeper else {}),
            },
        )
    except BaseException:
        _close(driver)
        raise
    if on_start is not None:
        on_start(task, run.path)
    settings = AgentSettings(
        wait_timeout=task.settings.wait_timeout,
        settle_timeout=task.settings.settle_timeout,
        nav_timeout=task.settings.nav_timeout,
        step_timeout=opts.step_timeout or task.settings.step_timeout,
    )
    cache = None
    if opts.cache if opts.cache is not None else task.cache:
        from pixelpilot.agent.cache import StepCache, last_passing_run

        previous = last_passing_run(opts.output, name)
        if previous is not None:
            cache = StepCache(previous)
            run.update(cache_from=str(previous))
    agent = Agent(
        driver,
        model=model,
        cache=cache,
        settings=settings,
        recorder=run,
        task=name,
        on_step=on_step,
        mask=task.mask,
        mask_model=task.mask_model,
        policy=Policy(
            allow_domains=task.policy.allow_domains,
            block_domains=task.policy.block_domains,
            allow_apps=task.policy.allow_apps,
            allow_upload_from=[str(task_path.parent / p) for p in task.policy.allow_upload_from]
            if task.policy.allow_upload_from is not None
            else None,
            confirm=task.policy.confirm,
            forbid=task.policy.forbid,
            yes=opts.yes,
            **({"ask": opts.ask} if opts.ask is not None else {}),
        ),
        upload_base=task_path.parent,
    )
    status, error = "passed", None
    values: dict[str, Any] = {}
    agent.limit_run(opts.timeout or task.timeout or task.settings.run_timeout)
    agent.on_dialog(S.dialog_policy(task.settings.dialog))
    try:
        # the application under test starts now that the run has a folder for its output (app.log)
        if own and launch_apps(driver, task, task_path.parent, run.path / "app.log"):
            run.update(app_log="app.log")
        for i, step in enumerate(task.steps):
            agent.pipeline.task_step = i
            _run_step(agent, substitute(step, values, i), task_path.parent, values, task.browser.base_url)
    except BaseException as exc:  # every way a run can end is recorded, then reported
        status, error, _ = outcome_of(exc)
        if isinstance(exc, DriverUnavailable | RunLogError) or not isinstance(
            exc, Exception | KeyboardInterrupt
        ):
            # the environment failed (exit 3), or the process is exiting: record what can be, then re-raise
            with contextlib.suppress(RunLogError):
                run.finish(status, error=error, values=values, model_calls=agent.model_calls)
            _close(driver)
            if keeper is not None:  # the environment failed: the next task starts a new driver
                keeper.close()
            raise
    try:
        failovers = getattr(model, "failovers", None)
        if failovers:  # replicas: the run moved from one that went down
            run.update(model_failovers=failovers)
        run.finish(status, error=error, values=values, model_calls=agent.model_calls)
    finally:
        _close(driver)
    status = run.meta["status"]  # never passed with a step that did not pass
    return TaskResult(name, status, run.path, agent.steps, run.meta.get("error"), values)


def launch_apps(driver: Driver, task: S.TaskFile, base: Path, log: Path) -> bool:
    """Start the task's application on its desktop driver, its output into ``log``; whether one started."""
    from pixelpilot.drivers.desktop import DesktopDriver

    if not isinstance(driver, DesktopDriver) or not task.desktop.launch:
        return False
    driver.launch(task.desktop.launch, cwd=str(base), log=log)
    return True


def _close_driver(driver: Driver) -> None:
    try:
        driver.close()
    except Exception:  # noqa: BLE001 - the browser may already be gone; the run is recorded
        log.debug("closing the driver failed", exc_info=True)
