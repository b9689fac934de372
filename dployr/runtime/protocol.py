"""The runtime edge: what the pipeline asks of a target. A target (docker, systemd, process, and
later swarm) builds its own artifacts from a BuildRequest, names, owns and prunes them, runs
instances of them, and says whether it is available; the pipeline never knows which it talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dployr.errors import DployrError

# Every target a deployment may name, in the order `default_target = "auto"` prefers them
# (swarm is never auto's choice: where it is available, docker is too).
TARGET_NAMES = ("docker", "systemd", "process", "swarm")


class RuntimeFailure(DployrError):
    """A runtime operation failed (the engine is down or refused it); the message is for the
    deployment's log and `error`, and for the API as a 503: the runtime could not serve it."""

    status = 503
    code = "unavailable"
    default_message = "The runtime could not carry out this operation"
    engine_status: int | None = None  # the engine's own HTTP status, when it answered one


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory: str | None = None  # "512m", "1g": validated at the API edge


@dataclass(frozen=True)
class BuildRequest:
    service_id: str
    service_name: str
    deployment_id: str
    number: int  # the release number: artifacts are named after it (artifact_name)
    runtime: str  # a catalog id (runtime/catalog.py): the target renders what it needs from it
    version: str | None  # None: the target's default (systemd/process: the host's interpreter)
    build_cmd: str | None  # None: the catalog's
    run_cmd: str | None  # None: the catalog's
    source: Path  # a tar of the source tree
    timeout: float
    image: str | None = None  # runtime "image" on a target that derives its own (swarm)


class BuildOutput(Protocol):
    """Where a build reports: its output lines, and its progress when the target knows it."""

    def line(self, text: str) -> None: ...

    def step(self, done: int, total: int, what: str) -> None:
        """Step `done` of `total` has started (1-based); `what` says which."""


@dataclass(frozen=True)
class Mount:
    """A service's volume (SPEC §14), mounted read-write at `path` in every instance. Its
    storage is named after `origin`, the service that first made it (a kept volume attached
    to a new service of the same name keeps its storage): docker volume
    `dployr-<origin>-<name>`, host directory `<data_dir>/volumes/<origin>/<name>`."""

    name: str
    path: str
    origin: str


@dataclass(frozen=True)
class InstanceSpec:
    service_id: str
    service_name: str
    deployment_id: str
    number: int
    artifact: str  # what the target built (an image, a release dir) or an image to run
    runtime: str  # the catalog runtime it was built with
    port: int | None  # the port the app listens on inside ($PORT); None: a worker, no port
    host_port: int | None  # the loopback port to publish on; None: a fresh one
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    run_cmd: str | None = None  # the deployment's own, when it gave one
    owner_id: str = ""  # docker: the instance joins the owner's private network
    volumes: tuple[Mount, ...] = ()
    # swarm (SPEC §15): how many tasks, where, and the check each task runs on itself
    replicas: int = 1
    placement: tuple[str, ...] = ()
    health_path: str | None = "/"
    health_timeout: int = 60
    strategy: str = "start-first"  # swarm: the update order (stop-first: one task at a time)
    start_id: str = ""  # swarm: names this start in the ref (empty: the target makes one)


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
    replicas: tuple[int, int] | None = None  # swarm: (running, desired) tasks; else None


@dataclass(frozen=True)
class Usage:
    """What one instance uses now (metrics): CPU in percent of one core (200 = two cores
    busy), memory in bytes (resident, without the page cache), restarts since it was made, and
    the bytes its network interfaces received and sent since it started (None: not known, as
    for a process of the host's network)."""

    cpu_percent: float
    memory_bytes: int
    restarts: int
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str  # stdout | stderr
    message: str


class Target(Protocol):
    name: str  # docker | systemd | process | swarm
    # False: each instance is a thing of its own (a container, a unit, a process) that the
    # pipeline starts beside the old one and checks itself. True (swarm): one long-lived
    # service whose tasks the target replaces in place, checking them inside (`rollout`).
    rolling: bool
    # Whether the target may become available after the daemon started (an engine that starts
    # later): a deployment to it then waits queued instead of being refused.
    late: bool

    async def problem(self) -> str | None:
        """None when releases can run on this target now, else why not (for /health/ready,
        /info and a refused deployment)."""

    def runtimes(self) -> tuple[str, ...]:
        """The catalog runtimes this target builds."""

    def admins_only(self) -> str | None:
        """Why only admins may deploy here (its builds and apps would run as the daemon's own
        user, root on a VPS), or None: anyone may."""

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        """The version a release of `runtime` gets (None: the target's own default); raises
        ValidationError (field `version`) when this host cannot provide it."""

    async def close(self) -> None: ...

    # -- artifacts ---------------------------------------------------------------------------

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        """Build the artifact (named artifact_name(...)) and return it."""

    def artifact_name(self, service_id: str, number: int) -> str:
        """What a build of this release is called (to clean up after an interrupted build)."""

    def owns(self, artifact: str | None, service_id: str) -> bool:
        """Whether this target built `artifact` for the service (it may prune it), as opposed to
        an image the user named."""

    async def has_artifact(self, artifact: str) -> bool: ...

    async def remove_artifact(self, artifact: str) -> None: ...

    async def start(self, spec: InstanceSpec) -> Instance:
        """Create and start a new instance beside any others."""

    async def stop(self, ref: str, grace: float = 10) -> None:
        """Stop and remove the instance; a missing one is not an error."""

    async def abandon(self, ref: str) -> None:
        """Remove the instance of a release that did not go live (failed, cancelled, or
        interrupted by a crash): for a rolling target, what ran before it runs again."""

    async def status(self, ref: str | None) -> InstanceStatus: ...

    async def instances(self) -> list[Instance]:
        """Every instance this agent made (running or not), for reconcile and delete."""

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        """The usage of each running instance named, sampled at every `metrics.interval`: never
        one blocking call per instance on the loop. An instance that is gone or not running is
        left out. CPU % is over the time since the previous call for that instance (0 the first
        time)."""

    def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]: ...

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        """The last lines an instance printed (for a failed health check's error)."""

    # -- volumes (SPEC §14) --------------------------------------------------------------------

    async def volume_size(self, mount: Mount) -> int | None:
        """Bytes the volume's data takes now; None when it does not exist (yet)."""

    async def remove_volume(self, mount: Mount) -> None:
        """Remove the volume and its data; a missing one is not an error."""
