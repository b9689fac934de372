"""Switch figures: requests lost while a service is redeployed under load, through a real
Caddy and a real nginx.

For each backend: a private proxy (tests/proxy/conftest.py), a real `dployr serve` pointed at
it, a busybox app routed on app.localhost. A client (tests/proxy/load.py: 4 connections, half
keep-alive, half a new connection per request) loops GET / through the proxy: first at rest,
then while 5 consecutive redeploys happen. Printed:
- requests sent and failed (goal 0), and GETs resent after a keep-alive connection closed
  under them (what every browser does; counted apart, never hidden);
- p99 latency during the switches against p99 at rest, same run (goal at most 3x);
- time from the new instance first answering on its own port (probed directly every 2 ms:
  the earliest its health check can pass) to its first answer through the proxy (goal < 1 s);
  this includes the health check's own poll interval (50 ms) and the switch.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import Daemon  # noqa: E402
from tests.proxy import load  # noqa: E402
from tests.proxy.conftest import Caddy, Nginx  # noqa: E402

HOST = "app.localhost"
SERVE = (
    'mkdir -p /www && echo "release $RELEASE" > /www/index.html && exec httpd -f -p "$PORT" -h /www'
)


async def deploy(daemon: Daemon, release: int) -> tuple[float, dict[str, Any]]:
    """POST release `release` and poll until live; (monotonic time its new instance first
    answered on its own port — probed directly every 2 ms, the moment its health check can
    pass — the live deployment)."""
    body = {"name": "switch", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"RELEASE": str(release)}, "domain": HOST,
            "health_check": {"path": "/", "timeout": 30}}  # fmt: skip
    created = await asyncio.to_thread(daemon.call, "POST", "/api/v1/deployments", body)
    path = f"/api/v1/deployments/{created['id']}"
    while (now := await asyncio.to_thread(daemon.call, "GET", path))["host_port"] is None:
        if now["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"release {release}: {now['error']}")
        await asyncio.sleep(0.005)
    probe = load.Connection(now["host_port"], HOST)
    while True:
        answer = await load.request(probe, "/", False, load.LoadResult())
        if answer.body == f"release {release}":
            ready = answer.started + answer.seconds
            break
        await asyncio.sleep(0.002)
    while (now := await asyncio.to_thread(daemon.call, "GET", path))["status"] != "live":
        if now["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"release {release}: {now['error']}")
        await asyncio.sleep(0.01)
    return ready, now


def p99(samples: list[load.Sample]) -> float:
    times = sorted(s.seconds for s in samples)
    return statistics.quantiles(times, n=100)[98] if len(times) >= 100 else times[-1]


async def measure(
    backend: str, rounds: int, rest: float, drain: float, work: Path
) -> dict[str, Any]:
    proxy = Caddy.create(work / "caddy") if backend == "caddy" else Nginx.create(work / "nginx")
    proxy.start()
    (work / "data").mkdir()
    try:
        settings = {f"PROXY_{k.upper()}": str(v) for k, v in proxy.proxy_config().items()}
        daemon = Daemon(work / "data", {**settings, "RUNTIME_DRAIN_SECONDS": str(drain)})
        daemon.login()
    except BaseException:  # a daemon that does not start leaves no proxy running
        proxy.stop()
        raise
    try:
        await deploy(daemon, 1)
        async with load.under_load(proxy.http_port, HOST) as at_rest:
            await asyncio.sleep(rest)
        switched: list[float] = []
        async with load.under_load(proxy.http_port, HOST) as busy:
            for release in range(2, rounds + 2):
                healthy, _ = await deploy(daemon, release)
                body = f"release {release}"
                while not any(s.body == body for s in busy.samples[-40:]):
                    await asyncio.sleep(0.005)
                first = min(s.started + s.seconds for s in busy.samples if s.body == body)
                switched.append(first - healthy)
            await asyncio.sleep(drain + 0.5)  # the last old instance drains and stops
    finally:
        daemon.stop()
        subprocess.run(  # the bench's containers, by the agent's label
            ["sh", "-c", "docker rm -f $(docker ps -aq --filter label=dployr.agent="
             f"$(cat {work / 'data' / 'agent_id'})) 2>/dev/null"], check=False, capture_output=True,
        )  # fmt: skip
        proxy.stop()
    return {
        "backend": backend,
        "sent": busy.sent,
        "failed": len(busy.failed),
        "retried": busy.retried,
        "p99_rest_ms": p99(at_rest.samples) * 1000,
        "p99_switch_ms": p99(busy.samples) * 1000,
        "switch_ms": [round(s * 1000) for s in switched],
        "errors": [s.error or s.status for s in busy.failed[:5]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="consecutive redeploys")
    parser.add_argument("--rest", type=float, default=8.0, help="seconds of load at rest")
    parser.add_argument("--drain", type=float, default=2.0, help="runtime.drain_seconds")
    parser.add_argument("--backend", choices=["caddy", "nginx"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["caddy", "nginx"]:
        with tempfile.TemporaryDirectory(prefix=f"dployr-switch-{backend}-") as tmp:
            r = asyncio.run(measure(backend, args.rounds, args.rest, args.drain, Path(tmp)))
        ratio = r["p99_switch_ms"] / r["p99_rest_ms"]
        print(
            f"{backend}: {r['sent']} requests during {args.rounds} redeploys, "
            f"{r['failed']} failed, {r['retried']} resent after a keep-alive close"
        )
        print(
            f"{backend}: p99 {r['p99_switch_ms']:.1f} ms during the switches vs "
            f"{r['p99_rest_ms']:.1f} ms at rest ({ratio:.2f}x)"
        )
        print(f"{backend}: new instance answering -> served through the proxy: {r['switch_ms']} ms "
              f"(max {max(r['switch_ms'])} ms)")  # fmt: skip
        if r["errors"]:
            print(f"{backend}: first failures: {r['errors']}")


if __name__ == "__main__":
    main()
