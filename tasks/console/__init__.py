"""The web console (``pixelpilot ui``)."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from pixelpilot.agent.errors import ConfigError

__all__ = ["TOKEN_ENV", "is_loopback", "serve"]

TOKEN_ENV = "PIXELPILOT_UI_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    runs: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    token: str | None = None,
    tasks: Path | None = None,
    model: str | None = None,
    on_ready: object = None,
) -> None:
    """Serve until interrupted. Binding to anything but loopback needs a token (or PIXELPILOT_UI_TOKEN)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"the console would listen on {host}, beyond this machine: give it a token (--token or {TOKEN_ENV}); "
            "every request must then carry it"
        )
    try:
        import uvicorn

        from pixelpilot.tasks.console.app import create_app
    except ImportError as exc:
        raise ConfigError(
            f"the console needs its extra: pip install 'pixelpilot[ui]' ({exc.name} is missing)"
        ) from None
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)"
            ) from None
    app = create_app(runs, tasks=tasks, model=model, token=token, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    if callable(on_ready):
        on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")
    server.run()
