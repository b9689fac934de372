"""Watching figures (issue 13): a real `dployr serve` with 10 services running on the Docker
engine, sampled at the default metrics.interval.

- go-live → webhook: a receiver on loopback is subscribed to `deployment.succeeded`; for each
  of the 10 deployments, from the moment the same event reaches a WebSocket subscriber (the
  event is committed and published) to the receiver's first request (goal < 1 s);
- idle: the daemon's CPU over 60 s doing nothing but its jobs (goal < 1 % of a core) and its
  RSS (goal <= 80 MB);
- storage: the metrics tables after 90 simulated days at the default interval, the host and 10
  services, through the recorders' own roll-ups with an injected clock (goal < 50 MB);
- WebSocket fan-out: bench/ws.py's run (100 clients, one event at a time) against this daemon.

The apps are FROM busybox:stable (scripts/provision) in a local git repo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ws  # noqa: E402
from bench.daemon import Daemon, free_port  # noqa: E402
from bench.deploy import DOCKERFILE, GIT, cleanup  # noqa: E402
from dployr.metrics.recorder import HostRecorder  # noqa: E402
from dployr.metrics.services import ServiceRecorder  # noqa: E402
from dployr.store import metrics as host_store  # noqa: E402
from dployr.store import service_metrics as service_store  # noqa: E402
from dployr.store.db import Database  # noqa: E402
from dployr.store.metrics import HostSample  # noqa: E402
from dployr.store.service_metrics import ServiceSample  # noqa: E402

INTERVAL = 10  # metrics.interval's default
DAY, BATCH = 86400, 6 * 3600


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "index.html").write_text("idle\n")
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-qm", "idle"], check=True)
    return path


async def go_live_to_webhook(daemon: Daemon, repo: Path, services: int) -> list[float]:
    """Deploy `services` services; per deployment, event on a socket → receiver's request."""
    received: dict[str, float] = {}

    async def receive(request: web.Request) -> web.Response:
        event = await request.json()
        received.setdefault(event["data"]["deployment_id"], time.perf_counter())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook = {"url": f"http://127.0.0.1:{port}/hook", "events": ["deployment.succeeded"]}
    await asyncio.to_thread(daemon.call, "POST", "/api/v1/webhooks", hook)
    published: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as http:
            sock = await http.ws_connect(f"{daemon.url}/api/v1/ws?token={daemon.token}")
            await sock.send_json({"type": "subscribe", "events": ["deployment.succeeded"]})
            while (await sock.receive_json())["type"] != "subscribed":
                pass
            for n in range(services):
                body = {"name": f"idle-{n}", "source": "local", "path": str(repo),
                        "branch": "main", "runtime": "static", "port": 8080,
                        "health_check": {"path": "/", "timeout": 60}}  # fmt: skip
                created = await asyncio.to_thread(daemon.call, "POST", "/api/v1/deployments", body)
                event = await sock.receive_json(timeout=600)
                published[event["data"]["deployment_id"]] = time.perf_counter()
                assert event["data"]["deployment_id"] == created["id"], event
            await sock.close()
        deadline = time.monotonic() + 30
        while len(received) < services and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    return [(received[d] - published[d]) * 1000 for d in published if d in received]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def simulated_storage(
    work: Path, days: int, services: int
) -> tuple[int, int, dict[str, Any]]:
    """`days` of samples every INTERVAL s, written and rolled up in 6-hour batches."""
    path = work / "simulated.db"
    db = await Database.open(path)
    clock = [float(1_800_000_000 - 1_800_000_000 % DAY)]
    hosts = HostRecorder(db, work, INTERVAL, "agt_bench", clock=lambda: clock[0])
    service_recorder = ServiceRecorder(db, INTERVAL, clock=lambda: clock[0])
    try:
        for _ in range(days * DAY // BATCH):
            start = int(clock[0])
            stamps = range(start, start + BATCH, INTERVAL)
            await host_store.insert_samples(db, [HostSample(ts, *([12.5] * 13)) for ts in stamps])
            await service_store.insert_samples(
                db,
                [(f"svc_{n:016d}", ServiceSample(ts, 1.5, 20e6, 0)) for ts in stamps
                 for n in range(services)],
            )  # fmt: skip
            clock[0] = start + BATCH
            await hosts.roll_up()
            await service_recorder.roll_up()
        rows = {"host": await host_store.count_rows(db),
                "services": await service_store.count_rows(db)}  # fmt: skip
    finally:
        await db.close()
    # The daemon never vacuums: freed pages are reused, the file stays at its high-water mark.
    as_is = path.stat().st_size
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    return as_is, path.stat().st_size, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--idle", type=int, default=60, help="seconds measured idle")
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = make_repo(work / "repo")
        settings = {"PROXY_BACKEND": "none", "RUNTIME_ALLOW_LOCAL_SOURCES": "true",
                    "RUNTIME_DRAIN_SECONDS": "0", "WEBHOOKS_ALLOW_PRIVATE": "true",
                    "SERVER_WS_PER_USER": "101"}  # fmt: skip
        daemon = Daemon(work / "data", settings)
        try:
            daemon.login()
            latencies = asyncio.run(go_live_to_webhook(daemon, repo, args.services))
            print(f"go-live → webhook receiver, {len(latencies)} deployments: median "
                  f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms"
                  " (goal < 1 s)")  # fmt: skip
            time.sleep(2 * INTERVAL)  # the deploys' own work is over; a few sampling rounds
            before, started = cpu_seconds(daemon.process.pid), time.monotonic()
            time.sleep(args.idle)
            used = cpu_seconds(daemon.process.pid) - before
            percent = used / (time.monotonic() - started) * 100
            print(f"idle {args.idle} s with {args.services} services sampled every {INTERVAL} s: "
                  f"CPU {percent:.2f} % of a core (goal < 1 %), RSS {daemon.rss_mb():.1f} MB"
                  " (goal <= 80 MB)")  # fmt: skip
            asyncio.run(ws.run(100, 20, daemon.url))
        finally:
            cleanup(daemon, work / "none")
        size, compact, rows = asyncio.run(simulated_storage(work, args.days, args.services))
        print(f"metrics after {args.days} simulated days at {INTERVAL} s, host + "
              f"{args.services} services: {size / 1e6:.1f} MB of database file "
              f"({compact / 1e6:.1f} MB vacuumed; goal < 50 MB); rows {rows}")  # fmt: skip


if __name__ == "__main__":
    main()
