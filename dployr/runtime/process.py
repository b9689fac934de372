"""The process target: releases built on the host, run as supervised children of the daemon.

Apps stop with the daemon: each runs under the keeper (its own process group, with a
parent-death signal), the daemon's stop stops them, and what runs is recorded under
<data_dir>/run/process/ so that the next start finds and removes whatever a crash left."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from dployr.config import Config
from dployr.runtime import host_volumes
from dployr.runtime.host_build import (
    APP_DIR,
    ChildRunner,
    HostBuilder,
    read_manifest,
    run_environment,
)
from dployr.runtime.interpreters import HOST_RUNTIMES, Interpreters
from dployr.runtime.ports import free_loopback_port
from dployr.runtime.proclog import OutputLog
from dployr.runtime.protocol import (
    BuildOutput,
    BuildRequest,
    Instance,
    InstanceSpec,
    InstanceStatus,
    LogLine,
    Mount,
    RuntimeFailure,
    Usage,
)
from dployr.runtime.supervisor import Launch, Supervised
from dployr.runtime.usage import TreeSampler
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
MARKER = "DPLOYR_INSTANCE"  # in every app's environment: how a leftover is recognised


@dataclass(frozen=True)
class Record:
    """What runs, on disk: a daemon killed with -9 leaves these for the next start."""

    ref: str
    service_id: str
    deployment_id: str
    host_port: int | None


class ProcessTarget:
    name = "process"
    rolling = False
    late = False  # it needs nothing that could start later

    def __init__(self, config: Config, agent_id: str) -> None:
        self._data = config.data_path
        self._runs = self._data / "run" / "process"
        self._logs = self._data / "logs" / "process"
        self._interpreters = Interpreters()
        self._builder = HostBuilder(self._data, self._interpreters, ChildRunner())
        del agent_id  # records live in this agent's own data dir: they need no label
        self._running: dict[str, Supervised] = {}
        self._trees = TreeSampler()

    async def problem(self) -> str | None:
        return None  # wherever the daemon runs

    def runtimes(self) -> tuple[str, ...]:
        return HOST_RUNTIMES

    def admins_only(self) -> str | None:
        if os.geteuid() != 0:
            return None
        return "the daemon runs as root, and the process target runs builds and apps as it"

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        return await self._interpreters.check_version(runtime, version)

    async def close(self) -> None:
        """The daemon stops: so do its apps (their records go; reconcile starts them again)."""
        await asyncio.gather(*(self.stop(ref, grace=5) for ref in list(self._running)))

    # -- artifacts: release dirs --------------------------------------------------------------

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        return await self._builder.build(request, output)

    def artifact_name(self, service_id: str, number: int) -> str:
        return self._builder.artifact_name(service_id, number)

    def owns(self, artifact: str | None, service_id: str) -> bool:
        return self._builder.owns(artifact, service_id)

    async def has_artifact(self, artifact: str) -> bool:
        return await self._builder.has_artifact(artifact)

    async def remove_artifact(self, artifact: str) -> None:
        await self._builder.remove_artifact(artifact)

    # -- instances ----------------------------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> Instance:
        release = Path(spec.artifact)
        if not self._builder.owns(spec.artifact, spec.service_id):
            raise RuntimeFailure(f"{spec.artifact} is not a release of this service")
        manifest = await asyncio.to_thread(read_manifest, release)
        command = spec.run_cmd or manifest.run_cmd
        if not command:
            raise RuntimeFailure("the release has no run command: give run_cmd")
        ref = f"proc-{spec.service_name}-{spec.number}-{secrets.token_hex(3)}"
        host_port = None
        if spec.port is not None:  # a worker gets no PORT
            host_port = spec.host_port or await asyncio.to_thread(free_loopback_port)
        env = run_environment(manifest, release, os.environ.get("PATH", os.defpath))
        env.update(spec.env)
        # A child process cannot have a directory mounted at the volume's `path`: it gets the
        # directory's own path in DPLOYR_VOLUME_<NAME> (SPEC §14).
        await asyncio.to_thread(host_volumes.prepare, self._data, spec.volumes, None)
        env.update(host_volumes.volume_env(self._data, spec.volumes))
        env[MARKER] = ref
        if host_port is not None:
            env["PORT"] = str(host_port)
        record = Record(ref, spec.service_id, spec.deployment_id, host_port)
        await asyncio.to_thread(self._write_record, record)
        supervised = Supervised(
            ref, Launch(command, release / APP_DIR, env), OutputLog(self._logs / ref)
        )
        try:
            await supervised.start()
        except BaseException:
            # A cancel while it was being started may have left a child: it carries the marker.
            await run_to_end(asyncio.to_thread(kill_marked, ref))
            await run_to_end(asyncio.to_thread(self._forget, ref))
            raise
        self._running[ref] = supervised
        return Instance(ref, spec.service_id, spec.deployment_id, host_port, True)

    async def abandon(self, ref: str) -> None:
        await self.stop(ref, grace=5)

    async def stop(self, ref: str, grace: float = 10) -> None:
        supervised = self._running.pop(ref, None)
        if supervised is not None:
            await supervised.stop(grace)
        else:  # a leftover of an earlier daemon: whatever still carries its marker goes
            killed = await asyncio.to_thread(kill_marked, ref)
            if killed:
                _LOGGER.info("killed %d leftover processes of %s", killed, ref)
        await asyncio.to_thread(self._forget, ref)

    async def status(self, ref: str | None) -> InstanceStatus:
        if ref is None:
            return InstanceStatus("stopped", None, None, 0, None)
        supervised = self._running.get(ref)
        if supervised is not None:
            return supervised.status()
        if await asyncio.to_thread((self._runs / f"{ref}.json").is_file):
            return InstanceStatus("stopped", ref, None, 0, "the daemon that ran it stopped")
        return InstanceStatus("unknown", ref, None, 0, "the instance is gone")

    async def instances(self) -> list[Instance]:
        records = await asyncio.to_thread(self._read_records)
        return [
            Instance(
                r.ref,
                r.service_id,
                r.deployment_id,
                r.host_port,
                r.ref in self._running and self._running[r.ref].status().status == "running",
            )
            for r in records
        ]

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        """From each running instance's process tree (the keeper and all it started), in one
        worker thread. A restarted run is a new pid: its CPU % starts again from 0."""
        wanted = {
            ref: supervised
            for ref in refs
            if (supervised := self._running.get(ref)) is not None
            and supervised.status().status == "running"
            and supervised.pid is not None
        }
        return await self._trees.sample(
            {ref: (s.pid, s.restarts) for ref, s in wanted.items() if s.pid is not None}
        )

    # -- volumes (SPEC §14): directories under <data_dir>/volumes ---------------------------

    async def volume_size(self, mount: Mount) -> int | None:
        return await host_volumes.volume_size(self._data, mount)

    async def remove_volume(self, mount: Mount) -> None:
        await host_volumes.remove_volume(self._data, mount)

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        found = await self._log_of(ref).read(lines, None)
        return "\n".join(line.message for line in found)

    async def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]:
        supervised = self._running.get(ref)
        if follow and supervised is not None:
            async for line in supervised.log.follow(tail, since):
                yield line
            return
        for line in await self._log_of(ref).read(tail, since):
            yield line

    def _log_of(self, ref: str) -> OutputLog:
        supervised = self._running.get(ref)
        return supervised.log if supervised is not None else OutputLog(self._logs / _safe(ref))

    # -- records on disk ----------------------------------------------------------------------

    def _write_record(self, record: Record) -> None:
        self._runs.mkdir(parents=True, exist_ok=True)
        partial = self._runs / f"{record.ref}.json.partial"
        partial.write_text(json.dumps(asdict(record)), "utf-8")
        partial.replace(self._runs / f"{record.ref}.json")

    def _read_records(self) -> list[Record]:
        records = []
        for path in sorted(self._runs.glob("*.json")) if self._runs.is_dir() else []:
            try:
                records.append(Record(**json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError) as err:
                _LOGGER.warning("ignoring the unreadable record %s: %s", path, err)
        return records

    def _forget(self, ref: str) -> None:
        """Blocking: the record and the logs of an instance that no longer runs."""
        name = _safe(ref)
        (self._runs / f"{name}.json").unlink(missing_ok=True)
        shutil.rmtree(self._logs / name, ignore_errors=True)


def _safe(ref: str) -> str:
    """A ref as a file name (refs come from rows and requests: never a path)."""
    if not ref or "/" in ref or ref in (".", ".."):
        raise RuntimeFailure(f"{ref!r} is not an instance of the process target")
    return ref


def kill_marked(ref: str) -> int:
    """Blocking: SIGKILL every process of ours whose environment carries `ref`'s marker."""
    killed = 0
    uid = os.getuid()
    for process in psutil.process_iter(["uids"]):
        try:
            if process.info["uids"] is None or process.info["uids"].real != uid:
                continue
            if process.environ().get(MARKER) != ref:
                continue
            process.send_signal(signal.SIGKILL)
            killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed
