"""Fixtures for tests in a VPS in a box (tests/box/vps.py): `box_session`, `box`, `new_box`,
`install_files` (install.sh and the session's `wheel`, tests/conftest.py, served on loopback, for
`run_install`).

A test that needs a booted Debian with systemd as PID 1 takes `box` (one fresh box per test,
removed afterwards) or `new_box` (a factory, for several boxes or a box with the host's Docker
socket: `new_box(docker_socket=True)`). Boxes share the host's network: whatever listens inside
must take a port from `free_port()`, never a fixed one. In CI (CI set) these tests fail when
Docker or the image is missing; elsewhere they skip.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.box.vps import (
    IMAGE,
    Box,
    Files,
    docker_answers,
    image_exists,
    remove_boxes,
    serve_directory,
)
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def box_session() -> Iterator[str]:
    """This session's box label; the session's boxes are removed at its end, and stopped boxes
    left by earlier runs at its start."""
    if not docker_answers():
        missing(
            "no Docker engine answers",
            "CI must run the box tests: scripts/provision builds the image",
        )
    if not image_exists():
        missing(
            f"the box image {IMAGE} is missing: run scripts/provision as root",
            "CI must run the box tests: scripts/provision builds the image",
        )
    session = uuid.uuid4().hex[:12]
    remove_boxes()
    yield session
    remove_boxes(session)


@pytest.fixture
def new_box(box_session: str) -> Iterator[Callable[..., Box]]:
    """A factory: `new_box(docker_socket=False)` boots a box; all are removed after the test."""
    made: list[Box] = []

    def make(*, docker_socket: bool = False) -> Box:
        box = Box(session=box_session)
        made.append(box)
        return box.start(docker_socket=docker_socket)

    yield make
    for box in made:
        box.remove()


@pytest.fixture
def box(new_box: Callable[..., Box]) -> Box:
    """One booted box, removed after the test."""
    return new_box()


@pytest.fixture(scope="session")
def install_files(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    """install.sh, the wheel and a wheelhouse of its dependencies on a loopback HTTP server,
    for the session. In a box, `run_install(box, install_files, "--no-docker", "--no-caddy",
    "--port", str(free_port()), env=install_files.wheelhouse_env())` installs and starts
    dployr under systemd (without env=, pip takes the dependencies from PyPI)."""
    served = tmp_path_factory.mktemp("served")
    shutil.copy(ROOT / "install.sh", served / "install.sh")
    shutil.copy(wheel, served / wheel.name)
    with serve_directory(served) as url:
        files = Files(url, served, wheel.name)
        files.add_wheelhouse()
        yield files
