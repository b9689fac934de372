"""The host targets' build: a release dir made from the source, its dependencies installed with a
per-service cache, build_cmd run, and a manifest that says how to run it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from dployr.runtime.catalog import CATALOG
from dployr.runtime.interpreters import Interpreters, Toolchain
from dployr.runtime.keeper import kept
from dployr.runtime.protocol import BuildOutput, BuildRequest, RuntimeFailure
from dployr.runtime.safe_tar import extract_source

# The manifest sits beside the release dir (releases/<service>/<n>.json), not in it: on the
# systemd target the release dir is the service user's, and a root write or read there could
# follow a link the build or the app planted. releases/<service> is root's (0750).
MANIFEST_SUFFIX = ".json"
APP_DIR = "app"  # the source, and the instances' working directory
VENV_DIR = "venv"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# What a build takes from the daemon's environment: the operator's network and registry
# settings. Nothing else: the daemon's own variables (DPLOYR_* among them) stay out.
PASSED_ENV = ("PATH", "LANG", "TZ", "http_proxy", "https_proxy", "no_proxy")
PASSED_PREFIXES = (
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PIP_", "NPM_CONFIG_", "npm_config_", "SSL_CERT_",
    "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "GOPROXY", "GOFLAGS", "GOPRIVATE", "CARGO_",
)  # fmt: skip
# Where a catalog command is Docker's own (/app paths), the host's equivalent.
HOST_COMMANDS: dict[str, tuple[str | None, str | None]] = {
    "go": ("go build -o server .", "./server"),
}


class Runner(Protocol):
    """How a target runs its build's commands: P as a child of the daemon, S as the service's
    user outside the daemon's cgroup."""

    async def prepare(self, paths: Sequence[Path]) -> None:
        """Make `paths` (the release dir, the cache dirs) writable for the commands."""

    async def run(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> int:
        """Run `argv` to its end, its output lines (stdout and stderr) to `on_line`; its exit
        status. A cancel kills everything it started before the cancel goes on."""


class ChildRunner:
    """Commands as children of the daemon, each the leader of its own process group (the
    keeper), killed with the group on a cancel and when the daemon dies."""

    async def prepare(self, paths: Sequence[Path]) -> None:
        return None

    async def run(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> int:
        process = await asyncio.create_subprocess_exec(
            *kept(list(argv)),
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            return await process.wait()
        finally:
            # Whatever it left behind (a cancel, or a background job of a build) goes too.
            kill_group(process.pid, signal.SIGKILL)
            if process.returncode is None:
                await asyncio.shield(process.wait())


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@dataclass(frozen=True)
class Manifest:
    """How to run a release: written last, so a release dir without it is an unfinished build."""

    runtime: str
    version: str
    interpreter: str
    run_cmd: str | None  # the catalog's (host) command; a deployment's own run_cmd wins
    path: list[str] = field(default_factory=list)  # dirs before the host's PATH
    env: dict[str, str] = field(default_factory=dict)


def manifest_path(release: Path) -> Path:
    return release.with_name(release.name + MANIFEST_SUFFIX)


def read_manifest(release: Path) -> Manifest:
    """Blocking: the manifest of a built release."""
    try:
        return Manifest(**json.loads(manifest_path(release).read_text("utf-8")))
    except (OSError, ValueError, TypeError) as err:
        raise RuntimeFailure(f"the release at {release} is not a finished build: {err}") from err


def run_environment(manifest: Manifest, release: Path, base_path: str) -> dict[str, str]:
    """What an instance's environment starts from (the service's variables and PORT go on
    top): the manifest's PATH and variables, with HOME in the release dir."""
    env = {"PATH": os.pathsep.join([*manifest.path, base_path]), "HOME": str(release)}
    env["LANG"] = os.environ.get("LANG", "C.UTF-8")
    return {**env, **manifest.env}


def build_environment(cache: Path, release: Path) -> dict[str, str]:
    """Blocking (it looks for the CA bundle): what a build runs with."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    if Path(CA_BUNDLE).is_file():  # networks that re-sign TLS: pip's own bundle lacks their CA
        env.setdefault("PIP_CERT", CA_BUNDLE)
        env.setdefault("SSL_CERT_FILE", CA_BUNDLE)
        env.setdefault("NODE_EXTRA_CA_CERTS", CA_BUNDLE)
    env.update(
        HOME=str(release),
        PIP_CACHE_DIR=str(cache / "pip"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        npm_config_cache=str(cache / "npm"),
        npm_config_update_notifier="false",
        GOPATH=str(cache / "go"),
        GOCACHE=str(cache / "go-build"),
        CARGO_HOME=str(cache / "cargo"),
    )
    return env


def pyproject_requirements(app: Path) -> list[str] | None:
    """Blocking: the [project] dependencies of a pyproject.toml (None: no such file)."""
    try:
        data = tomllib.loads((app / "pyproject.toml").read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RuntimeFailure(f"pyproject.toml cannot be read: {err}") from err
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps] if isinstance(deps, list) else []


class HostBuilder:
    """Release dirs under <data_dir>/releases/<service_id>/<number>/; the artifact's name is
    that path. Caches under <data_dir>/cache/<service_id>/ (removed with the service)."""

    def __init__(self, data_dir: Path, interpreters: Interpreters, runner: Runner) -> None:
        self.releases = data_dir / "releases"
        self.cache = data_dir / "cache"
        self.interpreters = interpreters
        self.runner = runner

    def artifact_name(self, service_id: str, number: int) -> str:
        return str(self.releases / service_id / str(number))

    def owns(self, artifact: str | None, service_id: str) -> bool:
        if not artifact:
            return False
        path = Path(artifact)
        return path.parent == self.releases / service_id and path.name.isdigit()

    def _ours(self, artifact: str) -> bool:
        path = Path(artifact)
        return (
            path.parent.parent == self.releases and path.name.isdigit() and ".." not in path.parts
        )

    async def has_artifact(self, artifact: str) -> bool:
        return self._ours(artifact) and await asyncio.to_thread(
            manifest_path(Path(artifact)).is_file
        )

    async def remove_artifact(self, artifact: str) -> None:
        if self._ours(artifact):  # never a path that is not a release dir of ours
            await asyncio.to_thread(_remove_release, Path(artifact))

    async def build(self, request: BuildRequest, output: BuildOutput) -> str:
        try:
            async with asyncio.timeout(request.timeout):
                return await self._build(request, output)
        except TimeoutError:
            raise RuntimeFailure(f"the build ran past its limit of {request.timeout:g} s") from None

    async def _build(self, request: BuildRequest, output: BuildOutput) -> str:
        toolchain = await self.interpreters.resolve(request.runtime, request.version)
        release = Path(self.artifact_name(request.service_id, request.number))
        app = release / APP_DIR
        cache = self.cache / request.service_id
        host_build, host_run = HOST_COMMANDS.get(request.runtime, (None, None))
        catalog = CATALOG[request.runtime]
        build_cmd = request.build_cmd or host_build or catalog.build_cmd
        run_cmd = host_run or catalog.run_cmd
        if request.runtime == "static":
            run_cmd = toolchain.executable  # interpreters.static_server: the whole command
        total = 2 + (request.runtime in ("python", "nodejs")) + (build_cmd is not None)
        output.step(1, total, f"unpacking the source into {release}")
        await asyncio.to_thread(_fresh_release, release, request.source)
        # Everything the daemon writes into the release dir is written before it is the
        # service user's (prepare): pyproject's requirements, read from the fresh source.
        requirements = None
        if request.runtime == "python":
            requirements = await asyncio.to_thread(_python_requirements, release)
        await self.runner.prepare([release, cache])
        env = await asyncio.to_thread(build_environment, cache, release)
        manifest = Manifest(request.runtime, toolchain.version, toolchain.executable, run_cmd)
        done = 1
        if request.runtime == "python":
            done += 1
            output.step(done, total, f"installing dependencies (python {toolchain.version})")
            manifest = await self._python(
                toolchain, release, requirements, cache, env, manifest, output
            )
        elif request.runtime == "nodejs":
            done += 1
            output.step(done, total, f"installing dependencies (node {toolchain.version})")
            manifest = await self._nodejs(toolchain, release, env, manifest, output)
        elif request.runtime != "static":  # go, rust: their toolchain's dir on PATH
            manifest = replace(manifest, path=[str(Path(toolchain.executable).parent)])
        env = {**env, "PATH": os.pathsep.join([*manifest.path, env["PATH"]]), **manifest.env}
        if build_cmd is not None:
            done += 1
            output.step(done, total, f"running {build_cmd}")
            await self._command(["sh", "-c", build_cmd], app, env, output, "build_cmd")
        output.step(total, total, "writing the release manifest")
        await asyncio.to_thread(_write_manifest, release, manifest)
        return str(release)

    async def _python(
        self, toolchain: Toolchain, release: Path, requirements: Path | None, cache: Path,
        env: dict[str, str], manifest: Manifest, output: BuildOutput,
    ) -> Manifest:  # fmt: skip
        app, venv = release / APP_DIR, release / VENV_DIR
        venv_cmd = [toolchain.executable, "-m", "venv", str(venv)]
        if requirements is None:
            venv_cmd.insert(3, "--without-pip")  # nothing to install: a second faster
        await self._command(venv_cmd, app, env, output, "creating the venv")
        if requirements is not None:
            await self._pip(venv, requirements, cache, env, output)
        return replace(manifest, path=[str(venv / "bin")], env={"VIRTUAL_ENV": str(venv)})

    async def _pip(
        self, venv: Path, requirements: Path, cache: Path, env: dict[str, str],
        output: BuildOutput,
    ) -> None:  # fmt: skip
        """Installs from the service's wheel cache alone when it has everything (a code change
        downloads nothing, whatever HTTP caching headers the network keeps); else the missing
        wheels are fetched (or built) into it first. Like the docker target's dependency layer,
        an unpinned requirement stays at the cached version until requirements change."""
        pip, cwd = str(venv / "bin" / "pip"), requirements.parent
        wheels = str(cache / "wheels")
        offline = [pip, "install", "--no-input", "--no-index", "--find-links", wheels]
        offline += ["-r", str(requirements)]
        attempt: list[str] = []
        if await self.runner.run(offline, cwd, env, attempt.append) == 0:
            for line in attempt:
                output.line(line)
            return
        output.line("dployr: fetching what the service's wheel cache does not have yet")
        fetch = [pip, "wheel", "--no-input", "--find-links", wheels, "-w", wheels]
        await self._command([*fetch, "-r", str(requirements)], cwd, env, output, "pip wheel")
        await self._command(offline, cwd, env, output, "pip install")

    async def _nodejs(
        self, toolchain: Toolchain, release: Path, env: dict[str, str], manifest: Manifest,
        output: BuildOutput,
    ) -> Manifest:  # fmt: skip
        app = release / APP_DIR
        node_bin = str(Path(toolchain.executable).parent)
        path = [str(app / "node_modules" / ".bin"), node_bin]
        if await asyncio.to_thread(app.joinpath("package.json").is_file):
            locked = await asyncio.to_thread(
                lambda: any(
                    (app / n).is_file() for n in ("package-lock.json", "npm-shrinkwrap.json")
                )
            )
            npm = await asyncio.to_thread(shutil.which, "npm", path=node_bin) or "npm"
            argv = [npm, "ci" if locked else "install", "--omit=dev", "--no-audit", "--no-fund"]
            # The cache first: a release whose lock file did not change downloads nothing.
            argv.append("--prefer-offline")
            env = {**env, "PATH": os.pathsep.join([node_bin, env["PATH"]])}
            await self._command(argv, app, env, output, "npm install")
        return replace(manifest, path=path)

    async def _command(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], output: BuildOutput, what: str
    ) -> None:
        status = await self.runner.run(argv, cwd, env, output.line)
        if status != 0:
            raise RuntimeFailure(f"{what} failed (exit status {status})")


def _fresh_release(release: Path, source: Path) -> None:
    """Blocking: an empty release dir (a leftover of an interrupted build goes) with the
    source in app/."""
    _remove_release(release)
    (release / APP_DIR).mkdir(parents=True)
    extract_source(source, release / APP_DIR)


def _python_requirements(release: Path) -> Path | None:
    """Blocking: the requirements file pip installs, None when there is nothing to install;
    pyproject's dependencies are written out to a file beside app/ (0644: pip runs as the
    service's user)."""
    app = release / APP_DIR
    if app.joinpath("requirements.txt").is_file():
        return app / "requirements.txt"
    deps = pyproject_requirements(app)
    if not deps:
        return None
    written = release / "requirements.pyproject.txt"
    written.write_text("\n".join(deps) + "\n", "utf-8")
    written.chmod(0o644)
    return written


def _write_manifest(release: Path, manifest: Manifest) -> None:
    """Blocking: written last (a release without it is not a finished build), then renamed."""
    final = manifest_path(release)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    partial.write_text(json.dumps(asdict(manifest), indent=2) + "\n", "utf-8")
    partial.replace(final)


def _remove_release(release: Path) -> None:
    """Blocking: the manifest first (the release is then no longer a finished build), then
    the dir."""
    final = manifest_path(release)
    final.unlink(missing_ok=True)
    final.with_name(final.name + ".partial").unlink(missing_ok=True)  # a killed build's
    shutil.rmtree(release, ignore_errors=True)
