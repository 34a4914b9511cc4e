"""Small web sites for the browser tests: an http.server handler base that sends pages, and a fixture
helper that serves a handler class on a free loopback port for one test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

__all__ = ["Page", "RecordingProxy", "free_port", "serve", "server_process"]


class Page(BaseHTTPRequestHandler):
    """A handler that sends bodies (``send``) and keeps quiet in the test output."""

    def log_message(self, *args: object) -> None:
        pass

    def send(
        self,
        body: bytes | str,
        ctype: str = "text/html",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        """The request's body."""
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) while the block runs; yields ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_process(cmd: Sequence[str], url: str, log: Path, *, timeout: float = 30) -> Iterator[None]:
    """Run a third-party server (``cmd``, output to ``log``) until ``url`` answers 200; stop it (its
    whole process group) after the block. A server that does not come up fails the test with its log."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{Path(cmd[0]).name} did not start: " + log.read_text()[-2000:])
                    time.sleep(0.2)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


class RecordingProxy:
    """A replica in front of a real model server: forwards every request to ``target`` and records
    the path and the X-Session-ID it came with; :meth:`stop` takes it down (connections refused)."""

    def __init__(self, target: str) -> None:
        import httpx

        proxy = self
        self.seen: list[tuple[str, str | None]] = []
        client = httpx.Client(timeout=300)
        origin = target.rstrip("/").rsplit("/v1", 1)[0]

        class Forward(Page):
            def do_GET(self) -> None:
                self.forward(b"")

            def do_POST(self) -> None:
                self.forward(self.body())

            def forward(self, body: bytes) -> None:
                proxy.seen.append((self.path, self.headers.get("X-Session-ID")))
                r = client.request(
                    self.command,
                    origin + self.path,
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                )
                self.send(r.content, r.headers.get("content-type", "application/json"), status=r.status_code)

        self._stopped = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def calls(self) -> list[str | None]:
        """The sessions of the chat requests it forwarded."""
        return [s for p, s in self.seen if p.endswith("/chat/completions")]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
