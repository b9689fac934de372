"""The files of a systemd-target instance: its unit (templates/dployr-app.service.j2) and its
EnvironmentFile, rendered so that no value (a name, a command, an env value) adds a line or a
directive to either."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dployr.render import render

UNIT_PREFIX = "dployr-"
# The daemon's own unit is dployr.service: an app's is dployr-<service>-<n>-<suffix>.service.
_UNIT_NAME = re.compile(r"^dployr-[a-z0-9][a-z0-9-]{0,62}-[0-9]{1,9}-[0-9a-f]{6}\.service$")
# What a path in a unit may hold: no whitespace, quotes, `%`, `$` or backslash, each of which
# some directive reads differently (ReadWritePaths= splits words, most expand specifiers).
_PATH = re.compile(r"^/[A-Za-z0-9._/@+:=,-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_STOP_SECONDS = 10
WANTS = "multi-user.target.wants"


class UnsafeValue(ValueError):
    """A value that a unit or an env file cannot hold safely (a newline, a relative path)."""


def unit_value(value: object) -> str:
    """A one-line directive value: control characters refused, `%` specifiers escaped."""
    text = str(value)
    if _CONTROL.search(text):
        raise UnsafeValue(f"a unit value cannot hold control characters: {text!r}")
    return text.replace("%", "%%")


def unit_arg(value: object) -> str:
    """One ExecStart= word: double-quoted, with `\\` and `"` escaped for systemd's unquoting,
    `%` (specifiers) and `$` (systemd's own variable expansion) doubled, so the program gets
    exactly `value` (a shell in it then expands `$PORT` as usual)."""
    text = str(value)
    if _CONTROL.search(text):
        raise UnsafeValue(f"a command word cannot hold control characters: {text!r}")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def unit_path(value: object) -> str:
    """An absolute path that every directive reads the same way (see _PATH)."""
    text = str(value)
    if not _PATH.match(text) or "/../" in f"{text}/":
        raise UnsafeValue(f"a unit path must be absolute and plain: {text!r}")
    return text


def bind_path(value: object) -> str:
    """A BindPaths= side: a plain path without `:` (which separates the two sides)."""
    text = unit_path(value)
    if ":" in text:
        raise UnsafeValue(f"a bound path cannot hold ':': {text!r}")
    return text


def env_value(value: str) -> str:
    """A value for an EnvironmentFile= line: double-quoted, `\\ " $` and backtick escaped (as
    systemd's parser unescapes them). A newline stays inside the quotes: systemd has no escape
    for it, and inside quotes it is part of the value, never a new variable."""
    if "\x00" in value:
        raise UnsafeValue("an env value cannot hold a NUL byte")
    for char in ("\\", '"', "$", "`"):
        value = value.replace(char, "\\" + char)
    return f'"{value}"'


def render_env_file(env: Mapping[str, str]) -> str:
    lines = ["# Written by dployr for one instance; root-only (0600), read by systemd."]
    for key, value in env.items():
        if not _ENV_KEY.match(key):
            raise UnsafeValue(f"not an env variable name: {key!r}")
        lines.append(f"{key}={env_value(value)}")
    return "\n".join(lines) + "\n"


def unit_name(service_name: str, number: int, suffix: str) -> str:
    """`dployr-<service>-<n>-<suffix>.service`: the suffix lets a restart of a release run a
    second instance of it beside the first (blue/green)."""
    name = f"{UNIT_PREFIX}{service_name}-{number}-{suffix}.service"
    if not is_unit_name(name):
        raise UnsafeValue(f"not a unit name dployr makes: {name!r}")
    return name


def is_unit_name(name: str) -> bool:
    return bool(_UNIT_NAME.match(name))


def user_name(service_id: str) -> str:
    """The service's own system user: `dployr-` and the id's random part (23 characters: user
    names may have 32), stable across releases and renames."""
    name = "dployr-" + service_id.split("_", 1)[-1]
    if not re.match(r"^[a-z][a-z0-9-]{0,31}$", name):
        raise UnsafeValue(f"cannot make a user name from service id {service_id!r}")
    return name


def memory_bytes(memory: str | None) -> int | None:
    """`resources.memory` ("512m", "1g", "1048576") in bytes (k, m, g: powers of 1024)."""
    if not memory:
        return None
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(memory[-1].lower(), 1)
    digits = memory[:-1] if scale > 1 else memory
    return int(digits) * scale


@dataclass(frozen=True)
class Unit:
    """What one instance's unit says (every field is checked again as it is rendered)."""

    name: str
    service_name: str
    number: int
    agent_id: str
    service_id: str
    deployment_id: str
    host_port: int | None
    user: str
    workdir: str
    env_file: str
    command: Sequence[str]  # argv: an absolute program, then its arguments
    cpus: float | None = None
    memory: str | None = None
    writable: Sequence[str] = field(default_factory=tuple)
    binds: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (dir, where it appears)
    stop_seconds: int = DEFAULT_STOP_SECONDS


def render_unit(unit: Unit) -> str:
    """The unit file's text; UnsafeValue when a value cannot be written safely. Blocking (a
    template read): call it from a worker thread."""
    if not unit.command or not unit.command[0].startswith("/"):
        raise UnsafeValue(f"the program must be an absolute path: {list(unit.command)!r}")
    unit_path(unit.command[0])  # a prefix such as `-` or `+` would change what systemd does
    return render(
        "dployr-app.service.j2",
        description=f"dployr {unit.service_name} release {unit.number}",
        agent_id=unit.agent_id,
        service_id=unit.service_id,
        deployment_id=unit.deployment_id,
        host_port="" if unit.host_port is None else unit.host_port,
        user=unit.user,
        workdir=unit_path(unit.workdir),
        env_file=unit_path(unit.env_file),
        command=list(unit.command),
        stop_seconds=int(unit.stop_seconds),
        syslog_id=f"{UNIT_PREFIX}{unit.service_name}",
        cpu_quota=max(1, round(unit.cpus * 100)) if unit.cpus else None,  # never 0: unlimited
        memory_max=memory_bytes(unit.memory),
        writable=[unit_path(p) for p in (unit.workdir, *unit.writable)],
        binds=[(bind_path(source), bind_path(where)) for source, where in unit.binds],
    )


def read_markers(text: str) -> dict[str, str]:
    """The X-Dployr-* keys of a unit file we wrote (agent, service, deployment, port)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("X-Dployr-") and "=" in line:
            key, _, value = line.partition("=")
            found[key[len("X-Dployr-") :].lower()] = value.replace("%%", "%")
    return found


# -- the files on disk (blocking: call these from a worker thread) ------------------------


def write_private(path: Path, text: str) -> None:
    """Blocking: a root-only file (0600 from its creation, then renamed into place)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    partial.replace(path)


def install_unit(staged: Path, unit_dir: Path, name: str) -> None:
    """Blocking: the checked unit into the unit dir (0644: systemd's own files are), enabled
    the way `systemctl enable` does it (a link in multi-user.target.wants)."""
    text = staged.read_text("utf-8")
    target = unit_dir / name
    partial = unit_dir / f".{name}.partial"
    partial.write_text(text, "utf-8")
    partial.chmod(0o644)
    partial.replace(target)
    wants = unit_dir / WANTS
    wants.mkdir(exist_ok=True)
    link = wants / name
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def uninstall_unit(unit_dir: Path, env_dir: Path, name: str) -> None:
    (unit_dir / WANTS / name).unlink(missing_ok=True)
    (unit_dir / name).unlink(missing_ok=True)
    (env_dir / f"{name}.env").unlink(missing_ok=True)


def our_units(unit_dir: Path, agent_id: str) -> list[tuple[str, dict[str, str]]]:
    """Blocking: the unit files this agent wrote, with their markers."""
    found = []
    for path in sorted(unit_dir.glob("dployr-*.service")):
        if not is_unit_name(path.name):
            continue
        try:
            markers = read_markers(path.read_text("utf-8"))
        except OSError:
            continue
        if markers.get("agent") == agent_id:
            found.append((path.name, markers))
    return found
