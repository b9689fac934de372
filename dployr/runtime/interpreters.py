"""The interpreters and toolchains this host has, per catalog runtime, for the host targets."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from dployr.errors import ValidationError

# The catalog runtimes a host target builds: `dockerfile` and `image` are docker-only.
HOST_RUNTIMES = ("nodejs", "python", "go", "rust", "static")
PROBE_TIMEOUT = 10.0
CACHE_SECONDS = 30.0  # an interpreter installed meanwhile is seen within this long

_PYTHON_NAME = re.compile(r"^python(3\.\d+)$")
_NODE = re.compile(r"^v?(\d+)\.\d+")
_GO = re.compile(r"\bgo(\d+\.\d+)")
_CARGO = re.compile(r"^cargo (\d+\.\d+)")
_PYTHON_VERSION = re.compile(r"^Python (3\.\d+)")


@dataclass(frozen=True)
class Toolchain:
    runtime: str
    version: str  # as the catalog spells it: "3.11", "20", "1.22", "1.80", "stable"
    executable: str  # python3.X, node, go, cargo, or what serves static files


def python_version_of_name(name: str) -> str | None:
    """ "python3.11" → "3.11"; None for any other file name."""
    found = _PYTHON_NAME.match(name)
    return found.group(1) if found else None


def version_of_output(runtime: str, output: str) -> str | None:
    """The catalog version in a `--version` output (node: the major; go, rust: major.minor)."""
    pattern = {"python": _PYTHON_VERSION, "nodejs": _NODE, "go": _GO, "rust": _CARGO}[runtime]
    found = pattern.search(output.strip())
    return found.group(1) if found else None


def matches(runtime: str, wanted: str, installed: str) -> bool:
    """Whether `installed` gives what `wanted` asks: rust "1" is any 1.x, like the image tag."""
    if runtime == "rust" and "." not in wanted:
        return installed.split(".")[0] == wanted
    return installed == wanted


def static_server(found: dict[str, str]) -> str | None:
    """The run command of a static site (a catalog value: no user input): busybox httpd, else
    Python's http.server; `found` maps program names to their paths."""
    if "busybox" in found:
        return f'{found["busybox"]} httpd -f -p "$PORT" -h .'
    if "python3" in found:
        return f'{found["python3"]} -m http.server "$PORT"'
    return None


async def _output(argv: list[str]) -> str:
    """A probe's output (stdout and stderr: `python -V` wrote to stderr before 3.4)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError:
        return ""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return ""
    return out.decode("utf-8", "replace")


def _path_dirs(path: str | None) -> list[Path]:
    return [Path(d) for d in (path or os.defpath).split(os.pathsep) if d]


def _python_names(path: str | None) -> dict[str, str]:
    """Blocking: every python3.X on PATH, the first found of each version."""
    found: dict[str, str] = {}
    for directory in _path_dirs(path):
        try:
            names = sorted(p.name for p in directory.iterdir())
        except OSError:
            continue
        for name in names:
            version = python_version_of_name(name)
            full = directory / name
            if version and version not in found and os.access(full, os.X_OK):
                found[version] = str(full)
    return found


class Interpreters:
    """What the host has, probed on demand and kept for CACHE_SECONDS."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path if path is not None else os.environ.get("PATH")
        self._cache: dict[str, tuple[float, list[Toolchain]]] = {}
        self._lock = asyncio.Lock()

    async def which(self, program: str) -> str | None:
        return await asyncio.to_thread(shutil.which, program, path=self._path)

    async def installed(self, runtime: str) -> list[Toolchain]:
        """The toolchains of `runtime` on this host, the default (what `python3`, `node`…
        is) first."""
        async with self._lock:
            cached = self._cache.get(runtime)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            found = await self._probe(runtime)
            self._cache[runtime] = (time.monotonic(), found)
            return found

    async def _probe(self, runtime: str) -> list[Toolchain]:
        if runtime == "python":
            return await self._pythons()
        if runtime == "static":
            programs = {p: w for p in ("busybox", "python3") if (w := await self.which(p))}
            return [Toolchain("static", "stable", s)] if (s := static_server(programs)) else []
        program, flag = {"nodejs": ("node", "--version"), "go": ("go", "version")}.get(
            runtime, ("cargo", "--version")
        )
        executable = await self.which(program)
        if executable is None:
            return []
        version = version_of_output(runtime, await _output([executable, flag]))
        return [Toolchain(runtime, version, executable)] if version else []

    async def _pythons(self) -> list[Toolchain]:
        named = await asyncio.to_thread(_python_names, self._path)
        found = [Toolchain("python", v, exe) for v, exe in sorted(named.items())]
        default = await self.which("python3")
        if default is not None:
            version = version_of_output("python", await _output([default, "--version"]))
            if version is not None:
                # The host's own python3 first: it is what a release with no version gets.
                found = [Toolchain("python", version, default)] + [
                    t for t in found if t.version != version
                ]
        return found

    async def resolve(self, runtime: str, version: str | None) -> Toolchain:
        """The toolchain a release of `runtime` gets: the host's default for no version.
        Raises ValidationError naming what is installed."""
        if runtime not in HOST_RUNTIMES:
            raise ValidationError("runtime", f"{runtime} runs on the docker target only")
        found = await self.installed(runtime)
        if not found:
            raise ValidationError(
                "runtime" if version is None else "version",
                f"no {runtime} toolchain is installed on this host",
            )
        if version is None:
            return found[0]
        for toolchain in found:
            if matches(runtime, version, toolchain.version):
                return toolchain
        installed = ", ".join(sorted({t.version for t in found}))
        raise ValidationError(
            "version", f"{runtime} {version} is not installed on this host (installed: {installed})"
        )

    async def check_version(self, runtime: str, version: str | None) -> str | None:
        """For Target.check_version: the version asked for (None stays None: the host's own
        interpreter at each build), once the host is known to have it."""
        await self.resolve(runtime, version)
        return version
