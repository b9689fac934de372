"""The swarm target (SPEC §15): releases built as for docker, run as one Swarm service per
dployr service on the Swarm this engine manages, updated in place one task at a time.

An instance ref is `<swarm service>@<deployment id>@<start id>`: the service is long-lived,
and the ref says which start of which release is meant (a release, a restart of it), so that
stopping an older start's ref after a newer one took the service over touches nothing, and
undoing a start that did not take (a failed or cancelled release or restart) rolls the service
back to what ran before it (Swarm's own PreviousSpec), never further."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import struct
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from dployr.config import Config
from dployr.errors import ValidationError
from dployr.runtime.docker import LABEL_DATABASE, LABEL_OWNER, DockerTarget, owner_network
from dployr.runtime.engine_api import docker_time, engine_message
from dployr.runtime.protocol import (
    BuildOutput,
    BuildRequest,
    Instance,
    InstanceSpec,
    InstanceStatus,
    LogLine,
    RuntimeFailure,
    Usage,
)
from dployr.runtime.swarm_names import overlay_network, registry_image, swarm_service
from dployr.runtime.swarm_spec import (
    LABEL_AGENT,
    LABEL_DEPLOYMENT,
    LABEL_SERVICE,
    LABEL_START,
    MONITOR,
    service_spec,
    start_of,
)

_LOGGER = logging.getLogger(__name__)
PROBE_IMAGE = "dployr/probe"  # FROM scratch + the host's static busybox, tagged by its digest
PROBE_LAYOUT = 2  # /.dployr/busybox and /.dployr/true (a link to it): part of the tag
POLL = 0.5  # seconds between two reads of a rollout
ROLLOUT_SLACK = 10  # seconds per task beyond its health check: pulling, scheduling, starting
FAILED_STATES = ("failed", "rejected")
ROLLED_BACK = ("rollback_started", "rollback_paused", "rollback_completed", "paused")


def split_ref(ref: str) -> tuple[str, str, str]:
    """(swarm service, deployment id, start id)."""
    name, _, rest = ref.partition("@")
    deployment_id, _, start_id = rest.partition("@")
    return name, deployment_id, start_id


def make_ref(service_id: str, deployment_id: str, start_id: str) -> str:
    return f"{swarm_service(service_id)}@{deployment_id}@{start_id}"


def new_start_id() -> str:
    return secrets.token_hex(4)


def static_busybox() -> Path | None:
    """The host's busybox when it is statically linked (it must run inside any image)."""
    found = shutil.which("busybox")
    if found is None:
        return None
    path = Path(found).resolve()
    try:
        with path.open("rb") as file:
            head = file.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return None
            (phoff,) = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            file.seek(phoff)
            table = file.read(phentsize * phnum)
    except OSError:
        return None
    for index in range(phnum):
        (kind,) = struct.unpack_from("<I", table, index * phentsize)
        if kind == 3:  # PT_INTERP: it needs a dynamic loader
            return None
    return path


class SwarmTarget(DockerTarget):
    """The docker target's builds and images, with Swarm services instead of containers."""

    name = "swarm"
    late = False  # not a swarm manager: a deployment to swarm is a 400 that says why
    rolling = True

    def __init__(self, config: Config, agent_id: str) -> None:
        super().__init__(config, agent_id)
        self._probe_image: str | None = None
        self._registry = config.swarm.registry.rstrip("/")
        # Reads `[swarm] registry_credential_id`'s login (set by the deployer): at each push,
        # service update and registry delete, so a credential made or changed later counts.
        self.login_source: Callable[[], Awaitable[dict[str, str]]] | None = None

    # -- availability ---------------------------------------------------------------------------

    async def problem(self) -> str | None:
        problem = await super().problem()
        if problem is not None:
            return problem
        try:
            info = await self.get_json("/info") or {}
        except RuntimeFailure as err:
            return err.message
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            return "this Docker engine is not in a swarm (docker swarm init makes it a manager)"
        if not swarm.get("ControlAvailable"):
            return "this Docker engine is a swarm worker; run dployr on a manager node"
        if await asyncio.to_thread(static_busybox) is None:
            return (
                "a static busybox is needed for the tasks' health checks "
                "(apt-get install busybox-static)"
            )
        return None

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        """As for docker, and a swarm of several nodes needs a registry they all pull from."""
        if not self._registry:
            nodes = await self.get_json("/nodes") or []
            if len(nodes) > 1:
                raise ValidationError(
                    "target",
                    f"this swarm has {len(nodes)} nodes: set [swarm] registry (a registry every "
                    "node can pull from) so that each node runs the same image",
                )
        return await super().check_version(runtime, version)

    # -- images ---------------------------------------------------------------------------------

    def artifact_name(self, service_id: str, number: int) -> str:
        if self._registry:
            return registry_image(self._registry, service_id, number)
        return super().artifact_name(service_id, number)

    def owns(self, artifact: str | None, service_id: str) -> bool:
        if super().owns(artifact, service_id):
            return True
        prefix = f"{self._registry}/dployr/{service_id}:"
        return bool(self._registry and artifact and artifact.startswith(prefix))

    def _dockerfile(self, request: BuildRequest) -> str | None:
        """The release's Dockerfile plus the busybox its task health check runs (`COPY --from`
        our probe image: nothing is added to the build context, which a .dockerignore rules)."""
        assert self._probe_image is not None  # build() made it first
        if request.image is not None:
            base = f"FROM {request.image}\n"
        else:
            base = super()._dockerfile(request) or _repo_dockerfile(request.source)
        return f"{base.rstrip()}\nCOPY --from={self._probe_image} /.dployr/ /.dployr/\n"

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        self._probe_image = await self._ensure_probe_image()
        built = await super().build(request, output)
        if self._registry:
            await self._push(built, output)
        return built

    async def _ensure_probe_image(self) -> str:
        busybox = await asyncio.to_thread(static_busybox)
        if busybox is None:
            raise RuntimeFailure("no static busybox on this host (apt-get install busybox-static)")
        digest = await asyncio.to_thread(_digest, busybox)
        tag = f"{PROBE_IMAGE}:{digest}-{PROBE_LAYOUT}"
        if await self.has_artifact(tag):
            return tag
        context = Path(await asyncio.to_thread(_probe_context, busybox))
        try:
            session, base = self._http("build")
            params = {"t": tag, "rm": "1", "labels": json.dumps({LABEL_AGENT: "probe"})}
            body = io.BytesIO(await asyncio.to_thread(context.read_bytes))  # about 2 MB
            async with session.post(
                f"{base}/build",
                params=params,
                data=body,
                headers={"Content-Type": "application/x-tar"},
            ) as response:
                raw = await response.read()
            if response.status != 200 or b'"error"' in raw:
                raise RuntimeFailure(f"could not build {tag}: {engine_message(raw)[:300]}")
        finally:
            await asyncio.to_thread(context.unlink, missing_ok=True)
        return tag

    async def _push(self, image: str, output: BuildOutput) -> None:
        """Push to `[swarm] registry`, so that every node pulls this very image."""
        repository, _, tag = image.rpartition(":")
        output.line(f"pushing {image}")
        session, base = self._http("build")
        async with session.post(
            f"{base}/images/{repository}/push",
            params={"tag": tag},
            headers={"X-Registry-Auth": self._registry_auth(await self.login())},
        ) as response:
            if response.status != 200:
                raise RuntimeFailure(f"push of {image}: {engine_message(await response.read())}")
            async for raw in response.content:
                chunk = json.loads(raw) if raw.strip() else {}
                if "error" in chunk:
                    raise RuntimeFailure(f"push of {image}: {str(chunk['error']).strip()}")
                if chunk.get("status", "").startswith(tag):
                    output.line(str(chunk["status"]))

    async def remove_artifact(self, artifact: str) -> None:
        """The local image, and the release in `[swarm] registry` when it takes deletes."""
        await super().remove_artifact(artifact)
        if self._registry and artifact.startswith(self._registry + "/"):
            try:
                await self._delete_from_registry(artifact)
            except (aiohttp.ClientError, TimeoutError, RuntimeFailure) as err:
                _LOGGER.info("%s stays in the registry: %s", artifact, err)

    async def _delete_from_registry(self, artifact: str) -> None:
        """The registry API: the tag's manifest digest, then a DELETE of it (a registry
        without `storage.delete` answers 405: the image stays, logged). Plain HTTP only for
        a registry on loopback, as Docker itself does."""
        repository, _, tag = artifact[len(self._registry) + 1 :].rpartition(":")
        host = self._registry.split(":")[0]
        scheme = "http" if host in ("localhost", "::1") or host.startswith("127.") else "https"
        url = f"{scheme}://{self._registry}/v2/{repository}/manifests"
        headers = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        login = await self.login()
        if login:
            pair = f"{login['username']}:{login['password']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            async with session.head(f"{url}/{tag}") as found:
                digest = found.headers.get("Docker-Content-Digest")
                if found.status != 200 or not digest:
                    raise RuntimeFailure(f"the registry answered {found.status} for {artifact}")
            async with session.delete(f"{url}/{digest}") as deleted:
                if deleted.status != 202:
                    raise RuntimeFailure(f"the registry refused the delete ({deleted.status})")

    async def login(self) -> dict[str, str]:
        """{username, password} for the registry, or {} (none configured)."""
        if not self._registry or self.login_source is None:
            return {}
        return await self.login_source()

    def _registry_auth(self, login: dict[str, str]) -> str:
        """X-Registry-Auth: the registry credential's login, or none."""
        auth = {"serveraddress": self._registry, **login}
        return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()

    # -- the Swarm service ----------------------------------------------------------------------

    async def _service(self, name: str) -> dict[str, Any] | None:
        return await self.get_json(f"/services/{name}")  # type: ignore[no-any-return]

    async def _tasks(self, name: str) -> list[dict[str, Any]]:
        filters = json.dumps({"service": [name]})
        tasks = await self.get_json("/tasks", {"filters": filters}) or []
        # `service` filters by name prefix too: dployr-svc-a would match dployr-svc-ab.
        return [t for t in tasks if t.get("ServiceID") and _task_service(t) == name]

    async def ensure_overlay(self, owner_id: str) -> str:
        """The owner's attachable overlay, made on first use."""
        name = overlay_network(self._config, owner_id)
        found = await self.get_json("/networks", {"filters": json.dumps({"name": [name]})})
        for network in found or ():
            if network.get("Name") == name:
                if network.get("Scope") != "swarm":
                    raise RuntimeFailure(
                        f"network {name} is a {network.get('Driver')} network of this host, "
                        "made before the engine joined a swarm; remove it (docker network rm "
                        f"{name}, once nothing uses it) or set [swarm] network to another name"
                    )
                return name
        try:
            await self.send(
                "POST",
                "/networks/create",
                body={
                    "Name": name,
                    "Driver": "overlay",
                    "Attachable": True,
                    "CheckDuplicate": True,
                    "Labels": {LABEL_AGENT: self._agent_id, "dployr.owner": owner_id},
                },
            )
        except RuntimeFailure as err:
            if err.engine_status != 409:  # made meanwhile
                raise
        return name

    async def join_databases(self, owner_id: str, network: str) -> None:
        """The owner's managed databases join their overlay (SPEC §15) under the names they
        have on the owner's network. A no-op when both are one network: the owner's network
        is made as this overlay on a swarm manager (DockerTarget._make_network)."""
        labels = [f"{LABEL_AGENT}={self._agent_id}", LABEL_DATABASE, f"{LABEL_OWNER}={owner_id}"]
        filters = json.dumps({"label": labels})
        for listed in await self.get_json("/containers/json", {"filters": filters}) or ():
            networks = (listed.get("NetworkSettings") or {}).get("Networks") or {}
            if network in networks:
                continue
            found = await self.get_json(f"/containers/{listed['Id']}/json")
            if found is None:
                continue
            joined = found["NetworkSettings"]["Networks"].get(owner_network(owner_id)) or {}
            aliases = [a for a in joined.get("Aliases") or () if not listed["Id"].startswith(a)]
            try:
                await self.send(
                    "POST",
                    f"/networks/{network}/connect",
                    body={"Container": listed["Id"], "EndpointConfig": {"Aliases": aliases}},
                )
            except RuntimeFailure as err:
                _LOGGER.warning("database %s did not join %s: %s", listed["Id"][:12], network, err)

    async def start(self, spec: InstanceSpec) -> Instance:
        """Create the Swarm service, or update it to this release (Swarm replaces its tasks
        one at a time, each new one healthy before an old one stops). Returns at once: the
        rollout is watched by `rollout`."""
        if not spec.start_id:
            spec = dataclasses.replace(spec, start_id=new_start_id())
        network = await self.ensure_overlay(spec.owner_id)
        await self.join_databases(spec.owner_id, network)
        wanted = service_spec(spec, self._agent_id, network)
        login = await self.login()
        headers = {"X-Registry-Auth": self._registry_auth(login)} if self._registry else None
        name = wanted["Name"]
        current = await self._service(name)
        if current is None:
            await self.send("POST", "/services/create", body=wanted, headers=headers)
        else:
            # The same spec again (a restart): a changed ForceUpdate makes Swarm replace tasks.
            wanted["TaskTemplate"]["ForceUpdate"] = (
                current["Spec"]["TaskTemplate"].get("ForceUpdate", 0) + 1
            )
            await self.send(
                "POST",
                f"/services/{current['ID']}/update",
                params={"version": str(current["Version"]["Index"])},
                body=wanted,
                headers=headers,
            )
        ref = make_ref(spec.service_id, spec.deployment_id, spec.start_id)
        return Instance(ref, spec.service_id, spec.deployment_id, None, True)

    async def scale(self, ref: str, replicas: int) -> None:
        name, _, _ = split_ref(ref)
        current = await self._service(name)
        if current is None:
            raise RuntimeFailure(f"the swarm service {name} is gone")
        spec = current["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        await self.send(
            "POST",
            f"/services/{current['ID']}/update",
            params={"version": str(current["Version"]["Index"])},
            body=spec,
        )

    async def rollout(self, ref: str, health_timeout: float) -> str | None:
        """None once every task the service wants runs this release and passed its health
        check (Swarm reports a task with a check `running` only once healthy); else why not:
        Swarm's own reason when it rolled the update back, or the time limit (each task in
        turn may take the health check's time, then Swarm watches it MONITOR s)."""
        name, deployment_id, start_id = split_ref(ref)
        started = asyncio.get_running_loop().time()
        while True:
            service = await self._service(name)
            if service is None:
                return "the swarm service was removed"
            tasks = await self._tasks(name)
            update = service.get("UpdateStatus") or {}
            if start_of(service) != start_id or update.get("State") in ROLLED_BACK:
                return _rolled_back(update, tasks, deployment_id)
            desired = service["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 1)
            wanted = [t for t in tasks if t.get("DesiredState") == "running"]
            # A task of the spec asked for: a restart keeps the release (the same deployment
            # label) and changes the env or ForceUpdate, so the task's whole spec is compared.
            current = _identity(service["Spec"]["TaskTemplate"])
            mine = [t for t in wanted if _identity(t.get("Spec") or {}) == current]
            healthy = [t for t in mine if t["Status"]["State"] == "running"]
            settled = update.get("State") in (None, "completed")
            if settled and len(healthy) >= desired and len(wanted) == len(mine):
                return None
            limit = (health_timeout + MONITOR + ROLLOUT_SLACK) * max(desired, 1)
            if asyncio.get_running_loop().time() - started > limit:
                failed = _last_failure(tasks, deployment_id)
                waiting = [t["Status"].get("Err") for t in wanted if t["Status"].get("Err")]
                said = f"; the last failed task: {failed}" if failed else ""
                if not failed and waiting:  # not placed: no node satisfies its placement
                    said = f"; Swarm says: {waiting[0]}"
                return (
                    f"{len(healthy)} of {desired} tasks of the new release passed their "
                    f"health check within {limit:g} s{said}"
                )
            await asyncio.sleep(POLL)

    async def stop(self, ref: str, grace: float = 10) -> None:
        """Remove the Swarm service when its spec is this start's (a stop, a delete, an
        orphan); an older start's ref (a newer one took the service over) changes nothing."""
        name, _, start_id = split_ref(ref)
        service = await self._service(name)
        if service is None or start_of(service) != start_id:
            return
        await self._remove(name)

    async def abandon(self, ref: str) -> None:
        """Undo a start that did not take (a release that did not go live, a failed or
        cancelled restart): Swarm rolls the service back to the spec it ran before; a service
        this start created is removed. Another start's spec (Swarm rolled back already, or a
        newer start) is left alone. A concurrent change of the service (its version moved) is
        read again."""
        name, deployment_id, start_id = split_ref(ref)
        for attempt in range(3):
            service = await self._service(name)
            if service is None or start_of(service) != start_id:
                return
            try:
                if start_of(service, "PreviousSpec") is None:
                    await self._remove(name)
                    return
                _LOGGER.info("rolling %s back to its spec before %s", name, deployment_id)
                await self.send(
                    "POST",
                    f"/services/{service['ID']}/update",
                    params={"version": str(service["Version"]["Index"]), "rollback": "previous"},
                    body=service["Spec"],
                )
                return
            except RuntimeFailure as err:
                if attempt == 2 or "out of sequence" not in err.message:
                    raise

    async def _remove(self, name: str) -> None:
        try:
            await self.send("DELETE", f"/services/{name}")
        except RuntimeFailure as err:
            if err.engine_status != 404:
                raise

    async def status(self, ref: str | None) -> InstanceStatus:
        if ref is None:
            return InstanceStatus("stopped", None, None, 0, None)
        name, _, _ = split_ref(ref)
        service = await self._service(name)  # an engine error is one, not "gone"
        if service is None:
            return InstanceStatus("unknown", ref, None, 0, "the swarm service is gone")
        tasks = await self._tasks(name)
        desired = service["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 1)
        running = [
            t
            for t in tasks
            if t.get("DesiredState") == "running" and t["Status"]["State"] == "running"
        ]
        # Tasks Swarm replaced after they died (a kill, a failed check): its restarts.
        restarts = sum(1 for t in tasks if t["Status"]["State"] in FAILED_STATES)
        if len(running) >= desired:
            status = "running"
        elif running or not any(t["Status"]["State"] in FAILED_STATES for t in tasks):
            status = "starting"
        else:
            status = "crashed"
        started = min((t["Status"].get("Timestamp", "") for t in running), default=None)
        failed = _last_failure(tasks, None)
        return InstanceStatus(
            status,
            ref,
            docker_time(started),
            restarts,
            failed if status != "running" else None,
            (len(running), desired),
        )

    async def instances(self) -> list[Instance]:
        filters = json.dumps({"label": [f"{LABEL_AGENT}={self._agent_id}", LABEL_SERVICE]})
        found = []
        for service in await self.get_json("/services", {"filters": filters}) or ():
            labels = service["Spec"].get("Labels") or {}
            deployment_id = labels.get(LABEL_DEPLOYMENT, "")
            start_id = labels.get(LABEL_START, "")
            found.append(
                Instance(
                    f"{service['Spec']['Name']}@{deployment_id}@{start_id}",
                    labels.get(LABEL_SERVICE, ""),
                    deployment_id,
                    None,
                    True,
                )
            )
        return found

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        """The tasks of each service that run on this node, summed (instance metrics stay per
        host: a task on another node is not counted)."""
        by_container: dict[str, str] = {}
        for ref in refs:
            name, _, _ = split_ref(ref)
            filters = json.dumps({"label": [f"com.docker.swarm.service.name={name}"]})
            for container in await self.get_json("/containers/json", {"filters": filters}) or ():
                by_container[container["Id"]] = ref
        sampled = await super().usage(list(by_container))
        totals: dict[str, Usage] = {}
        for container, usage in sampled.items():
            ref = by_container[container]
            total = totals.get(ref)
            totals[ref] = usage if total is None else _add(total, usage)
        return totals

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        said = []
        try:
            async for line in self.logs(ref, tail=lines, since=None, follow=False):
                said.append(line.message)
        except RuntimeFailure:
            return ""
        return "\n".join(said[-lines:])

    def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]:
        """The service's logs, from all its tasks (Swarm gathers them from every node)."""
        name, _, _ = split_ref(ref)
        return self._engine_logs(f"/services/{name}/logs", tail, since, follow)


def _task_service(task: dict[str, Any]) -> str:
    labels = task.get("Spec", {}).get("ContainerSpec", {}).get("Labels") or {}
    service_id = labels.get(LABEL_SERVICE, "")
    return swarm_service(service_id) if service_id else ""


def _identity(spec: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one task spec from another of ours (a task's copy of the template lacks a
    few fields the service's has, so the two are not compared whole)."""
    container = spec.get("ContainerSpec") or {}
    return (
        container.get("Image"),
        container.get("Env"),
        container.get("Command"),
        container.get("Labels"),
        spec.get("ForceUpdate", 0),
    )


def _task_deployment(task: dict[str, Any]) -> str | None:
    labels = task.get("Spec", {}).get("ContainerSpec", {}).get("Labels") or {}
    return labels.get(LABEL_DEPLOYMENT)


def _last_failure(tasks: list[dict[str, Any]], deployment_id: str | None) -> str | None:
    """The newest failed task's error, as Swarm says it (of one release, or of any)."""
    failed = [
        t
        for t in tasks
        if t["Status"]["State"] in FAILED_STATES
        and (deployment_id is None or _task_deployment(t) == deployment_id)
    ]
    if not failed:
        return None
    newest = max(failed, key=lambda t: t["Status"].get("Timestamp", ""))
    status = newest["Status"]
    return str(status.get("Err") or status.get("Message") or status["State"])


def _rolled_back(update: dict[str, Any], tasks: list[dict[str, Any]], deployment_id: str) -> str:
    said = update.get("Message") or "Swarm rolled the update back"
    failed = _last_failure(tasks, deployment_id)
    return f"{said} ({failed})" if failed else said


def _add(a: Usage, b: Usage) -> Usage:
    def plus(x: int | None, y: int | None) -> int | None:
        return None if x is None or y is None else x + y

    return Usage(
        a.cpu_percent + b.cpu_percent,
        a.memory_bytes + b.memory_bytes,
        a.restarts + b.restarts,
        plus(a.net_rx_bytes, b.net_rx_bytes),
        plus(a.net_tx_bytes, b.net_tx_bytes),
    )


def _repo_dockerfile(source: Path) -> str:
    """The repository's own Dockerfile, read from the source tar (blocking: a worker thread
    calls _dockerfile)."""
    with tarfile.open(source) as tar:
        for member in tar:
            if member.isfile() and member.name.lstrip("./") == "Dockerfile":
                extracted = tar.extractfile(member)
                assert extracted is not None
                return extracted.read(1 << 20).decode("utf-8", "replace")
    raise RuntimeFailure("the repository has no Dockerfile at its top")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _probe_context(busybox: Path) -> str:
    handle, name = tempfile.mkstemp(suffix=".tar")
    with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(busybox, ".dployr/busybox")
        link = tarfile.TarInfo(".dployr/true")  # what `nc -e` runs once connected
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
        data = b"FROM scratch\nCOPY .dployr /.dployr\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return name
