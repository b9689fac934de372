"""The swarm proxy (SPEC §15): Caddy as a Swarm service on every owner's overlay, driven through
an admin socket in a host directory mounted into it; the same renderer as the host's Caddy."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from dployr.config import Config
from dployr.errors import ProxyError
from dployr.proxy.caddy import CaddyProxy, render_caddyfile
from dployr.proxy.detect import caddy_problem
from dployr.proxy.protocol import Route, Upstreams
from dployr.runtime.protocol import RuntimeFailure

if TYPE_CHECKING:
    import docker

    from dployr.runtime.docker import DockerTarget

_LOGGER = logging.getLogger(__name__)
MOUNT = "/dployr"  # the host dir inside the task: Caddyfile, admin socket, certificates
ADMIN_LISTEN = f"unix/{MOUNT}/admin.sock"
COMMAND = ["caddy", "run", "--config", f"{MOUNT}/Caddyfile", "--adapter", "caddyfile"]
LABEL_AGENT = "dployr.agent"
LABEL_SPEC = "dployr.proxy-spec"  # a digest of what ensure() asked for: a change updates it
START_TIMEOUT = 90.0  # a new task: scheduled, started, its admin socket answering
POLL = 0.25
FAILED_TASKS = 2  # Swarm retried once and that failed too: it will not start by waiting
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its NUL


def service_name(config: Config) -> str:
    """The swarm proxy's Swarm service: `<[swarm] network>-proxy`, so `dployr-proxy` unless
    that is set (daemons sharing one engine, as tests do, set their own network)."""
    return f"{config.swarm.network}-proxy"


class SwarmProxy:
    """Implements `Proxy` with a `CaddyProxy` whose admin API is the socket file and whose
    Caddyfile is the one the task runs from; `ensure()` makes the Swarm service match."""

    name = "swarm"

    def __init__(
        self,
        config: Config,
        agent_id: str,
        docker: DockerTarget,
        *,
        service: str | None = None,
    ) -> None:
        self.dir = config.data_path / "swarm-proxy"
        self.service = service or service_name(config)
        self._config = config
        self._agent_id = agent_id
        self._docker = docker
        # Inside the task Caddy listens on 80/443; proxy.http_port/https_port are published
        # (host mode) to those.
        proxy = dataclasses.replace(
            config.proxy,
            caddy_admin=f"unix/{self.dir}/admin.sock",
            caddyfile=str(self.dir / "Caddyfile"),
            http_port=80,
            https_port=443,
        )
        self._caddy = CaddyProxy(config, proxy=proxy, admin_listen=ADMIN_LISTEN)
        self._ensured: str | None = None  # the spec digest known to serve, None: look again
        self._node: str | None = None  # this manager's node id: the proxy runs here only
        self._wanted = False  # ensure() was asked: from then on its problems are reported

    # -- Proxy ------------------------------------------------------------------------------

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        try:
            await self._caddy.apply(routes, upstreams)
        except BaseException:
            self._ensured = None  # the task may be gone: the next ensure() looks at the engine
            raise

    async def problem(self) -> str | None:
        """None while no swarm service needs it, or when its admin socket answers."""
        if not self._wanted:
            return None
        problem = await caddy_problem(self._caddy.config)
        return None if problem is None else f"the swarm proxy: {problem}"

    def https(self) -> str:
        return self._caddy.https()

    # -- the Swarm service -------------------------------------------------------------------

    async def ensure(self, networks: Collection[str]) -> None:
        """Create the service, or update it when its networks, image or ports differ, then wait
        (at most START_TIMEOUT) until its admin socket answers. A change of networks replaces
        the task: requests fail while the new one starts, about 3 s here (docs/decisions.md,
        "Swarm proxy"); it starts from the last applied Caddyfile, so it serves the same
        routes."""
        self._wanted = True
        socket = self.dir / "admin.sock"
        if len(os.fsencode(socket)) > SOCKET_PATH_MAX:
            said = (
                f"the swarm proxy's admin socket {socket} is longer than a socket path may be "
                f"({SOCKET_PATH_MAX} bytes): choose a shorter server.data_dir"
            )
            raise ProxyError(self.name, said, message=said)
        if self._node is None:
            info = await self._docker.get_json("/info") or {}
            self._node = str((info.get("Swarm") or {}).get("NodeID") or "")
        wanted = self._spec(networks)
        digest = wanted["digest"]
        if digest == self._ensured:
            return
        await asyncio.to_thread(self._prepare_dir)
        current = await self._inspect()
        if current is None:
            _LOGGER.info("starting the swarm proxy on %s", ", ".join(sorted(networks)))
            await self._docker.call(_create, wanted)
        elif current["Spec"].get("Labels", {}).get(LABEL_SPEC) != digest:
            _LOGGER.info("updating the swarm proxy (networks: %s)", ", ".join(sorted(networks)))
            await self._docker.call(_update, wanted)
        await self._wait_serving(digest)
        self._ensured = digest

    async def remove(self) -> None:
        """Remove the service (no swarm service is left to route to); the host dir stays."""
        self._wanted = False
        self._ensured = None
        if await self._inspect() is not None:
            await self._docker.call(lambda client: client.api.remove_service(self.service))

    async def _inspect(self) -> dict[str, Any] | None:
        """The service, None when there is none; one another agent made is not ours to change."""
        current: dict[str, Any] | None = await self._docker.get_json(f"/services/{self.service}")
        if current is None:
            return None
        agent = current["Spec"].get("Labels", {}).get(LABEL_AGENT)
        if agent != self._agent_id:
            raise ProxyError(
                self.name,
                f"the Swarm service {self.service} belongs to agent {agent}, not this one",
            )
        return current

    def _spec(self, networks: Collection[str]) -> dict[str, Any]:
        """What the service must be; the SDK's keyword arguments are made from it in the
        engine call's thread (`_sdk_kwargs`), with its digest as a label."""
        proxy = self._config.proxy
        wanted: dict[str, Any] = {
            "name": self.service,
            "agent": self._agent_id,
            "image": self._config.swarm.proxy_image,
            "networks": sorted(networks),
            "node": self._node,
            "ports": [proxy.http_port, proxy.https_port],
            "dir": str(self.dir),
            "user": f"{os.getuid()}:{os.getgid()}",  # the socket and files stay the daemon's
        }
        wanted["digest"] = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()
        return wanted

    def _prepare_dir(self) -> None:
        """The host dir (0700: the admin socket in it drives the proxy) and a first Caddyfile
        with no route, so a new task has a config and its admin socket."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        caddyfile = self.dir / "Caddyfile"
        if not caddyfile.exists():
            caddyfile.write_text(render_caddyfile([], {}, self._caddy.config, ADMIN_LISTEN))

    async def _wait_serving(self, digest: str) -> None:
        """Until a task of this spec runs and the admin socket answers. Swarm's own reason (a
        port taken, an image missing) once FAILED_TASKS new tasks failed, or at the deadline:
        a slow start waits, one that can never succeed does not hold the router for long."""
        deadline = time.monotonic() + START_TIMEOUT
        said = "no task was scheduled (is this node a manager?)"
        before: set[str] | None = None  # the tasks that had failed already when we began
        while time.monotonic() < deadline:
            running, failed = await self._task_state(digest)
            before = set(failed) if before is None else before
            new = [error for task, error in failed.items() if task not in before]
            said = new[0] if new else said
            if running:
                problem = await caddy_problem(self._caddy.config)
                if problem is None:
                    return
                said = problem
            elif len(new) >= FAILED_TASKS:
                break
            await asyncio.sleep(POLL)
        raise ProxyError(self.name, said, message=f"the swarm proxy did not start: {said}")

    async def _task_state(self, digest: str) -> tuple[bool, dict[str, str]]:
        """(a task of this spec runs, the tasks of this spec that failed → why), newest
        first; an engine that does not answer is a failure too."""
        filters = json.dumps({"service": [self.service]})
        try:
            tasks = await self._docker.get_json("/tasks", {"filters": filters}) or []
        except RuntimeFailure as err:
            return False, {"engine": err.message}
        ours = [
            t
            for t in tasks
            if t["Spec"]["ContainerSpec"].get("Labels", {}).get(LABEL_SPEC) == digest
        ]
        ours.sort(key=lambda t: t.get("UpdatedAt", ""), reverse=True)
        running = any(
            t["Status"]["State"] == "running" and t["DesiredState"] == "running" for t in ours
        )
        failed = {
            t["ID"]: t["Status"].get("Err") or t["Status"]["State"]
            for t in ours
            if t["Status"]["State"] in ("failed", "rejected")
        }
        return running, failed


def _create(client: docker.DockerClient, wanted: dict[str, Any]) -> None:
    client.services.create(**_sdk_kwargs(wanted))


def _update(client: docker.DockerClient, wanted: dict[str, Any]) -> None:
    # Every field again: the SDK's update replaces the whole spec with what it is given.
    client.services.get(wanted["name"]).update(**_sdk_kwargs(wanted))


def _sdk_kwargs(wanted: dict[str, Any]) -> dict[str, Any]:
    """Global on managers, dnsrr (no VIP: no IPVS on a small VPS), ports in host mode (no
    ingress mesh), the host dir at MOUNT; the digest on the service and on its tasks."""
    from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

    http_port, https_port = wanted["ports"]
    labels = {LABEL_AGENT: wanted["agent"], LABEL_SPEC: wanted["digest"]}
    return {
        "name": wanted["name"],
        "image": wanted["image"],
        "command": COMMAND,
        "user": wanted["user"],
        # Caddy's storage (certificates, its local CA) and its autosave under the mount.
        "env": [f"XDG_DATA_HOME={MOUNT}/data", f"XDG_CONFIG_HOME={MOUNT}/config", f"HOME={MOUNT}"],
        "labels": labels,
        "container_labels": labels,
        "networks": wanted["networks"],
        "mode": ServiceMode("global"),
        # This manager only: its Caddyfile, certificates and admin socket are in this host's
        # dir (other managers would need them shared; docs/decisions.md, "Swarm proxy").
        "constraints": ["node.role==manager", f"node.id=={wanted['node']}"],
        "endpoint_spec": EndpointSpec(
            mode="dnsrr",
            ports={http_port: (80, "tcp", "host"), https_port: (443, "tcp", "host")},
        ),
        "mounts": [Mount(target=MOUNT, source=wanted["dir"], type="bind")],
        "restart_policy": RestartPolicy(condition="any", delay=1_000_000_000),
    }
