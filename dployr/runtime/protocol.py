"""The runtime edge: what the pipeline asks of a target (docker today; systemd, process, swarm
plug in here without touching the pipeline)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dployr.errors import DployrError

LineSink = Callable[[str], None]


class RuntimeFailure(DployrError):
    """A runtime operation failed (the engine is down or refused it); the message is for the
    deployment's log and `error`, and for the API as a 503: the runtime could not serve it."""

    status = 503
    code = "unavailable"
    default_message = "The runtime could not carry out this operation"


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory: str | None = None  # "512m", "1g": validated at the API edge


@dataclass(frozen=True)
class BuildRequest:
    service_id: str
    deployment_id: str
    tag: str  # dployr/<service>:<number>
    context: Path  # a tar of the source tree
    dockerfile: str | None  # rendered from templates/, or None for the repo's own Dockerfile
    timeout: float


@dataclass(frozen=True)
class InstanceSpec:
    service_id: str
    service_name: str
    deployment_id: str
    number: int
    artifact: str  # the image to run
    port: int | None  # the port the app listens on inside ($PORT); None: a worker, no port
    host_port: int | None  # the loopback port to publish on; None: a fresh one
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    run_cmd: str | None = None


@dataclass(frozen=True)
class Instance:
    ref: str  # container id, unit name or pid
    service_id: str
    deployment_id: str
    host_port: int | None  # None for a worker (nothing published), or when not known
    running: bool


@dataclass(frozen=True)
class InstanceStatus:
    status: str  # running | stopped | starting | crashed | unknown
    ref: str | None
    started_at: str | None
    restarts: int
    health: str | None  # the last reported exit or health detail, when there is one


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str  # stdout | stderr
    message: str


class Runtime(Protocol):
    target: str

    async def build(self, request: BuildRequest, on_line: LineSink) -> str:
        """Build the artifact and return its reference; output goes to on_line."""

    async def has_artifact(self, artifact: str) -> bool: ...

    async def remove_artifact(self, artifact: str) -> None: ...

    async def start(self, spec: InstanceSpec) -> Instance:
        """Create and start a new instance beside any others."""

    async def stop(self, ref: str, grace: float = 10) -> None:
        """Stop and remove the instance; a missing one is not an error."""

    async def status(self, ref: str | None) -> InstanceStatus: ...

    async def instances(self) -> list[Instance]:
        """Every instance this agent made (running or not), for reconcile and delete."""

    def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]: ...

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        """The last lines an instance printed (for a failed health check's error)."""
