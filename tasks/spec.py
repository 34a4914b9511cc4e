"""The YAML task file: schema (pydantic, ``extra="forbid"``), loading with file-and-line errors.

version: 1
name: log in
driver: browser                 # or {browser: {headless: false, viewport: [1280, 800]}}
steps:
  - open: demo_app/index.html   # a URL, or a path relative to this file
  - type: {text: alice, into: Username}
  - click: Sign in
  - wait_for: {text: "Welcome, alice", timeout: 5}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from pixelpilot.agent.errors import ConfigError
from pixelpilot.tasks.steps import (  # noqa: F401 - the step models are part of this module's surface
    _STEP_MODELS,
    STEP_VERBS,
    ActStep,
    AskArgs,
    AskStep,
    CheckBoxStep,
    CheckStep,
    ClickArgs,
    ClickStep,
    CloseTabStep,
    DialogChoice,
    DialogStep,
    DialogText,
    DoubleClickStep,
    DragArgs,
    DragStep,
    ExpectArgs,
    ExpectStep,
    GoalArgs,
    GoalStep,
    HoverStep,
    KeyStep,
    OpenStep,
    ReadArgs,
    ReadStep,
    RightClickStep,
    ScrollArgs,
    ScrollIntoViewStep,
    ScrollStep,
    SeeStep,
    SelectArgs,
    SelectStep,
    Step,
    SwitchTabStep,
    TargetValue,
    TypeArgs,
    TypeStep,
    UncheckBoxStep,
    UploadArgs,
    UploadStep,
    WaitArgs,
    WaitForStep,
    _Strict,
    _verb,
    dialog_policy,
)

__all__ = ["STEP_VERBS", "BrowserOptions", "Step", "TaskFile", "load_task", "task_schema"]


class BrowserOptions(_Strict):
    headless: bool | None = Field(default=None, description="default: headless unless --headed")
    base_url: str | None = Field(default=None, description="open: paths are relative to it")
    storage_state: str | None = Field(
        default=None, description="cookies and local storage saved before (path relative to the task file)"
    )
    viewport: tuple[int, int] = (1280, 800)
    device_scale_factor: float = Field(default=1.0, gt=0, le=4)
    slow_mo: float = Field(default=0, ge=0, description="milliseconds between driver operations")
    connect: str | None = Field(
        default=None, description="a Playwright browser server to use instead of a local Chromium (ws://...)"
    )
    cdp: str | None = Field(
        default=None,
        description="a Chromium's DevTools endpoint to use (http://host:9222 or ws://.../devtools/...)",
    )

    @model_validator(mode="after")
    def _one_endpoint(self) -> BrowserOptions:
        if self.connect and self.cdp:
            raise ValueError(
                "give connect (a Playwright browser server) or cdp (a DevTools endpoint), not both"
            )
        for name in ("connect", "cdp"):
            url = getattr(self, name)
            if url and not url.startswith(("ws://", "wss://", "http://", "https://")):
                raise ValueError(f"{name}: {url!r} is not a ws:// or http:// address")
        return self


class BrowserSpec(_Strict):
    browser: BrowserOptions = BrowserOptions()


class DesktopOptions(_Strict):
    headless: bool | None = Field(default=None, description="default: a private Xvfb unless --headed")
    size: tuple[int, int] = (1280, 800)
    depth: int = Field(default=24, ge=8, le=32)
    display: str | None = Field(default=None, description="drive this X display instead of a private Xvfb")
    monitor: int | tuple[int, int, int, int] = Field(
        default=1, description="which monitor to capture (1 = the first), or [left, top, width, height]"
    )
    scale: float = Field(default=1.0, gt=0, le=4, description="screenshot pixels per screen pixel")
    launch: list[str] | None = Field(
        default=None, description="the application under test: [command, args...]"
    )


class DesktopSpec(_Strict):
    desktop: DesktopOptions = DesktopOptions()


class AndroidOptions(_Strict):
    serial: str | list[str] | None = Field(
        default=None,
        description="default: $ANDROID_SERIAL, else the only device; a list: any of them ($ANDROID_SERIAL "
        "when it is one of them, as a batch's --devices pool sets it; else the first that is online)",
    )
    host: str | None = Field(
        default=None, description="adb server host (default $ANDROID_ADB_SERVER_HOST or 127.0.0.1)"
    )
    port: int | None = Field(
        default=None, description="adb server port (default $ANDROID_ADB_SERVER_PORT or 5037)"
    )
    scale: float = Field(default=1.0, gt=0, le=4, description="screenshot pixels per device pixel")
    open_app: str | None = Field(default=None, description="package to open before the first step")


class AndroidSpec(_Strict):
    android: AndroidOptions = AndroidOptions()


def _driver_kind(value: Any) -> str:
    """``driver: browser`` or ``driver: {browser: {...}}``: the mapping's one key picks the options
    (so a mistake inside them is reported there, not as three failed alternatives)."""
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key.title() if key in ("browser", "desktop", "android") else "Name"
    if isinstance(value, BrowserSpec | DesktopSpec | AndroidSpec):
        return type(value).__name__.removesuffix("Spec")
    return "Name"


DriverSpec = Annotated[
    Annotated[Literal["browser", "desktop", "android"], Tag("Name")]
    | Annotated[BrowserSpec, Tag("Browser")]
    | Annotated[DesktopSpec, Tag("Desktop")]
    | Annotated[AndroidSpec, Tag("Android")],
    Discriminator(_driver_kind),
]


class TaskSettings(_Strict):
    wait_timeout: float = Field(default=10.0, gt=0, description="default timeout of wait_for, seconds")
    settle_timeout: float = Field(default=3.0, gt=0)
    nav_timeout: float = Field(default=30.0, gt=0)
    step_timeout: float | None = Field(
        default=None, gt=0, description="seconds one step may take before it fails (default: no limit)"
    )
    run_timeout: float | None = Field(
        default=None, gt=0, description="seconds the whole run may take before it fails (default: no limit)"
    )
    dialog: DialogChoice = Field(
        default="dismiss", description="how alert/confirm/prompt dialogs are answered (each is recorded)"
    )


def _known_profile(v: str) -> str:
    from pixelpilot.agent.qwen.profile import PROFILES

    if v not in PROFILES:
        raise ValueError(f"unknown profile {v!r}; known: {', '.join(sorted(PROFILES))}")
    return v


ProfileName = Annotated[str, AfterValidator(_known_profile)]


class OpenAIModelSpec(_Strict):
    openai: str | list[str] = Field(
        description="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1, or a list of "
        "replicas of it (a run keeps to one; the next when it is down)"
    )
    name: str | None = Field(default=None, description="served model name (default: the only one)")
    timeout: float | None = Field(
        default=None, gt=0, le=3600, description="seconds one request may take in all (default 120)"
    )
    retries: int | None = Field(default=None, ge=0, le=10, description="tries after the first (default 2)")
    profile: ProfileName | None = Field(
        default=None,
        description="the model's prompt and parser conventions: qwen3-vl (default), gui-owl, mai-ui",
    )


class LocalModelSpec(_Strict):
    local: str = Field(description="qwen3-vl-2b|4b|8b[-thinking], a hub id or a local directory")
    engine: bool | None = Field(
        default=None,
        description="the fast engine (default: on with CUDA; false to debug with plain generate)",
    )
    constrain: bool = Field(default=True, description="tool calls follow the action grammar (needs xgrammar)")
    profile: ProfileName | None = Field(
        default=None,
        description="the model's prompt and parser conventions: qwen3-vl (default), gui-owl, mai-ui",
    )


def _model_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "LocalModelSpec" if "local" in value else "OpenAIModelSpec"
    return type(value).__name__


ModelSpec = Annotated[
    Annotated[OpenAIModelSpec, Tag("OpenAIModelSpec")] | Annotated[LocalModelSpec, Tag("LocalModelSpec")],
    Discriminator(_model_kind),
]


class PolicySpec(_Strict):
    """What actions may do (see :mod:`pixelpilot.agent.policy`)."""

    allow_domains: list[str] = Field(
        default_factory=list, description="hosts pages may load from (subdomains too)"
    )
    block_domains: list[str] = Field(default_factory=list, description="hosts never loaded")
    allow_apps: list[str] | None = Field(default=None, description="Android packages open_app may start")
    allow_upload_from: list[str] | None = Field(
        default=None, description="folders uploads may come from (default: the task file's folder)"
    )
    confirm: list[str] = Field(
        default_factory=list,
        description="patterns (regex) of targets a person must confirm: Delete|Pay|Buy|Send",
    )
    forbid: list[str] = Field(
        default_factory=list, description="actions never performed: key, drag, upload, …"
    )

    @field_validator("confirm")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        import re

        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"confirm: {p!r} is not a regular expression: {exc}") from None
        return v


class TaskFile(_Strict):
    """A pixelpilot task file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    driver: DriverSpec = "browser"
    model: str | ModelSpec | None = Field(
        default=None,
        description="qwen3-vl-2b|4b|8b[-thinking], a hub id, a local directory, openai:<base_url>, "
        "{openai: url, name: model}, or {local: name, engine: bool, constrain: bool}",
    )
    settings: TaskSettings = TaskSettings()
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="seconds the task may run (settings.run_timeout, said shortly); in a batch, a task "
        "still running 30 s past it has its worker killed",
    )
    cache: bool = Field(
        default=False,
        description="resolve steps from the last passing run, after checking the screen still matches",
    )
    mask: list[TargetValue] = Field(
        default_factory=list,
        description="regions filled in every stored frame wherever they show (a displayed key, a customer's data)",
    )
    mask_model: bool = Field(default=False, description="the model sees the mask: regions filled too")
    policy: PolicySpec = PolicySpec()
    steps: list[Step] = Field(min_length=1)

    @property
    def browser(self) -> BrowserOptions:
        return self.driver.browser if isinstance(self.driver, BrowserSpec) else BrowserOptions()

    @property
    def desktop(self) -> DesktopOptions:
        return self.driver.desktop if isinstance(self.driver, DesktopSpec) else DesktopOptions()

    @property
    def android(self) -> AndroidOptions:
        return self.driver.android if isinstance(self.driver, AndroidSpec) else AndroidOptions()

    @property
    def driver_kind(self) -> str:
        if isinstance(self.driver, str):
            return self.driver
        return {DesktopSpec: "desktop", AndroidSpec: "android"}.get(type(self.driver), "browser")


def task_schema() -> dict[str, Any]:
    schema = TaskFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pixelpilot task file"
    return schema


# -- loading ----------------------------------------------------------------------------------------
def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[(*path, key, "__key__")] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int], *, key: bool) -> int | None:
    """Line of the deepest YAML node on pydantic's ``loc`` (tags and union branches skipped)."""
    path: tuple[Any, ...] = ()
    for part in loc:
        if (*path, part) in lines:
            path = (*path, part)
    if key and (*path, "__key__") in lines:
        return lines[(*path, "__key__")]
    return lines.get(path)


def _clean_loc(loc: tuple[Any, ...]) -> list[Any]:
    """pydantic's loc without union branch names and repeated tags: ``steps[1].click.nth``."""
    out: list[Any] = []
    for part in loc:
        if isinstance(part, str) and (
            part[:1].isupper() or part == "str" or "[" in part or part == "__key__"
        ):
            continue
        if out and part == out[-1]:
            continue
        out.append(part)
    return out


def _path(parts: list[Any]) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text


def _models(*models: type[BaseModel]) -> tuple[type[BaseModel], ...]:
    return models


_KNOWN_KEYS = sorted(
    {
        f
        for m in _models(TaskFile, TaskSettings, BrowserOptions, DesktopOptions, *_STEP_MODELS.values())
        for f in m.model_fields
    }
    | {
        f
        for m in (
            ClickArgs,
            TypeArgs,
            ScrollArgs,
            WaitArgs,
            SelectArgs,
            GoalArgs,
            AskArgs,
            DialogText,
            OpenAIModelSpec,
            LocalModelSpec,
            PolicySpec,
            ReadArgs,
            ExpectArgs,
        )
        for f in m.model_fields
    }
)


def _describe(err: Any) -> str:
    parts = _clean_loc(tuple(err["loc"]))
    if err["type"] == "extra_forbidden":
        import difflib

        key = str(parts[-1])
        hint = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        where = f" in {_path(parts[:-1])}" if len(parts) > 1 else ""
        return f"unknown key {key!r}{where}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    where = _path(parts)
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("target: ")
    return f"{where}: {msg}" if where else msg


def _useful(errors: list[Any]) -> list[Any]:
    """Drop a union's "expected a string" when the input was a mapping that failed inside."""
    branch = [
        e
        for e in errors
        if not (isinstance(e.get("input"), dict) and e["type"] in ("string_type", "literal_error"))
    ]
    return branch or errors


MAX_TASK_BYTES = 1 << 20
"""The largest task file read (a long task is a few kilobytes)."""
MAX_DEPTH = 64
"""How deeply a task file may nest lists and mappings."""
MAX_NODES = 100_000
"""How many values a task file may hold once its aliases (``*name``) are expanded."""


class _Refused(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _TaskLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with the limits untrusted input needs: no duplicate keys (the second
    would silently replace the first), a nesting limit, and no alias bombs."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _Refused(f"duplicate key {key!r} (first on line {seen[key]})", line)
            seen[key] = line
        return super().construct_mapping(node, deep)


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias expanded (a shared node counts each time)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded(child, memo)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded(k, memo) + _expanded(v, memo)
            if total > MAX_NODES:
                break
    memo[id(node)] = total
    return total


def _parse(text: str) -> tuple[Any, yaml.Node | None]:
    """The task file's data and its node tree (for line numbers), composed once."""
    loader = _TaskLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded(node, {}) > MAX_NODES:
            raise _Refused(
                f"expands to more than {MAX_NODES:,} values through its aliases (*name); write them out", 1
            )
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def load_task(path: str | os.PathLike[str]) -> TaskFile:
    """Read and validate a task file; raises :class:`ConfigError` naming the file, line and key."""
    p = Path(path)
    name = str(path)
    try:
        size = p.stat().st_size
        if size > MAX_TASK_BYTES:
            raise ConfigError(
                f"the task file is {size / 2**20:.1f} MiB; task files are limited to {MAX_TASK_BYTES >> 20} MiB",
                file=name,
            )
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("no such task file", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a task file", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the task file: {exc}", file=name) from None
    try:
        data, node = _parse(text)
    except _Refused as exc:
        raise ConfigError(str(exc), file=name, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark, opened = exc.problem_mark, exc.context_mark
        problem = exc.problem or str(exc)
        if opened is not None and exc.context and mark is not None and opened.line != mark.line:
            # an unclosed bracket or quote: say where it opened, not where the file ended
            raise ConfigError(
                f"not valid YAML: {problem} {exc.context} opened here (the error shows on line {mark.line + 1})",
                file=name,
                line=opened.line + 1,
            ) from None
        raise ConfigError(
            f"not valid YAML: {problem}", file=name, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=name) from None
    except RecursionError:
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=name) from None
    if not isinstance(data, dict):
        raise ConfigError("a task file is a mapping with at least `steps:`", file=name, line=1)
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        return TaskFile.model_validate(data)
    except ValidationError as exc:
        errors = _useful(exc.errors(include_url=False))
        # the most useful error first: an unknown key, then the deepest (the union branch that got furthest)
        errors.sort(
            key=lambda e: (e["type"] != "extra_forbidden", e["type"] != "unknown_step", -len(e["loc"]))
        )
        first = errors[0]
        line = _line_for(tuple(first["loc"]), lines, key=first["type"] == "extra_forbidden")
        msg = _describe(first)
        more = len({_describe(e) for e in errors}) - 1
        if more > 0:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(msg, file=name, line=line) from None


def schema_json() -> str:
    return json.dumps(task_schema(), indent=2)
