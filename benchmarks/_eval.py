"""What benchmarks/agent_eval.py and benchmarks/grounding_eval.py share: the model flags and loading, the
run's description, and the results file — rewritten whole after each piece of work, so that an interrupted
run resumes from it (and refuses a file of another configuration)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from pixelpilot.agent.runlog import write_atomic


def add_model_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--model", required=True, help="qwen3-vl-2b|4b|8b, a hub id, a directory, openai:URL, or oracle"
    )
    ap.add_argument("--model-name", default=None, help="openai: the served model's name")
    ap.add_argument("--profile", default=None, help="a model profile: pixelpilot.agent.qwen.profile.PROFILES")
    ap.add_argument(
        "--engine", action=argparse.BooleanOptionalAction, default=None, help="local: the fast engine"
    )


def load(args: argparse.Namespace) -> Any:
    """The model from ``--model`` (a name, hub id, directory or openai:URL); None for ``oracle``, which
    each harness builds itself."""
    if args.model == "oracle":
        return None
    from pixelpilot.agent.models import load_model

    options: dict[str, Any] = {}
    if not args.model.startswith("openai:"):
        options["allow_cpu"] = True
        if args.engine is not None:
            options["engine"] = args.engine
    if args.profile:
        options["profile"] = args.profile
    return load_model(args.model, model_name=args.model_name, **options)


def describe(script: str, args: argparse.Namespace, argv: list[str] | None, **extra: Any) -> dict[str, Any]:
    """The run's configuration, as its results file and table record it."""
    return {
        "model": args.model
        + (f"#{args.model_name}" if args.model_name else "")
        + (f" ({args.profile})" if args.profile else ""),
        **extra,
        "command": f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }


def resume(path: Path, config: dict[str, Any], key: str, same: tuple[str, ...]) -> list[dict[str, Any]]:
    """The items (``key``) an earlier run of the same configuration (``same``: the config keys that must
    match) left in ``path``; none when there is no file."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SystemExit(
            f"{path} is not the JSON of an earlier run ({exc}); move it away or pick another --out"
        ) from None
    earlier = data.get("config", {}) if isinstance(data, dict) else {}
    if any(earlier.get(k) != config[k] for k in same):
        raise SystemExit(
            f"{path} holds results of another configuration ({earlier}); resume with the same "
            f"{', '.join('--' + k.replace('_', '-') for k in same)}, or pick another --out"
        )
    return list(data.get(key, []))


def save(path: Path, config: dict[str, Any], key: str, items: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"config": config, key: items}, indent=1).encode())
