"""dployr.toml: the deployment request of a directory, checked here (exit 2 naming the key)
before anything is sent. Every field of POST /deployments, plus `secret_env`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dployr.cli.errors import USAGE, CommandError

FILENAME = "dployr.toml"
SOURCES = ("remote", "local", "image", "upload")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
CONSTRAINT = re.compile(r"^[a-z][a-z0-9._-]*(==|!=)[A-Za-z0-9._-]+\Z")  # SPEC §15

Check = Callable[[str, Any], Any]  # (key, value) → the value to send, or raises


class ManifestError(CommandError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}", USAGE)


def _fail(key: str, message: str) -> None:
    raise ManifestError(key, message)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(key, f"must be a string (got {_shown(value)})")
    return str(value)


def _name(key: str, value: Any) -> str:
    if not NAME.match(_text(key, value)):
        _fail(key, "must be lower-case letters, digits and '-', starting with a letter or digit")
    return str(value)


def _source(key: str, value: Any) -> str:
    if _text(key, value) not in SOURCES:
        _fail(key, f"must be one of {', '.join(SOURCES)} (got {value!r})")
    return str(value)


def _version(key: str, value: Any) -> str:
    # `version = 20` is fine; `version = 3.10` would arrive as 3.1: floats must be quoted.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        _fail(key, f'must be a string: write version = "{value}" (a TOML float loses digits)')
    return _text(key, value)


def _port(key: str, value: Any) -> int | None:
    if value is False:  # a worker: no PORT, no route, no HTTP check (SPEC §13)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        _fail(key, f"must be a port 1-65535, or false for a worker (got {_shown(value)})")
    return int(value)


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(key, f"must be a table (got {_shown(value)})")
    return dict(value)


def _env(key: str, value: Any) -> dict[str, str]:
    table = _table(key, value)
    for name, item in table.items():
        if not ENV_KEY.match(name):
            _fail(f"{key}.{name}", "is not a valid variable name")
        _text(f"{key}.{name}", item)
    return table


def _secret_env(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        _fail(key, f'must be a list of variable names, like ["API_KEY"] (got {_shown(value)})')
    for name in value:
        if not isinstance(name, str) or not ENV_KEY.match(name):
            _fail(key, f"{_shown(name)} is not a valid variable name")
    return list(value)


def _fields(checks: dict[str, Check]) -> Check:
    def check(key: str, value: Any) -> dict[str, Any]:
        table = _table(key, value)
        for field, item in table.items():
            if field not in checks:
                _fail(f"{key}.{field}", f"unknown key (known: {', '.join(checks)})")
            table[field] = checks[field](f"{key}.{field}", item)
        return table

    return check


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, f"must be an integer (got {_shown(value)})")
    return int(value)


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(key, f"must be a number (got {_shown(value)})")
    return value  # type: ignore[no-any-return]


def _memory(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # bytes
    return _text(key, value)


def _volumes(key: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        _fail(key, 'must be a list of tables: [[volumes]] name = "data" path = "/app/data"')
    volume = _fields({"name": _text, "path": _text})
    out = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        checked = volume(where, item)
        for field in ("name", "path"):
            if field not in checked:
                _fail(where, f"needs a {field}")
        out.append(checked)
    return out


def _replicas(key: str, value: Any) -> int:
    if not 1 <= _integer(key, value) <= 100:
        _fail(key, f"must be a number of tasks 1-100 (got {value})")
    return int(value)


def _placement(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        _fail(
            key, f'must be a list of constraints, like ["node.role==worker"] (got {_shown(value)})'
        )
    for item in value:
        if not isinstance(item, str) or not CONSTRAINT.match(item):
            _fail(key, f"{_shown(item)} is not a Swarm constraint like node.labels.tier==web")
    return list(value)


def _choice(*choices: str) -> Check:
    def check(key: str, value: Any) -> str:
        if _text(key, value) not in choices:
            _fail(key, f"must be one of {', '.join(choices)} (got {value!r})")
        return str(value)

    return check


# Every key a manifest may hold, in the order the README lists them.
KEYS: dict[str, Check] = {
    "name": _name,
    "project_id": _text,
    "source": _source,
    "remote": _text,
    "branch": _text,
    "credential_id": _text,
    "path": _text,
    "image": _text,
    "runtime": _text,
    "version": _version,
    "target": _text,
    "port": _port,
    "build_cmd": _text,
    "run_cmd": _text,
    "env": _env,
    "secret_env": _secret_env,
    "domain": _text,
    "health_check": _fields({"path": _text, "timeout": _integer}),
    "resources": _fields({"cpus": _number, "memory": _memory}),
    "volumes": _volumes,
    "strategy": _choice("start-first", "stop-first"),
    "replicas": _replicas,
    "placement": _placement,
    "auto_deploy": _choice("off", "webhook", "poll"),
}


def load(path: Path) -> dict[str, Any]:
    """The checked manifest at `path` (values as the API takes them, `secret_env` still a
    list of names)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(str(path), "no such file (write one with `dployr init`)") from None
    except OSError as err:
        raise ManifestError(str(path), err.strerror or str(err)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(str(path), f"not valid TOML: {err}") from None
    try:
        return check(data)
    except ManifestError as err:
        raise ManifestError(str(path), str(err)) from None


def check(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if key not in KEYS:
            _fail(key, f"unknown key (known: {', '.join(KEYS)})")
        out[key] = KEYS[key](key, value)
    return out


def request_body(fields: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The POST /deployments body: `secret_env` names become secret env values read from the
    shell's environment (never from a file)."""
    environ = dict(os.environ) if environ is None else environ
    body = {k: v for k, v in fields.items() if k != "secret_env"}
    secret_names = fields.get("secret_env") or []
    if not secret_names:
        return body
    env: dict[str, Any] = dict(body.get("env") or {})
    for name in secret_names:
        if name not in environ:
            raise CommandError(
                f"secret_env: {name} is not set in this shell (export {name}=… first)", USAGE
            )
        env[name] = {"value": environ[name], "secret": True}
    body["env"] = env
    return body


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip
    return f"{kind}: {value!r}" if not isinstance(value, dict | list) else kind
