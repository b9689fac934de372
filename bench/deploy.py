"""Deploy figures: POST /deployments → live against the same steps by hand, rollback time, the
daemon's RSS with 10 services deployed, and the dependency layer's cache for a python app.

A real `dployr serve` and the real Docker engine; the app is FROM busybox:stable (built by
scripts/provision) in a local git repo. Rounds alternate agent and by-hand, each after a new
commit, so both use their caches as in real life (the agent its cached clone, both the
engine's layer cache). The python app (the python runtime's template, python:3.11-slim from
scripts/provision) installs flask and requests from PyPI: a first deploy, then a one-line code
change, whose build should take its installed requirements from the engine's cache."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import Daemon, free_port  # noqa: E402

DOCKERFILE = (
    "FROM busybox:stable\nWORKDIR /app\nCOPY . /app\n"
    'CMD ["/bin/sh", "-c", "httpd -f -p \\"$PORT\\" -h /app"]\n'
)
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
# A few real PyPI packages with their dependencies (11 distributions in all).
REQUIREMENTS = "flask==3.0.3\nrequests==2.32.3\n"
FLASK_APP = """\
import os

import flask
import requests

app = flask.Flask(__name__)


@app.get("/")
def hello():
    return "{text} with flask " + flask.__version__ + " and requests " + requests.__version__


app.run(host="0.0.0.0", port=int(os.environ["PORT"]))
"""


def wait_page(port: int, expected: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
                if resp.read().decode() == expected:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"port {port} never served {expected!r}")


def deploy(
    daemon: Daemon, name: str, repo: Path, runtime: str = "static", **extra: Any
) -> tuple[float, dict[str, Any]]:
    body = {"name": name, "source": "local", "path": str(repo), "branch": "main",
            "runtime": runtime, "port": 8080,
            "health_check": {"path": "/", "timeout": 30}, **extra}  # fmt: skip
    started = time.perf_counter()
    created = daemon.call("POST", "/api/v1/deployments", body)
    live = daemon.wait_live(created["id"], limit=600)
    return time.perf_counter() - started, live


def by_hand(repo: Path, work: Path, tag: str, expected: str) -> float:
    """git clone + docker build + docker run + wait for the page: the same steps by hand."""
    started = time.perf_counter()
    clone = work / f"clone-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True)  # fmt: skip
    (clone / "Dockerfile").write_text(DOCKERFILE)
    subprocess.run(["docker", "build", "-q", "-t", tag, str(clone)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    port = free_port()
    run = ["docker", "run", "-d", "--init", "--label", "dployr.bench=1", "-e", "PORT=8080",
           "-p", f"127.0.0.1:{port}:8080", tag]  # fmt: skip
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)
    wait_page(port, expected)
    return time.perf_counter() - started


def commit(repo: Path, text: str) -> None:
    (repo / "index.html").write_text(text)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", text.strip()], check=True)


def stage_seconds(deployment: dict[str, Any], name: str) -> float:
    """From the poll that first saw the stage running to the one that first saw it done."""
    seen = deployment["seen"]
    return float(seen[(name, "done")] - seen[(name, "running")])


def install_cached(log: str) -> bool:
    """Whether the step after the manifests' COPY (the install) said `Using cache`."""
    steps: list[list[Any]] = []
    for line in log.splitlines():
        if line.strip().startswith("Step "):
            steps.append([line, False])
        elif line.strip() == "---> Using cache" and steps:
            steps[-1][1] = True
    at = [i for i, (line, _) in enumerate(steps) if "COPY .dployr.Dockerfil" in line]
    return bool(at) and bool(steps[at[0] + 1][1])


def python_dependencies(daemon: Daemon, work: Path) -> None:
    """First deploy of a flask app, then a one-line code change: both build times."""
    repo = work / "flask"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    # A nonce in the manifest: the first build installs for real whatever the engine cached.
    (repo / "requirements.txt").write_text(f"# bench {uuid.uuid4().hex}\n{REQUIREMENTS}")
    (repo / "app.py").write_text(FLASK_APP.format(text="first"))
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "first"], check=True)
    figures = []
    for text in ("first", "second"):
        if text == "second":
            (repo / "app.py").write_text(FLASK_APP.format(text=text))
            subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", text], check=True)
        seconds, live = deploy(daemon, "bench-flask", repo, "python", version="3.11")
        log = daemon.log(live["id"])
        wait_page(live["host_port"], f"{text} with flask 3.0.3 and requests 2.32.3")
        figures.append((stage_seconds(live, "building"), seconds, log))
    (first, first_live, first_log), (second, second_live, second_log) = figures
    if "Successfully installed" not in first_log or install_cached(first_log):
        raise RuntimeError(f"the first build did not install: {first_log[-2000:]}")
    cached = install_cached(second_log) and "Successfully installed" not in second_log
    print(f"python app with flask + requests from PyPI: first build {first:.2f} s"
          f" (to live {first_live:.2f} s); after a one-line code change {second:.2f} s"
          f" (to live {second_live:.2f} s); build ratio {second / first:.1%} (goal <= 25 %);"
          f" dependencies from the cache: {'yes' if cached else 'NO'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--only", choices=["static", "python"], help="run one part only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dployr-bench-"))
    repo = work / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "index.html").write_text("v0\n")
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "v0"], check=True)
    daemon = Daemon(
        work / "data",
        {
            "RUNTIME_ALLOW_LOCAL_SOURCES": "true",
            "RUNTIME_DRAIN_SECONDS": "0",
            "RUNTIME_KEEP_RELEASES": "20",
            "PROXY_BACKEND": "none",  # the deploy alone (bench/switch.py measures the proxy)
        },
    )
    daemon.login()
    try:
        if args.only != "python":
            static(daemon, repo, work, args.rounds, args.services)
        if args.only != "static":
            python_dependencies(daemon, work)
    finally:
        cleanup(daemon, work)


def static(daemon: Daemon, repo: Path, work: Path, rounds: int, services: int) -> None:
    first, live = deploy(daemon, "bench", repo)
    print(f"first deploy (cold clone, build, run): {first:.2f} s")
    agent, hand, history = [], [], [live]
    for n in range(1, rounds + 1):
        commit(repo, f"v{n}\n")
        hand.append(by_hand(repo, work, f"dployr-bench/byhand:{n}", f"v{n}\n"))
        seconds, live = deploy(daemon, "bench", repo)
        agent.append(seconds)
        history.append(live)
        print(f"round {n}: agent {seconds:.2f} s, by hand {hand[-1]:.2f} s,"
              f" ratio {seconds / hand[-1]:.2f}")  # fmt: skip
    ratio = statistics.median(agent) / statistics.median(hand)
    print(f"redeploy to live: agent median {statistics.median(agent):.2f} s, by hand median"
          f" {statistics.median(hand):.2f} s, ratio {ratio:.2f} (goal <= 1.3)")  # fmt: skip

    rollbacks = []
    for target in history[-4:-1]:
        started = time.perf_counter()
        created = daemon.call("POST", f"/api/v1/deployments/{target['id']}/rollback")
        daemon.wait_live(created["id"])
        rollbacks.append(time.perf_counter() - started)
    print("rollback to live: " + ", ".join(f"{r:.2f}" for r in rollbacks)
          + f" s; median {statistics.median(rollbacks):.2f} s (goal <= 3 s)")  # fmt: skip

    for i in range(services - 1):
        deploy(daemon, f"bench-r{i}", repo)
    time.sleep(1)
    print(f"daemon RSS with {services} services deployed: {daemon.rss_mb():.1f} MB"
          " (goal <= 80 MB)")  # fmt: skip


def cleanup(daemon: Daemon, work: Path) -> None:
    try:
        for service in daemon.call("GET", "/api/v1/services?per_page=100")["items"]:
            daemon.call("DELETE", f"/api/v1/services/{service['id']}")
    except (OSError, urllib.error.URLError) as err:
        print(f"cleanup through the API failed: {err}", file=sys.stderr)
    daemon.stop()
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=dployr.bench=1"],
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    agent_file = daemon.data_dir / "agent_id"
    if agent_file.exists():
        label = f"label=dployr.agent={agent_file.read_text().strip()}"
        ids += subprocess.run(["docker", "ps", "-aq", "--filter", label],
                              capture_output=True, text=True).stdout.split()  # fmt: skip
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    images = subprocess.run(["docker", "images", "-q", "dployr-bench/byhand"],
                            capture_output=True, text=True).stdout.split()  # fmt: skip
    if images:
        subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True)
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
