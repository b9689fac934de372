"""install.sh figures: time from `curl … | sh` to /health/ready in a VPS in a box, and the
daemon's memory under systemd (VmRSS of its main process, and the unit's MemoryCurrent).

Each round boots a fresh box (tests/box/vps.py; the image from scripts/provision already has
python3-venv, git and curl, i.e. the Debian packages are cached), serves the checkout's wheel
and install.sh from a loopback HTTP server, and times
`curl -fsSL …/install.sh | sh -s -- --source …whl --no-docker --no-caddy --port P` until the
host gets 200 from /health/ready. pip fetches every dependency from PyPI in every round (this
network's answers are not kept by pip's HTTP cache). The box has the host's Docker socket, as a
host with Docker would.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.box.vps import (  # noqa: E402 (the checkout's tests package, after sys.path)
    Box,
    Files,
    build_wheel,
    free_port,
    image_exists,
    remove_boxes,
    serve_directory,
)


def ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health/ready", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def memory(box: Box) -> tuple[float, float]:
    """(VmRSS of the daemon's main process, the unit's MemoryCurrent), in MB."""
    pid = box.exec("systemctl", "show", "-p", "MainPID", "--value", "dployr").stdout.strip()
    status = box.exec("cat", f"/proc/{pid}/status").stdout
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    current = box.exec("systemctl", "show", "-p", "MemoryCurrent", "--value", "dployr").stdout
    unit_bytes = int(current) if current.strip().isdigit() else 0
    return rss_kb / 1024, unit_bytes / 1e6


def one_round(files: Files, session: str) -> tuple[float, float, float]:
    box = Box(session=session)
    try:
        box.start(docker_socket=True)
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        command = files.install_command("--no-docker", "--no-caddy", "--port", str(port))
        started = time.monotonic()
        done = box.sh(command, timeout=600, check=False)
        deadline = started + 600
        while not ready(api) and time.monotonic() < deadline:
            time.sleep(0.1)
        seconds = time.monotonic() - started
        if done.returncode != 0 or not ready(api):
            raise SystemExit(f"install failed:\n{done.stdout}\n{done.stderr}")
        time.sleep(5)  # idle, after start-up
        rss, unit = memory(box)
        return seconds, rss, unit
    finally:
        box.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each in a fresh box")
    args = parser.parse_args()
    if not image_exists():
        raise SystemExit("the box image is missing: run scripts/provision as root")
    session = f"bench{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        wheel = build_wheel(ROOT, served)
        (served / "install.sh").write_bytes((ROOT / "install.sh").read_bytes())
        results = []
        try:
            with serve_directory(served) as url:
                files = Files(url, served, wheel.name)
                for n in range(args.rounds):
                    seconds, rss, unit = one_round(files, session)
                    print(
                        f"round {n + 1}: curl | sh → /health/ready {seconds:.1f} s; "
                        f"RSS {rss:.1f} MB, unit MemoryCurrent {unit:.1f} MB",
                        flush=True,
                    )
                    results.append((seconds, rss, unit))
        finally:
            remove_boxes(session)
    times = [r[0] for r in results]
    print(
        f"install → ready: median {statistics.median(times):.1f} s, max {max(times):.1f} s"
        f" (goal < 60 s); daemon RSS median {statistics.median(r[1] for r in results):.1f} MB"
        f" (goal ≤ 60 MB)"
    )


if __name__ == "__main__":
    main()
