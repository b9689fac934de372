"""Swarm figures (SPEC §15), on the one-node swarm of this engine (made for the run when the
engine is not in one, and left at the end):
- POST /deployments → live for the same busybox app on the swarm target and on the docker
  target, in the same run, interleaved (median of `--rounds` each, and the ratio);
- requests lost through the swarm proxy during 5 redeploys of a 2-task service under load
  (tests/proxy/load.py: 4 connections, half keep-alive), goal 0;
- a task killed with `docker kill` → Swarm's replacement task answering through the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import Daemon, free_port  # noqa: E402
from tests.proxy import load  # noqa: E402

HOST = "swarm.localhost"


def serve(greeting: str) -> str:
    return (f'mkdir -p /www && echo "{greeting} $(hostname)" > /www/index.html'
            ' && exec httpd -f -p "$PORT" -h /www')  # fmt: skip


def body(name: str, target: str, greeting: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": "image", "runtime": "image", "image": "busybox:stable",
            "target": target, "port": 8080, "run_cmd": serve(greeting),
            "health_check": {"path": "/", "timeout": 20}, **extra}  # fmt: skip


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def deploy_seconds(daemon: Daemon, spec: dict[str, Any]) -> float:
    started = time.perf_counter()
    created = daemon.call("POST", "/api/v1/deployments", spec)
    daemon.wait_live(created["id"], limit=180)
    return time.perf_counter() - started


async def redeploys_under_load(daemon: Daemon, port: int, rounds: int) -> load.LoadResult:
    async with load.under_load(port, HOST) as result:
        for release in range(2, rounds + 2):
            spec = body("loaded", "swarm", f"v{release}", domain=HOST)
            await asyncio.to_thread(deploy_seconds, daemon, spec)
            while not any(s.body.startswith(f"v{release} ") for s in result.samples[-40:]):
                await asyncio.sleep(0.01)
    return result


async def kill_to_serving(port: int, service: str) -> float:
    """docker kill one task's container; seconds until a task of a hostname not seen before
    answers through the proxy (Swarm's replacement)."""
    tasks = docker("service", "ps", service, "-q", "--no-trunc", "--filter",
                   "desired-state=running").split()  # fmt: skip
    container = docker("ps", "-q", "--filter", f"label=com.docker.swarm.task.id={tasks[0]}")
    async with load.under_load(port, HOST, connections=2) as result:
        while len(result.samples) < 20:
            await asyncio.sleep(0.01)
        known = {s.body.split()[1] for s in result.samples if s.status == 200}
        killed = time.monotonic()
        await asyncio.to_thread(docker, "kill", container)
        while True:
            fresh = [s for s in result.samples[-40:]
                     if s.status == 200 and s.body.split()[1] not in known]  # fmt: skip
            if fresh:
                return fresh[0].started + fresh[0].seconds - killed
            if time.monotonic() - killed > 120:
                raise RuntimeError("no replacement task answered within 120 s")
            await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="deploys per target")
    args = parser.parse_args()
    made = docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active"
    if made:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    http_port = free_port()
    with tempfile.TemporaryDirectory(prefix="dps-") as tmp:
        daemon = Daemon(Path(tmp) / "data", {
            "PROXY_BACKEND": "none", "PROXY_HTTP_PORT": str(http_port),
            "PROXY_HTTPS_PORT": str(free_port()), "RUNTIME_DRAIN_SECONDS": "0.5",
            "SWARM_NETWORK": f"dpb{secrets.token_hex(3)}",
        })  # fmt: skip
        try:
            daemon.login()
            times: dict[str, list[float]] = {"docker": [], "swarm": []}
            for number in range(args.rounds):
                for target in ("docker", "swarm"):
                    spec = body(f"same-{target}", target, f"r{number}")
                    times[target].append(deploy_seconds(daemon, spec))
            docker_s, swarm_s = (statistics.median(times[t]) for t in ("docker", "swarm"))
            print(f"POST -> live, same app, {args.rounds} each: docker {docker_s:.2f} s, "
                  f"swarm {swarm_s:.2f} s ({swarm_s / docker_s:.2f}x); "
                  f"swarm {[round(t, 2) for t in times['swarm']]}, "
                  f"docker {[round(t, 2) for t in times['docker']]}")  # fmt: skip

            first = body("loaded", "swarm", "v1", domain=HOST, replicas=2)
            deploy_seconds(daemon, first)
            result = asyncio.run(redeploys_under_load(daemon, http_port, 5))
            print(f"5 redeploys of 2 tasks under load through the swarm proxy: {result.sent} "
                  f"requests, {len(result.failed)} failed, {result.retried} resent after a "
                  "keep-alive close")  # fmt: skip
            service_id = daemon.call("GET", "/api/v1/services?search=loaded")["items"][0]["id"]
            swarm_service = "dployr-" + service_id.replace("_", "-")
            seconds = [asyncio.run(kill_to_serving(http_port, swarm_service)) for _ in range(3)]
            print(f"a killed task -> its replacement answering through the proxy: "
                  f"{[round(s, 2) for s in seconds]} s")  # fmt: skip
        finally:
            daemon.stop()
            agent = (Path(tmp) / "data" / "agent_id").read_text().strip()
            for kind in ("service", "container"):
                found = docker(kind, "ls", "-q", "--filter", f"label=dployr.agent={agent}",
                               *(["-a"] if kind == "container" else []))  # fmt: skip
                if found:
                    docker(kind, "rm", *(["-f"] if kind == "container" else []), *found.split())
            if made:
                docker("swarm", "leave", "--force")


if __name__ == "__main__":
    main()
