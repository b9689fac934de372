"""A managed database's container for each engine, for real: reachable by its name on the
owner's network and on 127.0.0.1 only, backed up and restored, kept across restarts and
removed with or without its data."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from urllib.parse import urlsplit

import pytest

from dployr.databases.engines import ENGINE, DatabaseSpec
from dployr.runtime.docker import owner_network
from dployr.runtime.protocol import RuntimeFailure
from tests.databases.conftest import Harness

READY = 180  # seconds: a first start initialises the data directory (slow on a busy machine)


def client_cmd(spec: DatabaseSpec, url: str, value: str | None) -> tuple[list[str], dict[str, str]]:
    """The engine's own client connecting with `url`: set the value (or read it back)."""
    if spec.engine == "postgres":
        sql = (
            "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text); "  # noqa: S608
            f"INSERT INTO kv VALUES ('k', '{value}') "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            if value
            else "SELECT v FROM kv WHERE k = 'k'"
        )
        return ["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], {}
    # Debian's redis-cli 7.0 sends `AUTH "" <password>` for `-u redis://:<password>@…` (an
    # empty user name), and the mariadb client takes no URL: both get the URL's parts.
    parts = urlsplit(url)
    assert parts.hostname and parts.port and parts.password
    if spec.engine == "redis":
        command = ["SET", "k", value] if value else ["GET", "k"]
        return [
            "redis-cli", "-e", "-h", parts.hostname, "-p", str(parts.port), "-n",
            parts.path.lstrip("/"), *command,
        ], {"REDISCLI_AUTH": parts.password}  # fmt: skip
    sql = (
        "CREATE TABLE IF NOT EXISTS kv (k VARCHAR(10) PRIMARY KEY, v TEXT); "  # noqa: S608
        f"REPLACE INTO kv VALUES ('k', '{value}')"
        if value
        else "SELECT v FROM kv WHERE k = 'k'"
    )
    assert parts.username
    return [
        "mariadb", "-h", parts.hostname, "-P", str(parts.port), "-u", parts.username,
        "-N", "-B", parts.path.lstrip("/"), "-e", sql,
    ], {"MYSQL_PWD": parts.password}  # fmt: skip


async def use(
    h: Harness,
    spec: DatabaseSpec,
    network: str,
    host: str,
    port: int,
    value: str | None = None,
    limit: int = 30,
) -> tuple[int, str]:
    cmd, env = client_cmd(spec, ENGINE[spec.engine].url(spec, host, port), value)
    return await h.client(spec.image, network, *cmd, env=env, limit=limit)


async def read(h: Harness, spec: DatabaseSpec) -> str:
    """The value, read over the owner's network by the database's name."""
    code, out = await use(h, spec, owner_network(spec.owner_id), spec.name, port(spec))
    assert code == 0, out
    return out.splitlines()[-1]


async def write(h: Harness, spec: DatabaseSpec, value: str) -> None:
    code, out = await use(h, spec, owner_network(spec.owner_id), spec.name, port(spec), value)
    assert code == 0, out


def port(spec: DatabaseSpec) -> int:
    return ENGINE[spec.engine].port


async def ready(h: Harness, container: str, spec: DatabaseSpec) -> None:
    assert await h.dbs.wait_ready(container, spec, READY) is None


async def volume_exists(h: Harness, name: str) -> bool:
    return (await h.docker("volume", "inspect", name))[0] == 0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ["postgres", "redis", "mariadb"])
async def test_a_database_lives_backs_up_restores_and_goes(harness: Harness, engine: str) -> None:
    h = harness
    spec = await h.spec(engine)
    container = await h.dbs.create(spec)
    await ready(h, container, spec)
    assert await h.dbs.containers() == {spec.id: container}
    assert await h.dbs.state(container) == "running"

    # Published on the loopback only, and answering there (a client sharing the host's
    # network); on the owner's network by its name.
    _, out = await h.docker("inspect", container)
    attrs = json.loads(out)[0]
    bindings = attrs["HostConfig"]["PortBindings"][f"{port(spec)}/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(spec.host_port)}]
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    code, out = await use(h, spec, "host", "127.0.0.1", spec.host_port, "via-loopback")
    assert code == 0, out
    await write(h, spec, "v1")
    assert await read(h, spec) == "v1"

    # Another owner's containers reach it neither by name nor by its address.
    address = attrs["NetworkSettings"]["Networks"][owner_network(spec.owner_id)]["IPAddress"]
    other = await h.target.ensure_network(f"usr_b-{h.agent_id[-8:]}")
    # (The engine drops packets between two bridge networks: a connect by address hangs.)
    code, out = await use(h, spec, owner_network(spec.owner_id), address, port(spec))
    assert code == 0, out
    for host in (spec.name, address):
        code, out = await use(h, spec, other, host, port(spec), limit=4)
        assert code != 0, (host, out)

    # Backup, change, restore: the old data is back.
    dest = h.data_dir / f"first{ENGINE[engine].backup_suffix}"
    size = await h.dbs.backup(container, spec, dest)
    info = await asyncio.to_thread(dest.stat)
    assert size == info.st_size > 0
    assert stat.S_IMODE(info.st_mode) == 0o600
    await write(h, spec, "v2")
    assert await read(h, spec) == "v2"
    await h.dbs.restore(container, spec, dest)
    assert await read(h, spec) == "v1"
    # Nothing half-written beside the backup.
    assert sorted(await asyncio.to_thread(os.listdir, h.data_dir)) == ["agent_id", dest.name]

    # A restart of the container (by hand or by the engine) keeps the data.
    assert (await h.docker("restart", container))[0] == 0
    await ready(h, container, spec)
    assert await read(h, spec) == "v1"
    await h.dbs.stop(container)
    assert await h.dbs.state(container) == "stopped"
    await h.dbs.start(container)
    await ready(h, container, spec)

    # Removed with keep_data: the volume stays, and a new container finds the data in it.
    await h.dbs.remove(container, spec, keep_data=True)
    assert await h.dbs.state(container) == "missing"
    await h.dbs.stop(container)  # nothing runs: fine
    with pytest.raises(RuntimeFailure, match="is gone"):
        await h.dbs.start(container)
    assert await h.dbs.containers() == {}
    assert await volume_exists(h, spec.volume)
    again = await h.dbs.create(spec)
    await ready(h, again, spec)
    assert await read(h, spec) == "v1"

    # Removed for good: the volume goes too.
    await h.dbs.remove(again, spec, keep_data=False)
    assert await h.dbs.containers() == {}
    assert not await volume_exists(h, spec.volume)
    await h.dbs.remove(again, spec, keep_data=False)  # missing things are fine
