"""What a multi-node swarm would be given, checked on paper (this machine runs one node): the
release's Swarm service spec and the swarm proxy's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dployr.config import Config
from dployr.errors import ValidationError
from dployr.proxy.swarm import _sdk_kwargs
from dployr.runtime.protocol import InstanceSpec, Mount, Resources
from dployr.runtime.swarm import SwarmTarget, split_ref
from dployr.runtime.swarm_names import PROBE, overlay_network, registry_image
from dployr.runtime.swarm_spec import SECOND, memory_bytes, probe, service_spec
from tests.conftest import make_config


def release(**changes: object) -> InstanceSpec:
    values: dict[str, object] = {
        "service_id": "svc_abc",
        "service_name": "web",
        "deployment_id": "dep_1",
        "number": 3,
        "artifact": "registry.example:5000/dployr/svc_abc:3",
        "runtime": "image",
        "port": 8080,
        "host_port": None,
        "env": {"A": "1"},
        "resources": Resources(cpus=0.5, memory="256m"),
        "run_cmd": "exec ./serve",
        "owner_id": "usr_x",
        "volumes": (Mount("data", "/data", "svc_abc"),),
        "replicas": 3,
        "placement": ("node.labels.tier==web", "node.role!=manager"),
        "health_path": "/healthz",
        "health_timeout": 30,
        "start_id": "s1",
    }
    values.update(changes)
    return InstanceSpec(**values)  # type: ignore[arg-type]


def test_a_release_is_a_dnsrr_service_on_its_owners_overlay_with_its_placement() -> None:
    spec = service_spec(release(), "agt_1", "dployr-usr_x")
    assert spec["Name"] == "dployr-svc-abc"
    assert spec["EndpointSpec"] == {"Mode": "dnsrr"}  # no VIP: no IPVS needed
    assert spec["TaskTemplate"]["Networks"] == [{"Target": "dployr-usr_x"}]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.labels.tier==web",
        "node.role!=manager",
    ]
    assert spec["Mode"] == {"Replicated": {"Replicas": 3}}
    assert spec["Labels"] == {
        "dployr.agent": "agt_1", "dployr.service": "svc_abc", "dployr.deployment": "dep_1",
        "dployr.start": "s1",
    }  # fmt: skip
    container = spec["TaskTemplate"]["ContainerSpec"]
    # Every node pulls the registry's image (SPEC §15), by the name the build pushed.
    assert container["Image"] == registry_image("registry.example:5000", "svc_abc", 3)
    assert sorted(container["Env"]) == ["A=1", "PORT=8080"]
    assert container["Command"] == ["/bin/sh", "-c", "exec ./serve"]
    assert container["Mounts"] == [
        {"Type": "volume", "Source": "dployr-svc_abc-data", "Target": "/data"}
    ]
    limits = spec["TaskTemplate"]["Resources"]["Limits"]
    assert limits == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 << 20}


def test_updates_are_start_first_one_at_a_time_and_rolled_back_by_swarm() -> None:
    spec = service_spec(release(), "agt_1", "net")
    update = spec["UpdateConfig"]
    assert update["Parallelism"] == 1 and update["Order"] == "start-first"
    assert update["FailureAction"] == "rollback" and update["MaxFailureRatio"] == 0
    assert update["Monitor"] > 0
    assert spec["Labels"]["dployr.start"] == "s1"  # which start made this spec (the ref's end)
    stop_first = service_spec(release(strategy="stop-first"), "agt_1", "net")
    assert stop_first["UpdateConfig"]["Order"] == "stop-first"  # SPEC §14 on swarm too
    rollback = spec["RollbackConfig"]
    assert rollback["Parallelism"] == 1 and rollback["Order"] == "start-first"
    assert rollback["FailureAction"] == "pause"  # a failing rollback waits for a human
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"


def test_each_task_checks_itself_with_the_busybox_its_image_carries() -> None:
    check = service_spec(release(), "agt_1", "net")["TaskTemplate"]["ContainerSpec"]
    health = check["Healthcheck"]
    assert health["Test"] == [
        "CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"
    ]  # fmt: skip
    assert health["StartPeriod"] == 30 * SECOND and health["Retries"] >= 1
    assert probe(8080, None) == [
        "CMD", PROBE, "nc", "-w", "2", "127.0.0.1", "8080", "-e", "/.dployr/true"
    ]  # fmt: skip
    worker = service_spec(release(port=None), "agt_1", "net")["TaskTemplate"]["ContainerSpec"]
    assert "Healthcheck" not in worker and not any(e.startswith("PORT=") for e in worker["Env"])


def test_an_image_runtime_keeps_its_command_and_memory_units_are_bytes() -> None:
    templated = service_spec(release(runtime="python"), "agt_1", "net")
    assert "Command" not in templated["TaskTemplate"]["ContainerSpec"]  # its Dockerfile runs it
    assert memory_bytes("1g") == 1 << 30 and memory_bytes("512M") == 512 << 20
    assert memory_bytes("1048576") == 1 << 20


def test_refs_names_and_the_registry_image() -> None:
    config = make_config(Path("/tmp/x"), swarm={"network": "apps"})
    assert overlay_network(config, "usr_1") == "apps-usr_1"
    assert split_ref("dployr-svc-a@dep_2@0a1b") == ("dployr-svc-a", "dep_2", "0a1b")
    registry = make_config(Path("/tmp/x"), swarm={"registry": "reg.example:5000/"})
    target = SwarmTarget(registry, "agt_1")
    assert target.artifact_name("svc_a", 4) == "reg.example:5000/dployr/svc_a:4"
    assert target.owns("reg.example:5000/dployr/svc_a:4", "svc_a")
    assert target.owns("dployr/svc_a:4", "svc_a")
    assert not target.owns("reg.example:5000/dployr/svc_b:4", "svc_a")
    assert SwarmTarget(Config(), "agt_1").artifact_name("svc_a", 4) == "dployr/svc_a:4"


def test_the_swarm_proxy_publishes_in_host_mode_on_this_manager_only() -> None:
    kwargs = _sdk_kwargs(
        {
            "name": "dployr-proxy",
            "agent": "agt_1",
            "image": "caddy:2",
            "networks": ["n1", "n2"],
            "ports": [80, 443],
            "dir": "/var/lib/dployr/swarm-proxy",
            "user": "0:0",
            "digest": "d",
            "node": "n0de",
        }
    )
    assert kwargs["constraints"] == ["node.role==manager", "node.id==n0de"]
    assert kwargs["mode"].mode == "global"  # one task on each manager
    ports = kwargs["endpoint_spec"]["Ports"]
    assert {(p["PublishedPort"], p["TargetPort"], p["PublishMode"]) for p in ports} == {
        (80, 80, "host"),
        (443, 443, "host"),
    }
    assert kwargs["endpoint_spec"]["Mode"] == "dnsrr"
    assert kwargs["networks"] == ["n1", "n2"]
    assert kwargs["mounts"][0]["Target"] == "/dployr"  # the admin socket's dir, never a port


async def test_a_swarm_of_several_nodes_needs_a_registry() -> None:
    class TwoNodes(SwarmTarget):
        async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
            assert path == "/nodes"
            return [{"ID": "a"}, {"ID": "b"}]

    with pytest.raises(ValidationError, match=r"2 nodes: set \[swarm\] registry") as raised:
        await TwoNodes(Config(), "agt_1").check_version("static", None)
    assert raised.value.details is not None and raised.value.details["field"] == "target"
    with_registry = make_config(Path("/tmp/x"), swarm={"registry": "reg.example:5000"})
    assert await TwoNodes(with_registry, "agt_1").check_version("image", None) is None
