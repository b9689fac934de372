"""A real `dployr serve` for the benchmarks: started on a free loopback port with its own data
dir, a registered user, and the calls the benchmarks make (deploy and wait, logs, RSS)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PASSWORD = "bench password 1"
ACCOUNT = {"name": "Bench", "email": "bench@example.com", "password": PASSWORD}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """`settings`: DPLOYR_<KEY> variables (e.g. {"RUNTIME_DRAIN_SECONDS": "0"}) over the
    benchmarks' defaults (warning logs, cheap bcrypt, no rate limits)."""

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DPLOYR_")}
        env.update(
            DPLOYR_SERVER_DATA_DIR=str(data_dir),
            DPLOYR_SERVER_LOG_LEVEL="warning",
            DPLOYR_AUTH_BCRYPT_ROUNDS="4",
            DPLOYR_RATE_LIMIT_ENABLED="false",
            **{f"DPLOYR_{key}": value for key, value in (settings or {}).items()},
        )
        log = data_dir.parent / f"daemon-{data_dir.name}.log"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dployr", "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/health")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    said = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"dployr serve did not start:\n{said}") from None
                time.sleep(0.01)
        self.startup = time.perf_counter() - self.started
        self.token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def login(self) -> str:
        """Register the bench user (the first user: an admin) and keep its access token."""
        self.call("POST", "/api/v1/auth/register", ACCOUNT)
        pair = self.call("POST", "/api/v1/auth/login", {"email": ACCOUNT["email"],
                                                         "password": PASSWORD})  # fmt: skip
        self.token = pair["access_token"]
        return str(self.token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data, method=method)
        req.add_header("Content-Type", "application/json")
        if getattr(self, "token", None):
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def wait_live(self, deployment_id: str, limit: float = 120) -> dict[str, Any]:
        """Polls every 20 ms; `seen` holds when each stage was first seen running and done
        (stage timestamps in the API have whole seconds)."""
        deadline = time.monotonic() + limit
        seen: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            body = self.call("GET", f"/api/v1/deployments/{deployment_id}")
            now = time.perf_counter()
            for stage in body["stages"]:
                state = "running" if stage["status"] == "running" else "done"
                if stage["status"] != "pending":
                    seen.setdefault((stage["name"], state), now)
            body["seen"] = seen
            if body["status"] == "live":
                return dict(body)
            if body["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"deployment failed: {body['error']}")
            time.sleep(0.02)
        raise RuntimeError(f"{deployment_id} not live in {limit} s")

    def log(self, deployment_id: str) -> str:
        lines: list[str] = []
        after = 0
        while True:
            page = self.call("GET", f"/api/v1/deployments/{deployment_id}/logs?after={after}")
            fresh = [line for line in page["logs"] if line["seq"] > after]
            if not fresh:
                return "\n".join(lines)
            lines += [line["message"] for line in fresh]
            after = fresh[-1]["seq"]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kb / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
