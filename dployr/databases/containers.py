"""Managed databases' containers on the Docker engine (SPEC §14): made, watched, backed up,
restored and removed through the DockerTarget's own SDK client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dployr.databases import dumps
from dployr.databases.engines import ENGINE, DatabaseSpec, Exec
from dployr.runtime.docker import LABEL_AGENT, LABEL_DATABASE, LABEL_OWNER, DockerTarget
from dployr.runtime.protocol import RuntimeFailure
from dployr.tasks import undone_on_cancel

if TYPE_CHECKING:
    import docker

_LOGGER = logging.getLogger(__name__)
LABEL_TASK = "dployr.database.task"  # a restore's short-lived helper, never the database itself
STOP_GRACE = 30  # seconds: a database flushes its data when it stops
READY_INTERVAL = 0.5
PROBE_TIMEOUT = 15  # seconds for one readiness probe
RESTORE_READY_TIMEOUT = 120
LOG_LINES = 20
# Redis 7's multi-part AOF (appendonly yes): a restored RDB becomes the base of a fresh one.
REDIS_AOF_DIR = "appendonlydir"
REDIS_AOF_BASE = "appendonly.aof.1.base.rdb"
REDIS_AOF_INCR = "appendonly.aof.1.incr.aof"
REDIS_AOF_MANIFEST = (
    f"file {REDIS_AOF_BASE} seq 1 type b\nfile {REDIS_AOF_INCR} seq 1 type i\n".encode()
)


class DatabaseContainers:
    """One container (and one named volume) per managed database, labelled with the agent,
    the database and its owner. `state` counts a container the engine is restarting (its
    restart policy at work) as running: the engine is already bringing it back, and
    `wait_ready` tells whether it answers."""

    def __init__(self, docker: DockerTarget, agent_id: str) -> None:
        self._docker = docker
        self._agent_id = agent_id

    def _labels(self, spec: DatabaseSpec) -> dict[str, str]:
        return {LABEL_AGENT: self._agent_id, LABEL_DATABASE: spec.id, LABEL_OWNER: spec.owner_id}

    # -- the container's life ---------------------------------------------------------------

    async def create(self, spec: DatabaseSpec) -> str:
        """Run the database: its volume (kept data is used again), its container on the
        owner's network (alias: the database's name), published on 127.0.0.1 only. A cancel
        meanwhile waits for the engine and removes the container it made."""
        network = await self._docker.ensure_network(spec.owner_id)
        await self._docker.call(self._ensure_volume, spec)
        name = f"dployr-db-{spec.name}-{secrets.token_hex(3)}"
        return await undone_on_cancel(
            self._docker.call(self._run, spec, network, name),
            lambda creating: self._discard(creating, name),
        )

    def _ensure_volume(self, client: docker.DockerClient, spec: DatabaseSpec) -> None:
        from docker.errors import NotFound  # loaded already: this runs in call, after the SDK

        try:
            client.volumes.get(spec.volume)
        except NotFound:
            client.volumes.create(spec.volume, labels=self._labels(spec))

    def _run(self, client: docker.DockerClient, spec: DatabaseSpec, network: str, name: str) -> str:
        from docker.errors import APIError, ImageNotFound

        engine = ENGINE[spec.engine]
        kwargs: dict[str, Any] = {
            "name": name,
            "labels": self._labels(spec),
            "environment": engine.environment(spec),
            "command": engine.command(spec),
            "volumes": {spec.volume: {"bind": engine.data_path, "mode": "rw"}},
            "ports": {f"{engine.port}/tcp": ("127.0.0.1", spec.host_port)},
            "network": network,
            "networking_config": {network: client.api.create_endpoint_config(aliases=[spec.name])},
            "restart_policy": {"Name": "unless-stopped"},
            # A small VPS's disk: at most 3 x 10 MB of output, as for service containers.
            "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        }
        try:
            container = client.containers.create(spec.image, **kwargs)
        except ImageNotFound:
            _pull(client, spec)
            container = client.containers.create(spec.image, **kwargs)
        try:
            container.start()
        except APIError:
            container.remove(v=True, force=True)
            raise
        return str(container.id)

    async def _discard(self, creating: asyncio.Future[str], name: str) -> None:
        await asyncio.wait({creating})
        if not creating.cancelled() and creating.exception() is None:
            _LOGGER.info("removing database container %s: its creation was cancelled", name)
            try:
                await self._docker.call(_remove_container, name, 0)
            except RuntimeFailure as err:  # the cancel goes on; reconcile finds it later
                _LOGGER.warning("could not remove container %s: %s", name, err)

    async def wait_ready(
        self,
        container: str,
        spec: DatabaseSpec,
        timeout: float,  # noqa: ASYNC109 (a deadline for many probes, and a reason back)
    ) -> str | None:
        """None once the engine's own client answers inside the container, else why not: the
        container stopped or restarted (a bad image or command), or `timeout` passed."""
        engine = ENGINE[spec.engine]
        probe = engine.ready(spec)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attrs = await self._inspect(container)
        restarts = attrs["RestartCount"] if attrs else 0
        answer = "it has not answered yet"
        while True:
            attrs = await self._inspect(container)
            if attrs is None:
                return "its container is gone"
            state = attrs["State"]
            if (
                state["Status"] in ("exited", "dead")
                or state.get("Restarting")
                or attrs["RestartCount"] > restarts
            ):
                return (
                    f"{engine.name} stopped (exit code {state.get('ExitCode')}); "
                    f"its last lines:\n{await self._tail(container)}"
                )
            if state["Status"] == "running":
                code, answer = await self._probe(container, probe)
                if code == 0:
                    return None
            if loop.time() >= deadline:
                return (
                    f"{engine.name} did not answer {probe.cmd[0]} within {timeout:g} s "
                    f"({answer}); its last lines:\n{await self._tail(container)}"
                )
            await asyncio.sleep(READY_INTERVAL)

    async def _probe(self, container: str, probe: Exec) -> tuple[int, str]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                return await self._docker.call(dumps.run, container, probe)
        except TimeoutError:
            return 1, f"{probe.cmd[0]} did not end within {PROBE_TIMEOUT} s"
        except RuntimeFailure as err:  # the container stopped meanwhile: the next look says so
            return 1, str(err)

    async def _inspect(self, container: str) -> dict[str, Any] | None:
        attrs = await self._docker.get_json(f"/containers/{quote(container, safe='')}/json")
        return None if attrs is None else dict(attrs)

    async def _tail(self, container: str) -> str:
        text = await self._docker.recent_output(container, LOG_LINES)
        return text or "(no output)"

    async def start(self, container: str) -> None:
        """Start the stopped container (a missing one is a RuntimeFailure saying so)."""

        def start(client: docker.DockerClient) -> None:
            from docker.errors import NotFound

            try:
                client.api.start(container)
            except NotFound as err:
                raise RuntimeFailure(
                    f"the database's container {container[:12]} is gone: make it again"
                ) from err

        await self._docker.call(start)

    async def stop(self, container: str) -> None:
        """Stop the server cleanly (a missing container is fine: nothing runs)."""

        def stop(client: docker.DockerClient) -> None:
            from docker.errors import NotFound

            with contextlib.suppress(NotFound):
                client.api.stop(container, timeout=STOP_GRACE)

        await self._docker.call(stop)

    async def state(self, container: str | None) -> str:
        """running | stopped | missing (a container the engine is restarting: running)."""
        attrs = None if container is None else await self._inspect(container)
        if attrs is None:
            return "missing"
        return "running" if attrs["State"]["Status"] in ("running", "restarting") else "stopped"

    async def remove(self, container: str | None, spec: DatabaseSpec, *, keep_data: bool) -> None:
        """Remove the database's container (and any other of this agent labelled with it), and
        its volume unless `keep_data` (then the server stops cleanly first). Missing is fine."""

        def remove(client: docker.DockerClient) -> None:
            from docker.errors import NotFound

            refs = {c["Id"] for c in client.api.containers(all=True, filters=self._of(spec.id))}
            if container is not None:
                refs.add(container)
            for ref in refs:
                _remove_container(client, ref, STOP_GRACE if keep_data else 0)
            if not keep_data:
                with contextlib.suppress(NotFound):
                    client.api.remove_volume(spec.volume)

        await self._docker.call(remove)

    def _of(self, database_id: str | None = None) -> dict[str, list[str]]:
        database = LABEL_DATABASE if database_id is None else f"{LABEL_DATABASE}={database_id}"
        return {"label": [f"{LABEL_AGENT}={self._agent_id}", database]}

    async def containers(self) -> dict[str, str]:
        """Database id → container id, for this agent's databases (a running one first)."""
        listed = await self._docker.get_json(
            "/containers/json", {"all": "1", "filters": json.dumps(self._of())}
        )
        found: dict[str, str] = {}
        for item in sorted(listed or [], key=lambda c: c.get("State") == "running"):
            labels = item.get("Labels") or {}
            if LABEL_TASK not in labels:
                found[labels[LABEL_DATABASE]] = item["Id"]
        return found

    # -- backups ------------------------------------------------------------------------------

    async def backup(self, container: str, spec: DatabaseSpec, dest: Path) -> int:
        """A logical dump by the engine's own tool into `dest` (0600), its size. It is written
        beside `dest` and renamed at the end: a failed or cancelled dump leaves no file."""
        engine = ENGINE[spec.engine]
        # A path inside the container (no other user there), with a random name.
        scratch = f"/tmp/dployr-backup-{secrets.token_hex(6)}{engine.backup_suffix}"  # noqa: S108
        command = engine.backup(spec, scratch)
        partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
        channel = dumps.Channel()
        try:
            code, output = await self._docker.call(dumps.dump, container, command, partial, channel)
            if code != 0:
                raise RuntimeFailure(f"{command.cmd[0]} failed (exit code {code}): {output}")
            if command.output is not None:
                await self._docker.call(
                    dumps.fetch_file, container, command.output, partial, channel
                )
            return await asyncio.to_thread(_publish, partial, dest)
        finally:
            channel.close()
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            if command.output is not None:
                await self._run_quietly(container, Exec(["rm", "-f", "--", command.output], {}))

    async def restore(self, container: str, spec: DatabaseSpec, source: Path) -> None:
        """Put the database back to the dump in `source` (written by `backup`)."""
        command = ENGINE[spec.engine].restore(spec)
        if command is None:
            await self._restore_redis(container, spec, source)
            return
        channel = dumps.Channel()
        try:
            code, output = await self._docker.call(dumps.feed, container, command, source, channel)
        finally:
            channel.close()
        if code != 0:
            raise RuntimeFailure(f"{command.cmd[0]} failed (exit code {code}): {output}")

    async def _restore_redis(self, container: str, spec: DatabaseSpec, source: Path) -> None:
        """Redis has no restore command: with the server stopped, the RDB becomes the base of
        a fresh append-only file (the data files a restart loads), then it starts again."""
        data = ENGINE[spec.engine].data_path
        await self.stop(container)
        try:
            await self._docker.call(self._clear_redis_files, spec)
            await self._docker.call(
                dumps.put_files,
                container,
                data,
                [
                    (REDIS_AOF_DIR, None),
                    (f"{REDIS_AOF_DIR}/{REDIS_AOF_BASE}", source),
                    (f"{REDIS_AOF_DIR}/{REDIS_AOF_INCR}", b""),
                    (f"{REDIS_AOF_DIR}/appendonly.aof.manifest", REDIS_AOF_MANIFEST),
                ],
            )
        finally:
            await self.start(container)
        problem = await self.wait_ready(container, spec, RESTORE_READY_TIMEOUT)
        if problem is not None:
            raise RuntimeFailure(f"redis did not come back after the restore: {problem}")

    def _clear_redis_files(self, client: docker.DockerClient, spec: DatabaseSpec) -> None:
        """Remove the old append-only files and RDB from the volume, in a helper container of
        the same image (the engine's archive API writes files but cannot delete them)."""
        data = ENGINE[spec.engine].data_path
        helper = client.containers.create(
            spec.image,
            entrypoint=["rm", "-rf", "--", f"{data}/{REDIS_AOF_DIR}", f"{data}/dump.rdb"],
            command=[],
            labels={**self._labels(spec), LABEL_TASK: "restore"},
            volumes={spec.volume: {"bind": data, "mode": "rw"}},
            network_mode="none",
        )
        try:
            helper.start()
            code = helper.wait(timeout=60)["StatusCode"]
            if code != 0:
                logs = bytes(helper.logs()).decode("utf-8", "replace").strip()
                raise RuntimeFailure(f"could not clear the old redis files: {logs}")
        finally:
            helper.remove(v=True, force=True)

    async def _run_quietly(self, container: str, command: Exec) -> None:
        try:
            await self._docker.call(dumps.run, container, command)
        except RuntimeFailure as err:
            _LOGGER.info("%s in %s failed: %s", command.cmd[0], container, err)


def _pull(client: docker.DockerClient, spec: DatabaseSpec) -> None:
    """Pull a missing image (the official images come from a registry on a real host)."""
    from docker.errors import APIError

    _LOGGER.info("pulling %s", spec.image)
    try:
        client.images.pull(spec.image)
    except APIError as err:
        raise RuntimeFailure(
            f"the image {spec.image} is not on this host and could not be pulled "
            f"({err.explanation or err}); pull or build it, or set [databases.{spec.engine}] "
            "image in the configuration"
        ) from err


def _remove_container(client: docker.DockerClient, ref: str, grace: int) -> None:
    from docker.errors import NotFound

    try:
        if grace:
            client.api.stop(ref, timeout=grace)
        client.api.remove_container(ref, v=True, force=True)
    except NotFound:
        pass


def _publish(partial: Path, dest: Path) -> int:
    """Rename the finished dump into place: its size."""
    size = partial.stat().st_size
    partial.replace(dest)
    return size
