"""A release's swarm fields (SPEC §15) through spec_from_body: kept on swarm, left behind when
a change moves the release to another target, refused when a non-swarm body names them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dployr.config import Config, RuntimeConfig
from dployr.errors import ValidationError
from dployr.pipeline.spec import DeploySpec, HealthCheck, spec_from_body
from dployr.runtime.targets import Targets


class Fake:
    """A target's registry-facing side only: every target here runs images."""

    late = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def problem(self) -> str | None:
        return None

    def runtimes(self) -> tuple[str, ...]:
        return ("image",)

    def admins_only(self) -> str | None:
        return None

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        return version


CONFIG = dataclasses.replace(Config(), runtime=RuntimeConfig(default_target="docker"))
built: Any = [Fake("docker"), Fake("swarm")]
TARGETS = Targets(CONFIG, built)
ON_SWARM = DeploySpec(
    source="image",
    runtime="image",
    target="swarm",
    port=8080,
    image="busybox:stable",
    health_check=HealthCheck("/", 60),
    replicas=3,
    placement=["node.labels.tier==web"],
)


async def _spec(body: dict[str, Any], base: DeploySpec | None = ON_SWARM) -> DeploySpec:
    return await spec_from_body(body, CONFIG, TARGETS, "docker", base=base, admin=True)


async def test_a_swarm_release_keeps_its_fields_and_takes_new_ones():
    assert (await _spec({})).replicas == 3
    changed = await _spec({"replicas": 5, "placement": ["node.role!=manager"]})
    assert (changed.replicas, changed.placement) == (5, ["node.role!=manager"])
    assert (await _spec({"replicas": None})).replicas is None  # the service's scale again
    first = {"source": "image", "image": "busybox:stable", "target": "swarm", "replicas": 2}
    made = await _spec(first, base=None)
    assert (made.target, made.replicas, made.placement) == ("swarm", 2, [])


async def test_moving_off_swarm_leaves_the_fields_behind():
    moved = await _spec({"target": "docker"})
    assert (moved.target, moved.replicas, moved.placement) == ("docker", None, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": "docker", "replicas": 2}, "replicas"),
        ({"target": "docker", "placement": ["node.role==worker"]}, "placement"),
    ],
)
async def test_naming_them_for_another_target_is_refused(body: dict[str, Any], field: str):
    with pytest.raises(ValidationError) as err:
        await _spec(body)
    assert err.value.details["field"] == field
    assert "is only for the swarm target (this release runs on docker)" in str(err.value)
