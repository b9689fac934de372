"""The targets registry: what `auto` picks, what /health/ready says, what a deployment may ask."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dployr.config import Config, RuntimeConfig
from dployr.errors import Forbidden, Unavailable, ValidationError
from dployr.runtime.targets import Targets


class Fake:
    """A target's registry-facing side only (the registry asks nothing else)."""

    def __init__(
        self, name: str, problem: str | None, *, late: bool = False, as_root: bool = False
    ) -> None:
        self.name, self._problem, self.late, self._as_root = name, problem, late, as_root

    async def problem(self) -> str | None:
        return self._problem

    def runtimes(self) -> tuple[str, ...]:
        return ("python", "nodejs")

    def admins_only(self) -> str | None:
        return "it runs apps as root" if self._as_root else None

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        return version or f"{self.name}-default"


def registry(default: str, *targets: Fake) -> Targets:
    config = dataclasses.replace(Config(), runtime=RuntimeConfig(default_target=default))
    built: Any = list(targets)
    return Targets(config, built)


async def test_auto_picks_docker_then_systemd_then_process():
    both = registry("auto", Fake("process", None), Fake("systemd", None), Fake("docker", None))
    assert await both.available() == ["docker", "systemd", "process"]
    assert await both.default() == "docker"
    no_engine = registry("auto", Fake("docker", "no engine", late=True), Fake("process", None))
    assert await no_engine.default() == "process"
    assert await no_engine.readiness_problem() is None


async def test_readiness_names_every_target_that_cannot_run():
    none = registry("auto", Fake("docker", "no engine", late=True), Fake("systemd", "not PID 1"))
    assert await none.default() is None
    said = await none.readiness_problem()
    assert said == "docker: no engine; systemd: not PID 1"
    with pytest.raises(Unavailable, match="no engine"):
        await none.default_for_request()


async def test_a_configured_target_this_version_lacks_is_named():
    targets = registry("swarm", Fake("docker", None))
    assert await targets.default() is None
    assert "swarm target is not available" in (await targets.readiness_problem() or "")
    with pytest.raises(Unavailable, match="default_target is 'swarm'"):
        await targets.default_for_request()


async def test_a_deployment_names_a_target_that_runs_its_runtime_here():
    targets = registry(
        "auto", Fake("docker", "no engine", late=True), Fake("systemd", "systemd is not PID 1")
    )
    with pytest.raises(ValidationError) as unknown:
        await targets.check("swarm", "python", None, admin=False)
    assert unknown.value.details["field"] == "target"
    with pytest.raises(ValidationError) as runtime:
        await targets.check("docker", "go", None, admin=False)
    assert runtime.value.details["field"] == "runtime"
    with pytest.raises(ValidationError, match="not PID 1") as down:
        await targets.check("systemd", "python", None, admin=False)
    assert down.value.details["field"] == "target"
    # An engine that may start later takes the deployment (it waits queued for it).
    assert await targets.check("docker", "python", None, admin=False) == "docker-default"
    assert await targets.check("docker", "python", "3.12", admin=False) == "3.12"


async def test_a_target_that_runs_apps_as_root_is_for_admins():
    targets = registry("auto", Fake("process", None, as_root=True))
    with pytest.raises(Forbidden, match="runs apps as root") as refused:
        await targets.check("process", "python", None, admin=False)
    assert refused.value.details["field"] == "target"
    assert await targets.check("process", "python", None, admin=True) == "process-default"
