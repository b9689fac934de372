"""The docker target: images built and containers run on the local Docker engine.

Container and image changes go through the Docker SDK in threads. The reads an idle daemon
makes (listing and inspecting containers at start) and the two streams that must be
cancellable — a build (stopped at its time limit) and a followed log — talk to the engine's
HTTP API with aiohttp instead: closing the connection makes the engine stop the build and
remove its intermediate container, and a log follower leaves no thread behind."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from dployr.config import Config
from dployr.errors import ValidationError
from dployr.ids import parse_iso
from dployr.runtime import docker_volumes
from dployr.runtime.catalog import CATALOG, base_image, render_dockerfile
from dployr.runtime.detect import docker_problem, docker_url
from dployr.runtime.docker_stats import DockerStats
from dployr.runtime.engine_api import (
    DOCKERFILE_NAME,
    build_context,
    close_failed_sockets,
    docker_time,
    engine_message,
    frames,
)
from dployr.runtime.ports import free_loopback_port
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
from dployr.tasks import run_to_end, undone_on_cancel

if TYPE_CHECKING:
    import docker

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
API_VERSION = "1.41"  # Debian 12's engine (20.10); every call we make exists there
LABEL_AGENT = "dployr.agent"
LABEL_SERVICE = "dployr.service"
LABEL_DEPLOYMENT = "dployr.deployment"
LABEL_OWNER = "dployr.owner"
LABEL_DATABASE = "dployr.database"  # a managed database's container (dployr.databases), no app
SWARM_TASK = "com.docker.swarm.task.id"  # the engine's label on a Swarm task's container


def owner_network(owner_id: str) -> str:
    """The owner's private bridge network (SPEC §14): their containers and databases reach each
    other by name on it; other owners' containers are on networks of their own."""
    return f"dployr-{owner_id}"


PORT_ATTEMPTS = 5
DF_TTL = 2.0  # seconds an answer of GET /system/df serves volume_size
POOL_CONNECTIONS = 100  # engine connections of the logs and the calls pools (aiohttp default)


_STEP = re.compile(r"^Step (\d+)/(\d+) : ")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,64})$")  # the image a finished build step made


class DockerTarget:
    """Made with no engine call (the engine may start later) and no SDK client yet either."""

    name = "docker"
    rolling = False
    late = True  # dockerd may start after the daemon: deployments wait for it

    def __init__(self, config: Config, agent_id: str) -> None:
        self._config = config
        self._url = docker_url(config.runtime)
        self._agent_id = agent_id
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        # The engine does not refuse a second network of the same name made at the same time
        # (check_duplicate is not atomic): two creates in flight made two, and then no
        # container could join either ("network … is ambiguous").
        self._network_lock = threading.Lock()
        self._sessions: dict[str, aiohttp.ClientSession] = {}  # by purpose, see _http
        self._df: tuple[float, asyncio.Future[Any]] | None = None  # volume_size's last answer
        self._stats = DockerStats(self._get_json, local=self._url.startswith("unix://"))

    async def problem(self) -> str | None:
        return await docker_problem(self._config.runtime)

    def runtimes(self) -> tuple[str, ...]:
        return tuple(CATALOG)

    def admins_only(self) -> str | None:
        return None  # builds and apps run in containers

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        """A templated runtime's version names a base image: the catalog's default when none."""
        catalog = CATALOG[runtime]
        if not catalog.templated:
            return version
        if version is None:
            version = catalog.default_version
        if version is None:
            raise ValidationError("version", f"is required for runtime {runtime}")
        return version

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        if self._client is not None:
            await asyncio.to_thread(self._client.close)

    def _sdk(self) -> docker.DockerClient:
        """The SDK client, made by the first call through the SDK (a change, or a failed
        start's output), in that call's thread: docker, requests and urllib3 weigh ~7 MB
        that an idle daemon does not need."""
        with self._client_lock:
            if self._client is None:
                import docker

                self._client = docker.DockerClient(
                    base_url=self._url, version=API_VERSION, timeout=120
                )
            return self._client

    # -- the engine's HTTP API, for reads and the streams -----------------------------------

    def _http(self, purpose: str) -> tuple[aiohttp.ClientSession, str]:
        """A session per purpose ("build", "calls", "logs"), each with its own connection pool:
        log followers (at most POOL_CONNECTIONS, capped per user by the API) can never take the
        connections that builds and short calls (plain log reads among them) wait for. Builds
        have no pool limit (runtime.build_concurrency bounds them)."""
        session = self._sessions.get(purpose)
        if session is None:
            limit = 0 if purpose == "build" else POOL_CONNECTIONS  # 0: no pool limit
            if self._url.startswith("unix://"):
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                    path=self._url[len("unix://") :], limit=limit
                )
                self._base = f"http://docker/v{API_VERSION}"
            else:
                connector = aiohttp.TCPConnector(limit=limit)
                self._base = f"http://{self._url.split('://', 1)[1]}/v{API_VERSION}"
            session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
            self._sessions[purpose] = session
        return session, self._base

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(client, *args, **kwargs)` in a thread; the SDK's failures become RuntimeFailure."""

        def run() -> T:
            import docker.errors
            import requests

            try:
                return fn(self._sdk(), *args, **kwargs)
            except docker.errors.APIError as err:
                raise RuntimeFailure(str(err.explanation or err)) from err
            except (docker.errors.DockerException, requests.RequestException) as err:
                close_failed_sockets(err)
                raise RuntimeFailure(f"the Docker engine is not reachable: {err}") from err

        return await asyncio.to_thread(run)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`_call` for dployr.databases: the managed databases share this SDK client."""
        return await self._call(fn, *args, **kwargs)

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """`_get_json` for dployr.databases: their reads (a watch lists and inspects them every
        minute) go through the HTTP API, never loading the SDK into an idle daemon."""
        return await self._get_json(path, params)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A call of the engine's HTTP API with a JSON body (the swarm target's service
        calls); its JSON answer (None when empty). An engine refusal is a RuntimeFailure with
        the engine's message; `status` on it says which (404: not there)."""
        session, base = self._http("calls")
        try:
            async with session.request(
                method,
                f"{base}{path}",
                params=params,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=120),
            ) as response:
                raw = await response.read()
                if response.status >= 300:
                    failure = RuntimeFailure(engine_message(raw))
                    failure.engine_status = response.status
                    raise failure
                return json.loads(raw) if raw.strip() else None
        except (aiohttp.ClientError, TimeoutError) as err:
            reason = str(err) or type(err).__name__
            raise RuntimeFailure(f"the Docker engine is not reachable: {reason}") from err

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a JSON document from the engine; None when it answers 404."""
        session, base = self._http("calls")
        try:
            async with session.get(
                f"{base}{path}", params=params, timeout=aiohttp.ClientTimeout(total=120)
            ) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise RuntimeFailure(engine_message(await response.read()))
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as err:
            reason = str(err) or type(err).__name__
            raise RuntimeFailure(f"the Docker engine is not reachable: {reason}") from err

    # -- images -----------------------------------------------------------------------------

    def artifact_name(self, service_id: str, number: int) -> str:
        return f"dployr/{service_id}:{number}"

    def owns(self, artifact: str | None, service_id: str) -> bool:
        return bool(artifact and artifact.startswith(f"dployr/{service_id}:"))

    def _dockerfile(self, request: BuildRequest) -> str | None:
        """Ours, rendered from templates/, or None for the repository's own Dockerfile."""
        catalog = CATALOG[request.runtime]
        if not catalog.templated:
            return None
        assert request.version is not None  # check_version gave it one
        image = base_image(self._config, catalog, request.version)
        return render_dockerfile(catalog, image, request.build_cmd, request.run_cmd)

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        tag = self.artifact_name(request.service_id, request.number)
        dockerfile = await asyncio.to_thread(self._dockerfile, request)
        context = request.source.with_name("context.tar")
        await asyncio.to_thread(build_context, request.source, dockerfile, context)
        params = {
            "t": tag,
            "rm": "1",
            "forcerm": "1",
            # The agent's label only: the engine adds a build step per label, on every build
            # (about 90 ms each), and the tag already names the service and the release.
            "labels": json.dumps({LABEL_AGENT: self._agent_id}),
        }
        if dockerfile is not None:
            params["dockerfile"] = DOCKERFILE_NAME
        session, base = self._http("build")
        layers: list[str] = []
        try:
            async with asyncio.timeout(request.timeout):
                await self._stream_build(session, base, params, context, output, layers)
        except TimeoutError:
            # Leaving the `async with` closed the connection: the engine stops the build.
            await run_to_end(self._drop_layers(layers))
            raise RuntimeFailure(f"the build ran past its limit of {request.timeout:g} s") from None
        except aiohttp.ClientError as err:
            await run_to_end(self._drop_layers(layers))
            raise RuntimeFailure(f"the Docker engine is not reachable: {err}") from err
        except BaseException:
            await run_to_end(self._drop_layers(layers))
            raise
        finally:
            await asyncio.to_thread(context.unlink, missing_ok=True)
        return tag

    async def _drop_layers(self, layers: list[str]) -> None:
        """A build that stops half-way (a failed step, its time limit, a cancel) leaves the
        layers of its finished steps as untagged, unlabelled images nobody would remove: remove
        the last one and, with it, its parents that nothing else uses. A layer that a tagged
        image is built on (a cached step) stays."""
        if not layers:
            return
        try:
            await self._call(lambda client: client.images.remove(layers[-1], noprune=False))
        except RuntimeFailure as err:
            _LOGGER.debug("layer %s of a stopped build stays: %s", layers[-1], err)

    async def _stream_build(
        self,
        session: aiohttp.ClientSession,
        base: str,
        params: dict[str, str],
        context: Path,
        output: BuildOutput,
        layers: list[str],
    ) -> None:
        with context.open("rb") as body:
            async with session.post(
                f"{base}/build",
                params=params,
                data=body,
                headers={"Content-Type": "application/x-tar"},
            ) as response:
                if response.status != 200:
                    raise RuntimeFailure(engine_message(await response.read()))
                async for raw in response.content:
                    chunk = json.loads(raw) if raw.strip() else {}
                    if "error" in chunk:
                        raise RuntimeFailure(str(chunk["error"]).strip())
                    for text in str(chunk.get("stream", "")).splitlines():
                        if layer := _LAYER.match(text):
                            layers.append(layer.group(1))
                        if text.strip():
                            output.line(text)
                            if step := _STEP.match(text):
                                output.step(int(step.group(1)), int(step.group(2)), text)

    async def has_artifact(self, artifact: str) -> bool:
        try:
            await self._call(lambda client: client.images.get(artifact))
        except RuntimeFailure:
            return False
        return True

    async def remove_artifact(self, artifact: str) -> None:
        try:
            await self._call(lambda client: client.images.remove(artifact, noprune=False))
        except RuntimeFailure as err:
            _LOGGER.info("image %s not removed: %s", artifact, err)

    # -- containers ---------------------------------------------------------------------------

    def _labels(self, service_id: str, deployment_id: str) -> dict[str, str]:
        return {
            LABEL_AGENT: self._agent_id,
            LABEL_SERVICE: service_id,
            LABEL_DEPLOYMENT: deployment_id,
        }

    async def start(self, spec: InstanceSpec) -> Instance:
        """Run the release on a loopback port: the one asked for, else a fresh one (retried
        when another process takes it between our probe and the engine's bind)."""
        last: RuntimeFailure | None = None
        for _ in range(PORT_ATTEMPTS if spec.host_port is None else 1):
            host_port = (
                None  # a worker publishes nothing
                if spec.port is None
                else spec.host_port or await asyncio.to_thread(free_loopback_port)
            )
            try:
                container = await self._create_and_start(spec, host_port)
            except RuntimeFailure as err:
                last = err
                if "port is already allocated" in str(err) or "address already in use" in str(err):
                    continue
                raise
            return Instance(container.id, spec.service_id, spec.deployment_id, host_port, True)
        assert last is not None
        raise last

    async def _create_and_start(self, spec: InstanceSpec, host_port: int | None) -> Any:
        """The engine call runs in a thread that a cancel cannot stop: a cancel waits for it
        and removes the container it made, so a cancelled release leaves nothing running
        (with `unless-stopped`, it would even come back after a reboot)."""
        name = f"dployr-{spec.service_name}-{spec.number}-{secrets.token_hex(3)}"
        return await undone_on_cancel(
            self._call(self._run, spec, host_port, name),
            lambda creating: self._discard(creating, name),
        )

    async def _discard(self, creating: asyncio.Future[Any], name: str) -> None:
        await asyncio.wait({creating})
        if not creating.cancelled() and creating.exception() is None:
            _LOGGER.info("removing container %s: its start was cancelled", name)
            try:
                await self.stop(name, grace=0)
            except RuntimeFailure as err:  # the cancel goes on; reconcile removes it later
                _LOGGER.warning("could not remove container %s: %s", name, err)

    def _run(
        self, client: docker.DockerClient, spec: InstanceSpec, host_port: int | None, name: str
    ) -> Any:
        kwargs: dict[str, Any] = {}
        if spec.resources.cpus:
            kwargs["nano_cpus"] = int(spec.resources.cpus * 1e9)
        if spec.resources.memory:
            kwargs["mem_limit"] = spec.resources.memory
        if spec.run_cmd and not CATALOG[spec.runtime].templated:
            # A templated runtime's Dockerfile runs run_cmd already; an image or the repo's
            # own Dockerfile gets it as the container's command.
            kwargs["command"] = ["/bin/sh", "-c", spec.run_cmd]
        if spec.owner_id:
            kwargs["network"] = self._ensure_network(client, spec.owner_id)
        if spec.volumes:
            labels = {LABEL_AGENT: self._agent_id, LABEL_OWNER: spec.owner_id}
            kwargs["volumes"] = {
                docker_volumes.ensure_volume(client, labels, m): {"bind": m.path, "mode": "rw"}
                for m in spec.volumes
            }
        environment = dict(spec.env)
        if spec.port is not None:  # a worker (no port) gets no PORT and publishes nothing
            assert host_port is not None
            environment["PORT"] = str(spec.port)
            kwargs["ports"] = {f"{spec.port}/tcp": ("127.0.0.1", host_port)}
        container = client.containers.create(
            spec.artifact,
            name=name,
            labels=self._labels(spec.service_id, spec.deployment_id),
            environment=environment,
            restart_policy={"Name": "unless-stopped"},
            # An init as PID 1 forwards SIGTERM: an app that installs no handler (most do not)
            # still stops at once instead of after the grace period, and zombies are reaped.
            init=True,
            # A small VPS's disk: the engine keeps at most 3 x 10 MB of output per container.
            log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            **kwargs,
        )
        from docker.errors import APIError  # loaded already: this runs in _call, after _sdk()

        try:
            container.start()
        except APIError:
            container.remove(v=True, force=True)
            raise
        return container

    async def ensure_network(self, owner_id: str) -> str:
        return await self._call(self._ensure_network, owner_id)

    def _ensure_network(self, client: docker.DockerClient, owner_id: str) -> str:
        """The owner's network, made on first use (a bridge: the engine keeps traffic between
        two bridge networks apart)."""
        name = owner_network(owner_id)
        with self._network_lock:
            self._make_network(client, name, owner_id)
        return name

    def _make_network(self, client: docker.DockerClient, name: str, owner_id: str) -> None:
        """A bridge; on a swarm manager an attachable overlay instead, so that the owner's
        swarm services (SPEC §15) share it with their containers and databases."""
        from docker.errors import APIError  # loaded already: this runs in _call, after _sdk()

        if not any(n.name == name for n in client.networks.list(names=[name])):
            swarm = client.info().get("Swarm") or {}
            manager = swarm.get("LocalNodeState") == "active" and swarm.get("ControlAvailable")
            try:
                client.networks.create(
                    name,
                    driver="overlay" if manager else "bridge",
                    attachable=bool(manager),
                    check_duplicate=True,
                    labels={LABEL_AGENT: self._agent_id, LABEL_OWNER: owner_id},
                )
            except APIError as err:
                if err.status_code != 409:  # made meanwhile by another daemon
                    raise

    # -- volumes (SPEC §14) -------------------------------------------------------------------

    async def volume_size(self, mount: Mount) -> int | None:
        """The engine's own count (GET /system/df walks every volume and container: it is
        read only when a user asks for the sizes, once for all of a service's volumes);
        None when the volume does not exist yet."""
        now = time.monotonic()
        if self._df is None or now - self._df[0] > DF_TTL:
            self._df = (now, asyncio.ensure_future(self._get_json("/system/df")))
        try:
            usage = await asyncio.shield(self._df[1])
        except Exception:
            self._df = None
            raise
        return docker_volumes.size_in(usage, mount)

    async def remove_volume(self, mount: Mount) -> None:
        await self._call(docker_volumes.remove_volume, mount)

    async def abandon(self, ref: str) -> None:
        await self.stop(ref, grace=5)

    async def stop(self, ref: str, grace: float = 10) -> None:
        def stop_and_remove(client: docker.DockerClient) -> None:
            from docker.errors import NotFound  # loaded already: this runs in _call, after _sdk()

            try:
                container = client.containers.get(ref)
                container.stop(timeout=int(grace))
                container.remove(v=True, force=True)
            except NotFound:
                pass

        await self._call(stop_and_remove)

    async def status(self, ref: str | None) -> InstanceStatus:
        if ref is None:
            return InstanceStatus("stopped", None, None, 0, None)
        try:
            attrs = await self._get_json(f"/containers/{ref}/json")
        except RuntimeFailure:
            attrs = None
        if attrs is None:
            return InstanceStatus("unknown", ref, None, 0, "the container is gone")
        state = attrs["State"]
        status = {
            "running": "running",
            "created": "starting",
            "restarting": "crashed",
            "exited": "crashed" if state.get("ExitCode") else "stopped",
            "dead": "crashed",
        }.get(state["Status"], "unknown")
        health = state.get("Health", {}).get("Status") or (
            f"exit code {state.get('ExitCode')}" if status == "crashed" else None
        )
        return InstanceStatus(
            status, attrs["Id"], docker_time(state.get("StartedAt")), attrs["RestartCount"], health
        )

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        return await self._stats.usage(refs)

    async def instances(self) -> list[Instance]:
        filters = json.dumps({"label": [f"{LABEL_AGENT}={self._agent_id}"]})
        containers = await self._get_json("/containers/json", {"all": "1", "filters": filters})
        found = []
        for container in containers or ():
            labels = container.get("Labels") or {}
            if LABEL_DATABASE in labels:
                continue  # a managed database (dployr.databases), never a service's instance
            if SWARM_TASK in labels:
                continue  # a task of the swarm target's service: Swarm runs it, not us
            found.append(
                Instance(
                    container["Id"],
                    labels.get(LABEL_SERVICE, ""),
                    labels.get(LABEL_DEPLOYMENT, ""),
                    None,
                    container.get("State") == "running",
                )
            )
        return found

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        try:
            raw = await self._call(lambda client: client.api.logs(ref, tail=lines))
        except RuntimeFailure:
            return ""
        return bytes(raw).decode("utf-8", "replace").strip()

    def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]:
        return self._engine_logs(f"/containers/{ref}/logs", tail, since, follow)

    async def _engine_logs(
        self, path: str, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]:
        """A container's or a Swarm service's logs (the same API, the same frames)."""
        params = {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": str(int(follow))}
        params["tail"] = "all" if tail is None else str(tail)
        if since:
            params["since"] = f"{parse_iso(since).timestamp():.6f}"
        # Followers hold a connection for as long as they watch: they have a pool of their own,
        # so that a read of the last lines (a short call) never waits behind them.
        session, base = self._http("logs" if follow else "calls")
        try:
            async with session.get(f"{base}{path}", params=params) as response:
                if response.status != 200:
                    raise RuntimeFailure(engine_message(await response.read()))
                async for stream, payload in frames(response.content):
                    stamp, _, message = payload.decode("utf-8", "replace").partition(" ")
                    yield LogLine(docker_time(stamp) or stamp, stream, message.rstrip("\n"))
        except aiohttp.ClientError as err:
            raise RuntimeFailure(f"the Docker engine is not reachable: {err}") from err
