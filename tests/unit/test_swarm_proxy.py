"""The swarm proxy's checks that need no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from dployr.errors import ProxyError
from dployr.proxy.swarm import SwarmProxy, service_name
from dployr.runtime.docker import DockerTarget
from tests.conftest import make_config


async def test_a_data_dir_too_long_for_a_socket_is_named(tmp_path: Path) -> None:
    config = make_config(tmp_path / ("d" * 120))
    proxy = SwarmProxy(config, "agt_x", DockerTarget(config, "agt_x"))
    with pytest.raises(ProxyError) as caught:
        await proxy.ensure({"dployr-usr_a"})  # refused before any engine call
    assert "server.data_dir" in caught.value.message


def test_the_service_is_named_after_the_swarm_network(tmp_path: Path) -> None:
    assert service_name(make_config(tmp_path)) == "dployr-proxy"
    assert service_name(make_config(tmp_path, swarm={"network": "edge"})) == "edge-proxy"
