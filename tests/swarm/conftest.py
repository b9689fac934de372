"""A one-node Swarm for the swarm tests: the engine's own when it is a manager already (left as
it is), else one made with `docker swarm init` and left at the end. Everything a test makes on
it carries the `dployr.test` label and its agent's, and is removed afterwards."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import missing
from tests.docker.conftest import (  # noqa: F401 - fixtures
    auth,
    data_dir,
    dclient,
    docker_engine,
    engine_answers,
)
from tests.integration.conftest import deploy_daemon, empty_config  # noqa: F401 - fixtures

TEST_LABEL = "dployr.test"


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def swarm_state() -> tuple[str, bool]:
    """(LocalNodeState, whether this node is a manager)."""
    info = json.loads(docker("info", "--format", "{{json .Swarm}}"))
    return str(info.get("LocalNodeState")), bool(info.get("ControlAvailable"))


@pytest.fixture(scope="session")
def swarm() -> Iterator[None]:
    if not engine_answers():
        missing("no Docker engine answers", "scripts/provision starts one")
    state, manager = swarm_state()
    made = False
    if state == "inactive":
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        made = True
    elif state != "active" or not manager:
        missing(f"the engine is a swarm {state} node, not a manager", "docker swarm leave")
    try:
        yield
    finally:
        if made:
            docker("swarm", "leave", "--force")


@dataclass
class Stage:
    """Names unique to one test, the labels that find them again, and their removal."""

    agent: str
    test: str

    @classmethod
    def create(cls) -> Stage:
        suffix = secrets.token_hex(4)
        return cls(agent=f"agt_test{suffix}", test=f"swarm-{suffix}")

    @property
    def labels(self) -> list[str]:
        return ["--label", f"{TEST_LABEL}={self.test}", "--label", f"dployr.agent={self.agent}"]

    def network(self, name: str) -> str:
        docker("network", "create", "-d", "overlay", "--attachable", *self.labels, name)
        return name

    def service(self, name: str, *args: str) -> str:
        docker("service", "create", "-d", "--name", name, *self.labels,
               "--container-label", f"{TEST_LABEL}={self.test}", *args)  # fmt: skip
        return name

    def clean(self) -> None:
        """Services first (by either label: the proxy carries only the agent's), then the
        networks once their tasks have left them."""
        for label in (f"{TEST_LABEL}={self.test}", f"dployr.agent={self.agent}"):
            found = docker("service", "ls", "-q", "--filter", f"label={label}").split()
            if found:
                docker("service", "rm", *found, check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = docker("network", "ls", "-q", "--filter", f"label={TEST_LABEL}={self.test}")
            if not left:
                return
            docker("network", "rm", *left.split(), check=False)
            time.sleep(0.5)
        raise AssertionError(f"networks of {self.test} are still there: {left}")


@pytest.fixture
def stage(swarm: None, docker_engine: None) -> Iterator[Stage]:  # noqa: F811
    made = Stage.create()
    try:
        yield made
    finally:
        made.clean()
