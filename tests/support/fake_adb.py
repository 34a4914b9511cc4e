"""A fake adb *server* speaking the real adb wire protocol (smart sockets, shell v1 and v2, exec, sync)
so that adbutils and the real ``adb`` CLI can drive the fake phones of :mod:`tests.support.fake_android`.

    server = FakeAdbServer([FakeDevice("fake-5554")]).start()   # 127.0.0.1:<server.port>
"""

from __future__ import annotations

import contextlib
import socketserver
import struct
import threading

from .fake_android import ADB_KEYBOARD, LATIN_IME, FakeDevice

__all__ = ["ADB_KEYBOARD", "LATIN_IME", "FakeAdbServer", "FakeDevice"]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("client closed")
            buf += chunk
        return buf

    def _request(self) -> str:
        n = int(self._read(4), 16)
        return self._read(n).decode("utf-8")

    def _okay(self, payload: bytes | None = None) -> None:
        self.request.sendall(b"OKAY" + (b"%04x" % len(payload) + payload if payload is not None else b""))

    def _fail(self, msg: str) -> None:
        data = msg.encode()
        self.request.sendall(b"FAIL" + b"%04x" % len(data) + data)

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, ValueError):
            self._serve()

    def _device(self, serial: str | None) -> FakeDevice | None:
        devices = self.server.devices
        if serial is None:
            ready = [d for d in devices if d.state == "device"]
            if len(devices) != 1:
                self._fail("more than one device/emulator" if devices else "no devices/emulators found")
                return None
            dev = devices[0]
        else:
            found = [d for d in devices if d.serial == serial]
            if not found:
                self._fail(f"device '{serial}' not found")
                return None
            dev = found[0]
            ready = [dev]
        if dev.state == "unauthorized":
            self._fail(
                "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device."
            )
            return None
        if dev.state != "device" or not ready:
            self._fail("device offline")
            return None
        return dev

    def _serve(self) -> None:  # noqa: PLR0911, PLR0912 - one branch per request
        req = self._request()
        self.server.log.append(req)
        if req == "host:version":
            return self._okay(b"0029")
        if req == "host:kill":
            self._okay()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return None
        if req in ("host:devices", "host:devices-l"):
            lines = []
            for i, d in enumerate(self.server.devices, 1):
                extra = (
                    f" product:{d.model} model:{d.model} device:fake transport_id:{i}"
                    if req.endswith("-l") and d.state == "device"
                    else ""
                )
                lines.append(f"{d.serial}\t{d.state}{extra}\n")
            return self._okay("".join(lines).encode())
        if (
            req.startswith("host-serial:")
            or req.startswith("host:")
            and ":" in req[5:]
            and not req.startswith(("host:tport", "host:transport"))
        ):
            _, serial, cmd = req.split(":", 2) if req.startswith("host-serial:") else ("host", None, req[5:])
            dev = self._device(serial)
            if dev is None:
                return None
            if cmd == "features":
                return self._okay(b"shell_v2,cmd,stat_v2")
            if cmd == "get-state":
                return self._okay(dev.state.encode())
            if cmd == "get-serialno":
                return self._okay(dev.serial.encode())
            return self._fail(f"unknown host request: {cmd}")
        if req == "host:features":
            return self._okay(b"shell_v2,cmd,stat_v2")
        dev = None
        if req.startswith("host:tport:"):
            what = req[len("host:tport:") :]
            dev = self._device(what.split(":", 1)[1] if what.startswith("serial:") else None)
            if dev is None:
                return None
            self.request.sendall(b"OKAY" + struct.pack("<Q", self.server.devices.index(dev) + 1))
        elif req.startswith("host:transport:") or req in ("host:transport-any", "host:transport-usb"):
            dev = self._device(req.split(":", 2)[2] if req.startswith("host:transport:") else None)
            if dev is None:
                return None
            self._okay()
        else:
            return self._fail(f"unknown request: {req}")
        return self._service(dev)

    def _service(self, dev: FakeDevice) -> None:
        req = self._request()
        self.server.log.append(req)
        if self.server.drop_next:
            self.server.drop_next = False
            self.request.close()
            return
        if req.startswith("shell,v2") or req.startswith("shell,"):
            cmd = req.split(":", 1)[1]
            out, rc = dev.shell(cmd)
            self._okay()
            if out:
                self.request.sendall(b"\x01" + struct.pack("<I", len(out)) + out)
            self.request.sendall(b"\x03" + struct.pack("<I", 1) + bytes([rc & 0xFF]))
            return
        if req.startswith("shell:") or req.startswith("exec:"):
            out, _ = dev.shell(req.split(":", 1)[1])
            self._okay()
            self.request.sendall(out)
            return
        if req == "sync:":
            self._okay()
            return self._sync(dev)
        self._fail(f"unknown service: {req}")

    def _sync(self, dev: FakeDevice) -> None:
        while True:
            head = self._read(8)
            cmd, n = head[:4], struct.unpack("<I", head[4:])[0]
            arg = self._read(n).decode("utf-8") if n else ""
            if cmd == b"QUIT":
                return
            if cmd == b"STAT":
                data = dev.files.get(arg)
                mode = 0o100644 if data is not None else 0
                self.request.sendall(
                    b"STAT"
                    + struct.pack("<III", mode, len(data or b""), 1700000000 if data is not None else 0)
                )
            elif cmd == b"RECV":
                data = dev.files.get(arg)
                if data is None:
                    msg = b"No such file or directory"
                    self.request.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                else:
                    for i in range(0, len(data), 64 * 1024):
                        chunk = data[i : i + 64 * 1024]
                        self.request.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                    self.request.sendall(b"DONE" + struct.pack("<I", 0))
            else:
                msg = f"unsupported sync request {cmd!r}".encode()
                self.request.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    devices: list[FakeDevice]
    log: list[str]
    drop_next: bool


class FakeAdbServer:
    """The server: ``start()`` binds 127.0.0.1 on a free port (or ``port``); ``stop()`` closes it."""

    def __init__(self, devices: list[FakeDevice], port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.devices = devices
        self._server.log = []
        self._server.drop_next = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def devices(self) -> list[FakeDevice]:
        return self._server.devices

    @property
    def log(self) -> list[str]:
        """Every request the server received, in order (to check the wire traffic in tests)."""
        return self._server.log

    def drop_next_service(self) -> None:
        """Close the next device-service connection without answering (a cable pulled mid-run)."""
        self._server.drop_next = True

    def start(self) -> FakeAdbServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
