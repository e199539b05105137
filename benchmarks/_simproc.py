"""The simulator in a process of its own, so the benchmark process measures only the client.

``SimProcess`` starts ``python benchmarks/_simproc.py --port P --storage-port S --config JSON``,
which calls :func:`leonardo_async.simulator.serve`, waits until ``GET /_sim/stats`` answers,
and talks to the admin API (``/_sim/stats``, ``/_sim/config``, ``/_sim/reset``,
``/_sim/generations``) with blocking ``urllib`` calls. Call those only between measurements:
they run in the benchmark process.

The child exits on its own when its parent goes away, so an interrupted benchmark leaves
nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from typing import Any

API_PREFIX = "/api/rest/v1"
HOST = "127.0.0.1"
DEFAULT_KEY = "sim-test-key-0000"

#: A 1x1 PNG: enough for ``POST /init-image`` plus the presigned upload.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class SimProcess:
    """A simulator subprocess on loopback. Use it as a context manager.

    :param config: knob changes for :func:`leonardo_async.simulator.config_from_mapping`
        (JSON-ready: ``{"durations": {"kind": "fixed", "median": 0.0}, "max_running": None}``)
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.port = _free_port()
        self.storage_port = _free_port()
        self.api_key = str(self.config.get("api_key", DEFAULT_KEY))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root a client is pointed at."""
        return self.origin + API_PREFIX

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        """Start the child and wait until its admin API answers."""
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--port",
            str(self.port),
            "--storage-port",
            str(self.storage_port),
            "--config",
            json.dumps(self.config),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"simulator exited with code {self._proc.returncode}")
            try:
                self.stats()
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("simulator did not answer in time") from None
                time.sleep(0.05)
            else:
                return

    def stop(self) -> None:
        """Terminate the child (and wait for it)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        return None if self._proc is None else self._proc.pid

    # --- admin API (blocking; call between measurements) --------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.origin + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """``GET /_sim/stats``."""
        result: dict[str, Any] = self._admin("GET", "/_sim/stats")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        """``POST /_sim/config`` with knob changes (nested ones merge)."""
        result: dict[str, Any] = self._admin("POST", "/_sim/config", changes)
        return result

    def reset(self) -> None:
        """``POST /_sim/reset``: zero the counters."""
        self._admin("POST", "/_sim/reset", {})

    def generations(self) -> list[dict[str, Any]]:
        """``GET /_sim/generations``: every stored generation with ``finish_at``.

        ``finish_at`` is the child's ``time.monotonic()``, the same clock as this
        process's (``CLOCK_MONOTONIC`` is system-wide on Linux).
        """
        result: list[dict[str, Any]] = self._admin("GET", "/_sim/generations")
        return result

    def upload_image(self) -> str:
        """Upload :data:`TINY_PNG` the way the API wants; return the init image id."""
        headers = {"authorization": f"Bearer {self.api_key}", "content-type": "application/json"}
        request = urllib.request.Request(
            self.base_url + "/init-image",
            data=json.dumps({"extension": "png"}).encode(),
            method="POST",
            headers=headers,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())["uploadInitImage"]
        boundary = "----leonardo-bench-boundary"
        parts: list[bytes] = []
        for name, value in json.loads(target["fields"]).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="frame.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + TINY_PNG
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        upload = urllib.request.Request(
            target["url"],
            data=b"".join(parts),
            method="POST",
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(upload, timeout=30) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"upload answered HTTP {response.status}")
        return str(target["id"])


def api_requests(stats: Mapping[str, Any]) -> dict[str, int]:
    """The per-route API request counts of a ``/_sim/stats`` snapshot."""
    return {str(k): int(v) for k, v in stats.get("requests", {}).items()}


# --- the child ---------------------------------------------------------------------------


async def _watch_parent(parent: int) -> None:
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


async def _child(port: int, storage_port: int, changes: Mapping[str, Any]) -> None:
    from leonardo_async.simulator import config_from_mapping, serve

    config = config_from_mapping(changes)
    watcher = asyncio.create_task(_watch_parent(os.getppid()))
    try:
        await serve(config, host=HOST, port=port, storage_port=storage_port)
    finally:
        watcher.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Leonardo simulator on loopback.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--storage-port", type=int, required=True)
    parser.add_argument("--config", default="{}", help="JSON object of knob changes")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_child(args.port, args.storage_port, json.loads(args.config)))


if __name__ == "__main__":
    main()
