"""API figures: GET /api/v1/projects throughput against bare aiohttp handlers, idle RSS, start-up.

Runs `dployr serve` and the baselines (bench/bare_server.py: the same JSON through
`json_response`, and as pre-serialised bytes) as real processes on loopback and loads them with
wrk (or a small aiohttp client when wrk is missing), in alternating rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import PASSWORD, Daemon, free_port  # noqa: E402


def call(url: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def ready(url: str) -> bool:
    """Whether /health/ready answers 200: the idle RSS goal is for a host where Docker answers."""
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=10) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def wait_http(url: str, timeout: float = 15) -> float:
    """Seconds until `url` answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def run_wrk(url: str, seconds: int, token: str | None) -> float:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if not match or errors:
        raise RuntimeError(f"wrk failed:\n{out.stdout}")
    return float(match.group(1))


async def _aiohttp_load(url: str, seconds: int, token: str | None) -> float:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}")
                done += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(32)))
    return done / seconds


def load(url: str, seconds: int, token: str | None) -> float:
    if shutil.which("wrk"):
        return run_wrk(url, seconds, token)
    return asyncio.run(_aiohttp_load(url, seconds, token))


def startup_times(workdir: Path, runs: int) -> tuple[list[float], list[float]]:
    fresh, existing = [], []
    for i in range(runs):
        data = workdir / f"start-{i}"
        for into in (fresh, existing):  # first start makes the DB and key; the second reuses
            daemon = Daemon(data, {"PROXY_BACKEND": "none"})
            into.append(daemon.startup)
            daemon.stop()
    return fresh, existing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="length of one load round")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds")
    args = parser.parse_args()
    client = "wrk -t1 -c32" if shutil.which("wrk") else "aiohttp client, 32 connections"
    with tempfile.TemporaryDirectory(prefix="dployr-bench-") as tmp:
        workdir = Path(tmp)
        daemon = Daemon(workdir / "data", {"PROXY_BACKEND": "none"})
        baseline = None
        try:
            time.sleep(2)
            idle_rss = daemon.rss_mb()
            engine = ready(daemon.url)
            call(
                f"{daemon.url}/api/v1/auth/register",
                {"name": "Bench", "email": "bench@example.com", "password": PASSWORD},
            )
            token = call(
                f"{daemon.url}/api/v1/auth/login",
                {"email": "bench@example.com", "password": PASSWORD},
            )["access_token"]
            for i in range(20):
                call(f"{daemon.url}/api/v1/projects", {"name": f"project-{i:02d}"}, token)
            page = call(f"{daemon.url}/api/v1/projects", token=token)
            assert len(page["items"]) == 20
            body = workdir / "body.json"
            body.write_text(json.dumps(page))
            bare_port = free_port()
            baseline = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "bare_server.py"), str(body), str(bare_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            bare = {
                name: f"http://127.0.0.1:{bare_port}/{name}" for name in ("json_response", "bytes")
            }
            wait_http(bare["bytes"])
            ours_url = f"{daemon.url}/api/v1/projects"
            load(ours_url, 2, token)  # warm-up
            for url in bare.values():
                load(url, 2, None)
            ours: list[float] = []
            base: dict[str, list[float]] = {name: [] for name in bare}
            for _ in range(args.rounds):
                ours.append(load(ours_url, args.seconds, token))
                for name, url in bare.items():
                    base[name].append(load(url, args.seconds, None))
            loaded_rss = daemon.rss_mb()
        finally:
            daemon.stop()
            if baseline is not None:
                baseline.terminate()
                baseline.wait(10)
        fresh, existing = startup_times(workdir, 5)
    median = statistics.median
    figures = {
        "client": client,
        "dployr_rps": round(median(ours)),
        "json_response_rps": round(median(base["json_response"])),
        "bytes_rps": round(median(base["bytes"])),
        "ratio": round(median(ours) / median(base["json_response"]), 3),
        "ratio_bytes": round(median(ours) / median(base["bytes"]), 3),
        "ratios_per_round": [
            round(a / b, 3) for a, b in zip(ours, base["json_response"], strict=True)
        ],
        "engine_answers": engine,
        "idle_rss_mb": round(idle_rss, 1),
        "rss_after_load_mb": round(loaded_rss, 1),
        "startup_fresh_s": round(median(fresh), 3),
        "startup_existing_s": round(median(existing), 3),
    }
    print(f"GET /api/v1/projects (20 items, JWT) with {client}, {args.rounds} x {args.seconds} s")
    print(f"  dployr         {figures['dployr_rps']:>8} req/s")
    print(f"  json_response  {figures['json_response_rps']:>8} req/s   (bare aiohttp handler)")
    print(f"  bytes          {figures['bytes_rps']:>8} req/s   (bare handler, pre-serialised)")
    print(f"  ratio to json_response {figures['ratio']:>6}   (goal >= 0.5)")
    print(f"  ratio to bytes         {figures['ratio_bytes']:>6}")
    answers = "a Docker engine answers" if engine else "NO Docker engine answers"
    print(f"idle RSS          {figures['idle_rss_mb']} MB (goal <= 60 MB; {answers})")
    print(f"RSS after load    {figures['rss_after_load_mb']} MB")
    print(
        f"start-up to /health: fresh data dir {figures['startup_fresh_s']} s, "
        f"existing {figures['startup_existing_s']} s (goal < 1 s)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
