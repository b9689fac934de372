"""CLI figures: the start-up time of `dployr --help` against `python -c pass` and `dployr
--version`, and `dployr services ls` against a local daemon against a raw urllib GET of
/api/v1/services, each the median of interleaved runs of fresh processes in the same run.

The daemon is a real `dployr serve` (temp data dir, proxy none) holding --services services,
each made by one deployment of a local path that does not exist: the first deployment of a
name creates the service row, then fails while fetching (no build, no engine work).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.daemon import Daemon  # noqa: E402

# The baseline: what any Python client pays for the same GET (interpreter, urllib, JSON).
RAW_GET = """
import json, os, urllib.request
request = urllib.request.Request(os.environ["DPLOYR_URL"] + "/api/v1/services?per_page=50")
request.add_header("Authorization", "Bearer " + os.environ["DPLOYR_TOKEN"])
with urllib.request.urlopen(request, timeout=30) as response:
    json.loads(response.read())
"""


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and the CPU seconds (user + system) the process used: on a machine busy
    with other work the wall time includes waiting for a core, the CPU time does not."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True, timeout=60)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rounds(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each command, run in turn (A, B, C, A, B, C, …) so a
    busy moment of the machine weighs on all of them alike; one warm-up round first."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            wall, cpu = timed(argv, env)
            if round_:
                walls[name].append(wall)
                cpus[name].append(cpu)
    median = statistics.median
    return {name: (median(walls[name]), median(cpus[name])) for name in commands}


def make_services(daemon: Daemon, count: int, missing: Path) -> None:
    for i in range(count):
        daemon.call("POST", "/api/v1/deployments", {
            "name": f"app-{i:02d}", "source": "local", "path": str(missing),
            "runtime": "python", "target": "process",
        })  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = daemon.call("GET", "/api/v1/deployments?per_page=100")
        if all(d["status"] == "failed" for d in page["items"]):
            return
        time.sleep(0.1)
    raise RuntimeError("the deployments did not fail in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (median)")
    parser.add_argument("--services", type=int, default=10, help="services the daemon holds")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="dployr-bench-cli-") as tmp:
        # No cli.toml and no DPLOYR_* but ours: the figures do not depend on who runs them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DPLOYR_")}
        env["XDG_CONFIG_HOME"] = str(Path(tmp) / "home")
        # Bytecode as an installed package has it (pip compiles it): with
        # PYTHONDONTWRITEBYTECODE (set on this machine) every start would compile every module
        # from source again. The warm-up round writes it, outside the work tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        startup = rounds(
            {
                "python -c pass": [python, "-c", "pass"],
                "dployr --version": [python, "-m", "dployr", "--version"],
                "dployr --help": [python, "-m", "dployr", "--help"],
            },
            env,
            args.runs,
        )
        daemon = Daemon(
            Path(tmp) / "data",
            {"PROXY_BACKEND": "none", "RUNTIME_ALLOW_LOCAL_SOURCES": "true"},
        )
        try:
            token = daemon.login()
            make_services(daemon, args.services, Path(tmp) / "missing")
            client_env = {**env, "DPLOYR_URL": daemon.url, "DPLOYR_TOKEN": token}
            dployr = [python, "-m", "dployr"]
            commands = {
                "urllib GET": [python, "-c", RAW_GET],
                "dployr services ls": [*dployr, "services", "ls"],
                "dployr services ls --json": [*dployr, "services", "ls", "--json"],
                "dployr status": [*dployr, "status"],
            }
            listing = rounds(commands, client_env, args.runs)
        finally:
            daemon.stop()
    both = {**startup, **listing}
    ms = {name: round(wall * 1000, 1) for name, (wall, _) in both.items()}
    cpu_ms = {name: round(cpu * 1000, 1) for name, (_, cpu) in both.items()}
    figures = {
        "runs": args.runs,
        "services": args.services,
        "load_1": round(os.getloadavg()[0], 2),
        "wall_ms": ms,
        "cpu_ms": cpu_ms,
        "help_over_python": round(ms["dployr --help"] / ms["python -c pass"], 2),
        "ls_over_urllib": round(ms["dployr services ls"] / ms["urllib GET"], 2),
    }
    notes = {
        "dployr --help": "(goal < 150 ms)",
        "dployr services ls": "(goal < 300 ms)",
        "urllib GET": "(GET /api/v1/services, a bare Python client)",
        "dployr status": "(6 calls, 5 at once)",
    }
    print(
        f"median of {args.runs} fresh processes, {args.services} services on a local daemon; "
        f"load average {figures['load_1']} on {os.cpu_count()} CPUs"
    )
    print(f"  {'':<28} {'wall ms':>8} {'CPU ms':>8}")
    for name in both:
        print(f"  {name:<28} {ms[name]:>8} {cpu_ms[name]:>8}   {notes.get(name, '')}")
    print(f"  --help / python -c pass      {figures['help_over_python']:>8}")
    print(f"  services ls / urllib GET     {figures['ls_over_urllib']:>8}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
