"""Managed databases through the API (issue 15), on a real `dployr serve` and the real engine:

- POST /databases → `running`, for each engine (3 rounds, each a new database: a first start);
- the daemon's RSS with three databases (one of each engine) and ten services running.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import Daemon  # noqa: E402

ENGINES = ("postgres", "redis", "mariadb")
SERVE = 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p "$PORT" -h /www'


def wait_running(daemon: Daemon, database_id: str, limit: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        body = daemon.call("GET", f"/api/v1/databases/{database_id}")
        if body["status"] == "running":
            return dict(body)
        if body["status"] == "failed":
            raise RuntimeError(f"database failed: {body['error']}")
        time.sleep(0.02)
    raise RuntimeError(f"{database_id} not running in {limit} s")


def create_to_running(daemon: Daemon, name: str, engine: str) -> tuple[float, str]:
    started = time.perf_counter()
    made = daemon.call("POST", "/api/v1/databases", {"name": name, "engine": engine})
    wait_running(daemon, made["id"])
    return time.perf_counter() - started, str(made["id"])


def wait_live(daemon: Daemon, deployment_id: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        body = daemon.call("GET", f"/api/v1/deployments/{deployment_id}")
        if body["status"] == "live":
            return
        if body["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"deployment {deployment_id} {body['status']}: {body['error']}")
        time.sleep(0.05)
    raise RuntimeError(f"{deployment_id} not live in {limit} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dployr-bench-stateful-"))
    daemon = Daemon(work / "data", {"PROXY_BACKEND": "none", "METRICS_INTERVAL": "10"})
    try:
        daemon.login()
        for engine in ENGINES:
            times = []
            for n in range(args.rounds):
                seconds, database_id = create_to_running(daemon, f"b-{engine}-{n}", engine)
                times.append(seconds)
                daemon.call("DELETE", f"/api/v1/databases/{database_id}")
            print(f"{engine}: POST → running " + ", ".join(f"{t:.2f}" for t in times)
                  + f" s; median {statistics.median(times):.2f} s")  # fmt: skip
        for engine in ENGINES:
            create_to_running(daemon, f"kept-{engine}", engine)
        for i in range(args.services):
            body = {"name": f"svc-{i}", "source": "image", "runtime": "image",
                    "image": "busybox:stable", "run_cmd": SERVE, "port": 8080}  # fmt: skip
            wait_live(daemon, daemon.call("POST", "/api/v1/deployments", body)["id"])
        time.sleep(12)  # a round of every periodic job (samples, the databases' watch)
        print(f"daemon RSS with 3 databases and {args.services} services: "
              f"{daemon.rss_mb():.1f} MB (goal <= 80 MB)")  # fmt: skip
    finally:
        cleanup(daemon, work)


def cleanup(daemon: Daemon, work: Path) -> None:
    daemon.stop()
    agent_file = daemon.data_dir / "agent_id"
    if agent_file.exists():
        label = f"label=dployr.agent={agent_file.read_text().strip()}"
        for kind, listing in (("container", ["ps", "-aq"]), ("volume", ["volume", "ls", "-q"]),
                              ("network", ["network", "ls", "-q"])):  # fmt: skip
            found = subprocess.run(["docker", *listing, "--filter", label],
                                   capture_output=True, text=True).stdout.split()  # fmt: skip
            if found:
                remove = ["rm", "-f"] if kind == "container" else [kind, "rm"]
                subprocess.run(["docker", *remove, *found], capture_output=True)
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
