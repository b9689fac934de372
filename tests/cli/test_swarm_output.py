"""How the CLI shows a swarm service's tasks (SPEC §15): `2/3 running` where the API gives
`replicas`, and nothing more for the other targets. Pure output: no daemon."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from dployr.cli import services, status
from dployr.cli.output import show_object

RUNNING = {"status": "running", "host_port": None, "container_id": "svc-1", "started_at": None,
           "restarts": 0, "health": None}  # fmt: skip


def _overview(*listed: dict[str, Any]) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:7870", "ready": {"status": "ok"}, "info": {},
            "instance": None, "now": None, "services": list(listed),
            "services_total": len(listed), "routes": [], "routes_total": 0,
            "last_deployments": {}}  # fmt: skip


def _service(name: str, target: str, tasks: dict[str, int] | None) -> dict[str, Any]:
    return {"id": f"svc_{name}", "name": name, "status": "running", "target": target,
            "host_port": None, "current_deployment": None,
            "replicas": tasks and tasks["desired"], "tasks": tasks}  # fmt: skip


def test_status_has_a_tasks_column_once_a_service_has_tasks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(json=False)
    status.show(args, _overview(_service("web", "docker", None)))
    assert "TASKS" not in capsys.readouterr().out
    swarm = _service("api", "swarm", {"running": 2, "desired": 3})
    status.show(args, _overview(_service("web", "docker", None), swarm))
    out = capsys.readouterr().out
    assert "TASKS" in out and "2/3" in out


def test_services_status_says_how_many_tasks_run(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(json=False)
    show_object(args, RUNNING, services.status_fields(RUNNING))
    assert "replicas" not in capsys.readouterr().out
    swarm = {**RUNNING, "replicas": {"running": 1, "desired": 3}}
    show_object(args, swarm, services.status_fields(swarm))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["status", "running"]
    assert lines[1].split() == ["replicas", "1/3", "running"]
