"""The systemd target: releases built on the host (runtime/host_build.py) as the service's own
unprivileged user, each instance a unit of its own (runtime/units.py), started, stopped and
read through systemctl and journald (runtime/systemctl.py).

An instance's unit is `dployr-<service>-<n>-<suffix>.service` in /etc/systemd/system, enabled
(so a reboot starts it before the daemon is back), with its env in a root-owned 0600 file under
<data_dir>/units/. Builds run through `systemd-run` as transient units: outside the daemon's
cgroup, so a restart of the daemon never kills a build or an app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

from dployr.config import Config
from dployr.runtime import host_volumes, systemctl
from dployr.runtime.detect import systemd_booted
from dployr.runtime.host_build import APP_DIR, HostBuilder, read_manifest, run_environment
from dployr.runtime.interpreters import HOST_RUNTIMES, Interpreters
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
from dployr.runtime.units import (
    Unit,
    UnsafeValue,
    install_unit,
    is_unit_name,
    our_units,
    render_env_file,
    render_unit,
    uninstall_unit,
    unit_name,
    user_name,
    write_private,
)
from dployr.runtime.usage import TreeSampler
from dployr.tasks import run_to_end, undone_on_cancel

_LOGGER = logging.getLogger(__name__)
UNIT_DIR = Path("/etc/systemd/system")
# An instance's PATH after its release's own dirs (the venv's bin): systemd's default.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The build's cache dirs (host_build.build_environment and _pip): the only ones of
# <data_dir>/cache/<service>/ the service's user owns (the git cache beside them stays root's).
CACHE_DIRS = ("pip", "wheels", "npm", "go", "go-build", "cargo")


class SystemdTarget:
    name = "systemd"
    rolling = False
    late = False  # systemd is PID 1 from boot, or never

    def __init__(
        self,
        config: Config,
        agent_id: str,
        *,
        unit_dir: Path = UNIT_DIR,
        interpreters: Interpreters | None = None,
    ) -> None:
        self._data = config.data_path
        self._agent_id = agent_id
        self._unit_dir = unit_dir
        self._env_dir = self._data / "units"
        self._interpreters = interpreters or Interpreters()
        # For naming, owning and removing release dirs; builds get a builder of their own
        # with a runner that runs as the service's user.
        self._releases = HostBuilder(self._data, self._interpreters, UserRunner(self, ""))
        self._user_lock = asyncio.Lock()
        self._trees = TreeSampler()

    async def problem(self) -> str | None:
        if not await systemd_booted():
            return "systemd is not PID 1 on this host"
        if os.geteuid() != 0:
            return "the daemon does not run as root (it creates users and units)"
        missing = await asyncio.to_thread(_missing_tool)
        return f"{missing} is not installed" if missing else None

    def runtimes(self) -> tuple[str, ...]:
        return HOST_RUNTIMES

    def admins_only(self) -> str | None:
        return None  # builds and apps run as the service's own user

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        return await self._interpreters.check_version(runtime, version)

    async def close(self) -> None:
        return None

    # -- the service's user ------------------------------------------------------------------

    async def ensure_user(self, service_id: str) -> str:
        """The service's system user (no login shell, home its releases dir), made once."""
        user = user_name(service_id)
        async with self._user_lock:
            if not await asyncio.to_thread(_user_exists, user):
                home = self._data / "releases" / service_id
                await systemctl.run(
                    "useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", str(home), "--shell", "/usr/sbin/nologin", "--", user,
                )  # fmt: skip
                _LOGGER.info("created user %s for service %s", user, service_id)
        return user

    async def give(self, user: str, release: Path, cache: Path) -> None:
        """The release dir and the build caches to `user`; the dirs above them traversable
        (o+x: names can be reached, not listed), the service's releases dir its group's."""
        await asyncio.to_thread(_open_path, self._data, release, cache, user)
        await systemctl.run("chown", "-hR", "--", f"{user}:{user}", str(release))

    def build_env_path(self, unit: str) -> Path:
        """Where a build command's environment file goes (root's 0600, removed after it)."""
        return self._env_dir / f"{unit}.build.env"

    # -- artifacts: release dirs ---------------------------------------------------------------

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        user = await self.ensure_user(request.service_id)
        runner = UserRunner(self, user)
        return await HostBuilder(self._data, self._interpreters, runner).build(request, output)

    def artifact_name(self, service_id: str, number: int) -> str:
        return self._releases.artifact_name(service_id, number)

    def owns(self, artifact: str | None, service_id: str) -> bool:
        return self._releases.owns(artifact, service_id)

    async def has_artifact(self, artifact: str) -> bool:
        return await self._releases.has_artifact(artifact)

    async def remove_artifact(self, artifact: str) -> None:
        """The release dir, and first any build of it still running: a build is a unit of its
        own, so a daemon that stopped mid-build (reconcile then removes the release) or a
        cancel that could not reach it leaves one behind."""
        path = Path(artifact)
        if self.owns(artifact, path.parent.name):
            prefix = build_unit_prefix(path.parent.name, path.name)
            pattern = prefix + "*.service"
            await systemctl.systemctl("kill", "--signal=SIGKILL", "--", pattern, check=False)
            await systemctl.systemctl("stop", "--", pattern, check=False)
            for left in await asyncio.to_thread(list, self._env_dir.glob(prefix + "*.build.env")):
                await asyncio.to_thread(left.unlink, True)  # a killed daemon's build left it
        await self._releases.remove_artifact(artifact)
        if self.owns(artifact, path.parent.name):  # the service's last release: its dir goes
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.parent.rmdir)

    # -- instances: units -------------------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> Instance:
        release = Path(spec.artifact)
        if not self.owns(spec.artifact, spec.service_id):
            raise RuntimeFailure(f"{spec.artifact} is not a release dir of this service")
        manifest = await asyncio.to_thread(read_manifest, release)
        run_cmd = spec.run_cmd or manifest.run_cmd
        if not run_cmd:
            raise RuntimeFailure("the release has no run command: give run_cmd")
        user = await self.ensure_user(spec.service_id)
        host_port = None
        env = {**run_environment(manifest, release, BASE_PATH), **spec.env}
        # Each volume: its directory the user's, writable, and bound at `path` in the unit's
        # namespace; its directory also in DPLOYR_VOLUME_<NAME>, as on the process target.
        owner = await asyncio.to_thread(_ids_of, user)
        dirs = await asyncio.to_thread(host_volumes.prepare, self._data, spec.volumes, owner)
        env.update(host_volumes.volume_env(self._data, spec.volumes))
        if spec.port is not None:
            host_port = spec.host_port or await asyncio.to_thread(free_loopback_port)
            env["PORT"] = str(host_port)
        name = unit_name(spec.service_name, spec.number, secrets.token_hex(3))
        unit = Unit(
            name=name,
            service_name=spec.service_name,
            number=spec.number,
            agent_id=self._agent_id,
            service_id=spec.service_id,
            deployment_id=spec.deployment_id,
            host_port=host_port,
            user=user,
            workdir=str(release / APP_DIR),
            env_file=str(self._env_dir / f"{name}.env"),
            command=["/bin/sh", "-c", run_cmd],
            cpus=spec.resources.cpus,
            memory=spec.resources.memory,
            writable=[str(release), *map(str, dirs)],
            binds=[(str(d), m.path) for d, m in zip(dirs, spec.volumes, strict=True)],
        )
        await undone_on_cancel(self._install_and_start(unit, env), lambda _: self._discard(name))
        return Instance(name, spec.service_id, spec.deployment_id, host_port, True)

    async def _install_and_start(self, unit: Unit, env: Mapping[str, str]) -> None:
        """Files first (the env file 0600, the unit checked by systemd-analyze verify before
        systemd sees it), then one daemon-reload and the start. A start that fails leaves
        nothing behind, and says what the journal said."""
        try:
            text = await asyncio.to_thread(render_unit, unit)
            env_text = render_env_file(env)
        except UnsafeValue as err:
            raise RuntimeFailure(f"the unit cannot be written: {err}") from err
        staged = self._env_dir / unit.name
        await asyncio.to_thread(write_private, Path(unit.env_file), env_text)
        await asyncio.to_thread(write_private, staged, text)
        try:
            await systemctl.verify(staged)
            await asyncio.to_thread(install_unit, staged, self._unit_dir, unit.name)
            await systemctl.systemctl("daemon-reload")
            await systemctl.systemctl("start", "--", unit.name)
        except RuntimeFailure as err:
            said = await systemctl.last_lines(unit.name, 10)
            await run_to_end(self._discard(unit.name))
            raise RuntimeFailure(f"{err.message}{': ' + said if said else ''}") from err
        finally:
            await asyncio.to_thread(staged.unlink, True)

    async def _discard(self, name: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            await self.stop(name, grace=0)

    async def abandon(self, ref: str) -> None:
        await self.stop(ref, grace=5)

    async def stop(self, ref: str, grace: float = 10) -> None:
        """Stop the unit (SIGTERM, SIGKILL after its TimeoutStopSec; at once for grace 0) and
        remove its files; a unit that is not there is not an error."""
        if not is_unit_name(ref):
            return
        if grace <= 0:
            await systemctl.systemctl("kill", "--signal=SIGKILL", "--", ref, check=False)
        await systemctl.systemctl("stop", "--", ref, check=False)
        await asyncio.to_thread(uninstall_unit, self._unit_dir, self._env_dir, ref)
        await systemctl.systemctl("daemon-reload")
        await systemctl.systemctl("reset-failed", "--", ref, check=False)

    async def status(self, ref: str | None) -> InstanceStatus:
        if ref is None:
            return InstanceStatus("stopped", None, None, 0, None)
        if not is_unit_name(ref):
            return InstanceStatus("unknown", ref, None, 0, "not a unit of dployr")
        return systemctl.status_from_show(ref, await systemctl.show(ref))

    async def instances(self) -> list[Instance]:
        """Every unit file of this agent's in the unit dir, running or not."""
        found = []
        for name, markers in await asyncio.to_thread(our_units, self._unit_dir, self._agent_id):
            shown = await systemctl.show(name)
            port = markers.get("port", "")
            found.append(
                Instance(
                    name,
                    markers.get("service", ""),
                    markers.get("deployment", ""),
                    int(port) if port.isdigit() else None,
                    shown.get("ActiveState") in ("active", "activating", "reloading"),
                )
            )
        return found

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        """One `systemctl show` for every unit named, then each main process's tree through
        psutil in one worker thread; CPU % from our previous reading of that unit."""
        units = [ref for ref in refs if is_unit_name(ref)]
        if not units:
            return {}
        out = await systemctl.systemctl(
            "show", "-p", "Id,MainPID,NRestarts,ActiveState", "--", *units, check=False
        )
        running = {}
        for block in out.split("\n\n"):
            shown = systemctl.parse_show(block)
            pid = int(shown.get("MainPID") or 0)
            if shown.get("Id") in units and shown.get("ActiveState") == "active" and pid:
                running[shown["Id"]] = (pid, int(shown.get("NRestarts") or 0))
        return await self._trees.sample(running)

    async def logs(
        self, ref: str, *, tail: int | None, since: str | None, follow: bool
    ) -> AsyncIterator[LogLine]:
        if not is_unit_name(ref):
            raise RuntimeFailure(f"{ref} is not a unit of dployr")
        async for line in systemctl.journal(ref, tail=tail, since=since, follow=follow):
            yield line

    # -- volumes (SPEC §14): directories under <data_dir>/volumes ---------------------------

    async def volume_size(self, mount: Mount) -> int | None:
        return await host_volumes.volume_size(self._data, mount)

    async def remove_volume(self, mount: Mount) -> None:
        await host_volumes.remove_volume(self._data, mount)

    async def recent_output(self, ref: str, lines: int = 20) -> str:
        if not is_unit_name(ref):
            return ""
        try:
            return await systemctl.last_lines(ref, lines)
        except RuntimeFailure:
            return ""


class UserRunner:
    """host_build's runner: each command a transient unit (`systemd-run --wait --pipe`) as the
    service's user, outside the daemon's cgroup, sandboxed like the app (it may write its
    release dir and its caches only); killed with its unit on a cancel or the time limit."""

    def __init__(self, target: SystemdTarget, user: str) -> None:
        self._target = target
        self._user = user
        self._writable: list[Path] = []
        self._prefix = ""

    async def prepare(self, paths: Sequence[Path]) -> None:
        release, cache = paths
        self._prefix = build_unit_prefix(release.parent.name, release.name)
        await self._target.give(self._user, release, cache)
        self._writable = [release, *(cache / d for d in CACHE_DIRS)]

    async def run(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> int:
        unit = f"{self._prefix}{secrets.token_hex(3)}"
        # The environment goes in a root-only file, never on a command line (a PIP_INDEX_URL
        # may carry a password; command lines are every user's to read).
        env_file = self._target.build_env_path(unit)
        await asyncio.to_thread(write_private, env_file, render_env_file(env))
        properties = [
            "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
            "ReadWritePaths=" + " ".join(f"-{p}" for p in self._writable),
            f"EnvironmentFile={env_file}",
        ]  # fmt: skip
        command = [
            "systemd-run", "--wait", "--pipe", "--collect", "--quiet", f"--unit={unit}",
            f"--uid={self._user}", f"--gid={self._user}", f"--working-directory={cwd}",
            *(f"--property={p}" for p in properties),
            "--", *argv,
        ]  # fmt: skip
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except BaseException:
            await asyncio.to_thread(env_file.unlink, True)
            raise
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            return await process.wait()
        finally:
            if process.returncode is None:  # a cancel or the time limit: the unit goes too
                await run_to_end(self._kill(unit, process))
            await run_to_end(asyncio.to_thread(env_file.unlink, True))

    async def _kill(self, unit: str, process: asyncio.subprocess.Process) -> None:
        await systemctl.systemctl("kill", "--signal=SIGKILL", "--", f"{unit}.service", check=False)
        await systemctl.systemctl("stop", "--", f"{unit}.service", check=False)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def build_unit_prefix(service_id: str, number: str) -> str:
    """`dployr-build-<the id's random part>-<n>-`: a build's units, found by release."""
    return f"dployr-build-{service_id.split('_', 1)[-1]}-{number}-"


def _missing_tool() -> str | None:
    """Blocking (PATH lookups): the first tool the target needs that is not installed."""
    for tool in ("systemctl", "systemd-run", "systemd-analyze", "journalctl", "useradd"):
        if shutil.which(tool) is None:
            return tool
    return None


def _ids_of(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _open_path(data: Path, release: Path, cache: Path, user: str) -> None:
    """Blocking: what the service's user must reach. The data dir and the releases and cache
    dirs get o+x only; <releases>/<service> is root:<user> 0750; the cache's dirs are the
    user's (the repo's git cache beside them stays root's, out of its reach)."""
    for folder in (data, data / "releases", data / "cache"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(folder.stat().st_mode & 0o777 | 0o711)
    owner = pwd.getpwnam(user)
    service_dir = release.parent
    os.chown(service_dir, 0, owner.pw_gid)
    service_dir.chmod(0o750)
    cache.mkdir(mode=0o711, exist_ok=True)
    cache.chmod(0o711)
    for name in CACHE_DIRS:
        own = cache / name
        own.mkdir(mode=0o700, exist_ok=True)
        os.lchown(own, owner.pw_uid, owner.pw_gid)
