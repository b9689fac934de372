"""`dployr instances ls|metrics`, `services metrics` and `status` against a live daemon that
samples the host every second."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator

import pytest

from dployr.cli import metrics
from dployr.cli.charts import BLOCKS
from dployr.cli.status import host_lines
from tests.cli.conftest import Cli, _start
from tests.integration.conftest import dployr_command, free_port


@pytest.fixture(scope="module")
def sampling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A logged-in CLI and a daemon with one service, `web`: its only deployment (a local
    path that does not exist) failed, so it has a row and no instance, hence no samples."""
    tmp = tmp_path_factory.mktemp("pictures")
    daemon = _start(tmp, DPLOYR_METRICS_INTERVAL="1", DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES="true")
    cli = Cli(daemon, tmp / "home")
    cli.login()
    status, body = daemon.request(
        "POST",
        "/api/v1/deployments",
        {"name": "web", "source": "local", "path": str(tmp / "missing"), "target": "process",
         "runtime": "python"},
        token=daemon.admin_token(),
    )  # fmt: skip
    assert status == 202, body
    route = {"domain": "web.localhost", "service_id": body["service_id"]}
    status, body = daemon.request("POST", "/api/v1/proxy/routes", route, token=daemon.admin_token())
    assert status == 201, body
    try:
        yield cli
    finally:
        daemon.kill()


def _host_series(cli: Cli, points: int) -> dict[str, object]:
    """The last 5 minutes once they hold `points` samples (one a second)."""
    deadline = time.monotonic() + 60
    while True:
        data = json.loads(cli.ok("instances", "metrics", "--since", "5m", "--json"))
        if len(data["series"]) >= points or time.monotonic() > deadline:
            return dict(data)
        time.sleep(0.5)


def test_instances_ls_shows_this_host(sampling: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = sampling.ok("instances", "ls")
    assert out.splitlines()[0].split()[:4] == ["ID", "HOSTNAME", "OS", "CPUS"]
    assert "online" in out and "agt_" in out
    code, out, err = sampling.main("instances", "ls", "--json", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    assert json.loads(out)["items"][0]["id"].startswith("agt_")


def test_instance_metrics_draws_a_sparkline_per_measure(sampling: Cli) -> None:
    data = _host_series(sampling, 3)
    assert len(data["series"]) >= 3  # type: ignore[arg-type]
    out = sampling.ok("instances", "metrics", "--since", "5m")
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    for label in ("CPU", "load", "memory", "disk", "net rx", "net tx"):
        assert any(block in lines[label] for block in BLOCKS), out
        assert "now" in lines[label] and "min" in lines[label] and "max" in lines[label]
    assert "%" in lines["CPU"] and "iB (" in lines["memory"] and "/s" in lines["net rx"]
    assert "60 s" not in out.splitlines()[0]  # 5 minutes: raw samples, 1 s a point
    assert len(max(out.splitlines(), key=len)) <= 200  # fitted to COLUMNS


def test_on_a_terminal_the_sparklines_are_in_colour(sampling: Cli) -> None:
    _host_series(sampling, 3)
    primary, secondary = pty.openpty()
    env = {**sampling.env, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        dployr_command("instances", "metrics", "--since", "5m"),
        stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=env,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while process.poll() is None or select.select([primary], [], [], 0.2)[0]:
        if time.monotonic() > deadline:
            break
        if select.select([primary], [], [], 0.2)[0]:
            try:
                seen += os.read(primary, 65536)
            except OSError:  # the other end closed
                break
    os.close(primary)
    assert process.wait(30) == 0, seen
    text = seen.decode("utf-8", "replace")
    assert "\x1b[" in text and "\x1b[1mCPU" in text  # bold labels, coloured lines (rich)
    assert any(block in text for block in BLOCKS)


def test_instance_metrics_by_id_and_step_through_main(
    sampling: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident = json.loads(sampling.ok("instances", "ls", "--json"))["items"][0]["id"]
    code, out, err = sampling.main(
        "instances", "metrics", ident, "--since", "10m", "--step", "30", "--json",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(out)["step"] == 30
    done = sampling.run("instances", "metrics", "agt_nope")
    assert done.returncode == 1 and "check the name or id" in done.stderr
    done = sampling.run("instances", "metrics", "--since", "soon")
    assert done.returncode == 2 and "not a span of time: 'soon'" in done.stderr


def test_service_metrics_without_samples_says_so(
    sampling: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = sampling.ok("services", "metrics", "web", "--since", "30m")
    assert out.splitlines()[0].startswith("web (svc_")
    assert "no samples yet" in out and "Traceback" not in out
    assert "not sampled per service" not in out  # the network has rows now
    code, out, err = sampling.main("services", "metrics", "web", "--json", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["service_id"].startswith("svc_") and data["series"] == []
    done = sampling.run("services", "metrics", "nope")
    assert done.returncode == 1 and "no service named 'nope'" in done.stderr


def test_service_metrics_draws_network_rows_blank_where_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The API's answer for a container (rates known after its first sample) drawn as the
    # command draws it; a process service's rates are all null.
    series = [{"timestamp": f"2026-01-01T00:00:{s:02d}Z", "cpu_percent": 1.0,
               "memory_bytes": 2048.0, "restarts": 0,
               "net_rx_bps": None if s == 0 else 1000.0 * s, "net_tx_bps": None if s == 0 else 50.0}
              for s in range(10)]  # fmt: skip
    data = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:09Z", "step": 1,
            "series": series, "current": series[-1]}  # fmt: skip
    metrics.draw("web", data, metrics.SERVICE_ROWS)
    lines = {line.split("  ")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert any(block in lines["net rx"] for block in BLOCKS)
    assert "now 8.8 KiB/s" in " ".join(lines["net rx"].split()) and "/s" in lines["net tx"]
    unknown = [dict(p, net_rx_bps=None, net_tx_bps=None) for p in series]
    metrics.draw("job", dict(data, series=unknown, current=unknown[-1]), metrics.SERVICE_ROWS)
    lines = {line.split("  ")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert " ".join(lines["net tx"].split()).endswith("now - min - max -")
    assert not any(block in lines["net tx"] for block in BLOCKS)


def test_metrics_of_a_down_daemon_is_one_line_and_exit_3(sampling: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = sampling.run("instances", "metrics", "--url", url, "--token", "x")
    assert done.returncode == 3 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("dployr: cannot reach the dployr daemon")


def _last_failed(cli: Cli) -> None:
    """Until web's deployment has failed (the path is missing: it fails while fetching)."""
    deadline = time.monotonic() + 60
    while True:
        overview = json.loads(cli.ok("status", "--json"))
        statuses = [d["status"] for d in overview["last_deployments"].values()]
        if statuses == ["failed"] or time.monotonic() > deadline:
            return
        time.sleep(0.3)


def test_status_is_one_screen_of_host_services_routes_and_deployments(sampling: Cli) -> None:
    _last_failed(sampling)
    out = sampling.ok("status")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["host", "ready", "now", "agent"]
    assert sampling.daemon.url in lines[0]
    assert lines[1].startswith("ready   ")  # proxy none, process target: ready or says why
    assert "CPU" in lines[2] and "memory" in lines[2] and "disk" in lines[2]
    assert "proxy none" in lines[3]
    web = next(line for line in lines if line.startswith("web "))
    assert web.split()[:3] == ["web", "stopped", "process"]
    assert "#1 failed" in web and "ago" in web
    assert "ROUTES (1)" in out
    assert any(line.split()[:3] == ["web.localhost", "/", "web"] for line in lines)


def test_status_json_is_one_object_from_the_api(
    sampling: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = sampling.main("status", "--json", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    overview = json.loads(out)
    assert set(overview) == {"url", "ready", "info", "instance", "now", "services",
                             "services_total", "routes", "routes_total",
                             "last_deployments"}  # fmt: skip
    (web,) = overview["services"]
    assert overview["last_deployments"][web["id"]]["service_name"] == "web"
    assert overview["routes"][0]["domain"] == "web.localhost"
    assert overview["instance"]["id"].startswith("agt_") and overview["now"]["cpu_percent"] >= 0
    assert overview["ready"]["checks"]["database"] == "ok"


def test_status_of_a_down_daemon_is_one_line_and_exit_3(
    sampling: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = sampling.run("status", "--url", url, "--token", "x")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"dployr: cannot reach the dployr daemon at {url}")
    code, _, err = sampling.main("status", "--url", url, "--token", "x", monkeypatch=monkeypatch)
    assert code == 3 and err.count("\n") == 1


def test_status_says_what_is_not_ready() -> None:
    overview = {
        "url": "http://127.0.0.1:7870",
        "ready": {"status": "unavailable",
                  "checks": {"database": "ok", "runtime": "docker does not answer",
                             "proxy": "ok"}},
        "info": {"version": "0.1.0", "proxy": "caddy", "targets": ["process"]},
        "instance": None,
        "now": None,
    }  # fmt: skip
    lines = dict(host_lines(overview))
    assert lines["ready"] == "NO: runtime: docker does not answer"
    assert lines["now"] == "CPU - · memory - of - (-) · disk - of - (-)"
    assert lines["agent"] == "dployr 0.1.0 · docker - · proxy caddy · targets process"
