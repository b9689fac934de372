"""Configuration: embedded defaults, a TOML file, DPLOYR_* overrides; validated once at start."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

DEFAULT_CONFIG_PATH = Path("/etc/dployr/config.toml")
RUNTIME_IDS = ("nodejs", "python", "go", "rust", "static")


class ConfigError(Exception):
    """A config key is unknown or has a bad value; the message names the key."""


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _range(low: float, high: float | None = None) -> dict[str, Any]:
    return {"range": (low, high)}


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/dployr"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "dployr")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = field(default=7870, metadata=_range(1, 65535))
    data_dir: str = field(default_factory=default_data_dir)
    max_body_bytes: int = field(default=1_048_576, metadata=_range(1024))
    log_level: str = field(default="info", metadata=_choices("debug", "info", "warning", "error"))
    log_format: str = field(default="text", metadata=_choices("text", "json"))
    shutdown_timeout: float = field(default=10.0, metadata=_range(0))
    # Log streams (follow=true) a user may hold open at once; more answer 429 rate_limited.
    follow_streams_per_user: int = field(default=8, metadata=_range(1, 1000))
    # WebSockets (/api/v1/ws) a user may hold open at once; more are refused (429 rate_limited).
    ws_per_user: int = field(default=8, metadata=_range(1, 1000))
    # Events one WebSocket may fall behind before it is closed (1008) rather than slow anyone.
    ws_queue: int = field(default=256, metadata=_range(1, 100_000))
    # CIDRs whose X-Forwarded-For is believed; empty means loopback when proxy.api_domain is set.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuthConfig:
    registration: str = field(
        default="first-user", metadata=_choices("first-user", "open", "admin-only")
    )
    bcrypt_rounds: int = field(default=12, metadata=_range(4, 31))
    access_ttl: int = field(default=900, metadata=_range(1))
    refresh_ttl: int = field(default=604_800, metadata=_range(1))
    # Empty: a key is generated at first start in <data_dir>/secrets/jwt.key (mode 0600).
    jwt_secret: str = ""


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = True
    authenticated_per_hour: int = field(default=1000, metadata=_range(1))
    anonymous_per_hour: int = field(default=60, metadata=_range(1))
    login_per_15min: int = field(default=5, metadata=_range(1))


@dataclass(frozen=True)
class RuntimeConfig:
    default_target: str = field(
        default="auto", metadata=_choices("auto", "docker", "systemd", "process", "swarm")
    )
    allow_local_sources: bool = False
    allow_private_remotes: bool = False
    build_concurrency: int = field(default=1, metadata=_range(1, 64))
    keep_releases: int = field(default=5, metadata=_range(1, 100))
    health_timeout: int = field(default=60, metadata=_range(1, 3600))
    drain_seconds: float = field(default=5.0, metadata=_range(0, 3600))
    poll_interval: int = field(default=60, metadata=_range(5))
    build_timeout: int = field(default=1800, metadata=_range(10, 86400))  # fetch + build, s
    # source "upload" archives (SPEC §4.1); unpacked, sources.upload.EXPANSION times this.
    max_upload_bytes: int = field(default=209_715_200, metadata=_range(1024, 1 << 40))
    docker_host: str = ""  # empty: the Docker SDK's default (DOCKER_HOST or the local socket)


@dataclass(frozen=True)
class RuntimeImage:
    image: str


DEFAULT_RUNTIME_IMAGES: Mapping[str, str] = {
    "nodejs": "node:{version}-slim",
    "python": "python:{version}-slim",
    "go": "golang:{version}",
    "rust": "rust:{version}-slim",
    "static": "busybox:{version}",
}


@dataclass(frozen=True)
class ProxyConfig:
    backend: str = field(default="auto", metadata=_choices("auto", "caddy", "nginx", "none"))
    caddy_admin: str = "http://127.0.0.1:2019"
    caddyfile: str = "/etc/caddy/Caddyfile"
    nginx_dir: str = "/etc/nginx/conf.d"
    nginx_conf: str = "/etc/nginx/nginx.conf"
    # nginx serves a `tls: auto` domain over HTTPS when <nginx_certs>/<domain>/fullchain.pem and
    # privkey.pem exist (certbot's layout), else over HTTP.
    nginx_certs: str = "/etc/letsencrypt/live"
    http_port: int = field(default=80, metadata=_range(1, 65535))
    https_port: int = field(default=443, metadata=_range(1, 65535))
    tls_issuer: str = field(default="acme", metadata=_choices("acme", "internal"))
    api_domain: str = ""  # when set, the proxy serves the daemon's own API on this domain


@dataclass(frozen=True)
class MetricsConfig:
    interval: int = field(default=10, metadata=_range(1, 3600))
    prometheus: bool = True


@dataclass(frozen=True)
class AlertsConfig:
    """Not named by SPEC §12: thresholds in percent (0 = that alert is off)."""

    cpu_percent: float = field(default=90.0, metadata=_range(0, 100))
    memory_percent: float = field(default=90.0, metadata=_range(0, 100))
    disk_percent: float = field(default=90.0, metadata=_range(0, 100))
    # Consecutive samples over (or back under) a threshold before it fires (or clears): one
    # busy sample is not an alert.
    samples: int = field(default=3, metadata=_range(1, 1000))
    # A crash episode ends once the service ran this long without a restart.
    healthy_seconds: float = field(default=120.0, metadata=_range(0))


@dataclass(frozen=True)
class WebhooksConfig:
    allow_private: bool = False
    timeout: float = field(default=10.0, metadata=_range(0.1, 300))
    retry_schedule: list[int] = field(
        default_factory=lambda: [10, 30, 120, 600, 1800, 3600, 21600, 43200],
        metadata=_range(0),
    )


@dataclass(frozen=True)
class SwarmConfig:
    """SPEC §15: the swarm target on the Swarm this engine manages."""

    network: str = "dployr"  # each owner's attachable overlay is <network>-<owner id>
    registry: str = ""  # host[:port] every node pulls from; empty: a single-node swarm only
    registry_credential_id: str = ""  # a credential of type `registry` for the pushes
    proxy_image: str = "caddy:2"


@dataclass(frozen=True)
class DatabasesConfig:
    """SPEC §14 managed databases; `[databases.<engine>] image` tables are read apart
    (Config.database_images)."""

    backup_dir: str = ""  # empty: <data_dir>/backups
    keep_backups: int = field(default=7, metadata=_range(1, 1000))
    backup_schedule: str = "0 3 * * *"  # a cron expression (UTC): a new database's default


DATABASE_ENGINES = ("postgres", "redis", "mariadb")
DEFAULT_DATABASE_IMAGES: Mapping[str, str] = {
    "postgres": "postgres:{version}",
    "redis": "redis:{version}",
    "mariadb": "mariadb:{version}",
}


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    runtimes: Mapping[str, RuntimeImage] = field(
        default_factory=lambda: {k: RuntimeImage(v) for k, v in DEFAULT_RUNTIME_IMAGES.items()}
    )
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    databases: DatabasesConfig = field(default_factory=DatabasesConfig)
    database_images: Mapping[str, RuntimeImage] = field(
        default_factory=lambda: {k: RuntimeImage(v) for k, v in DEFAULT_DATABASE_IMAGES.items()}
    )
    # The file this config was read from ("" when none was): its directory holds secrets too.
    config_file: str = ""

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def config_dir(self) -> Path:
        return Path(self.config_file or DEFAULT_CONFIG_PATH).absolute().parent

    @property
    def db_path(self) -> Path:
        return self.data_path / "dployr.db"

    @property
    def backup_path(self) -> Path:
        """Where database backups go (SPEC §14): <backup_dir>/<database id>/."""
        return Path(self.databases.backup_dir or self.data_path / "backups")


_SECTIONS: dict[str, type[Any]] = {
    name: hint
    for name, hint in get_type_hints(Config).items()
    if name not in ("runtimes", "config_file", "database_images")
}


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then DPLOYR_<SECTION>_<KEY> variables."""
    environ = os.environ if environ is None else environ
    raw = _read_file(path)
    _apply_environ(raw, environ)
    config = _build(raw)
    read = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if path is not None or read.is_file():
        config = dataclasses.replace(config, config_file=str(read.absolute()))
    return config


def _read_file(path: str | Path | None) -> dict[str, Any]:
    explicit = path is not None
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {file} does not exist") from None
        return {}
    except OSError as err:
        raise ConfigError(f"cannot read config file {file}: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file} is not valid TOML: {err}") from None
    return data


def _apply_environ(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    # Longest section first, so RUNTIMES_ wins over RUNTIME_ and RATE_LIMIT_ is one section.
    sections = sorted([*_SECTIONS, "runtimes"], key=len, reverse=True)
    for name, value in environ.items():
        if not name.startswith("DPLOYR_"):
            continue
        rest = name[len("DPLOYR_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue  # DPLOYR_URL, DPLOYR_TOKEN belong to the CLI
        key = rest[len(section) + 1 :]
        if section == "runtimes":
            runtime_id, _, sub = key.rpartition("_")
            if runtime_id in RUNTIME_IDS:
                raw.setdefault("runtimes", {}).setdefault(runtime_id, {})[sub] = value
            continue
        engine, _, sub = key.partition("_")
        if section == "databases" and engine in DATABASE_ENGINES:  # DATABASES_POSTGRES_IMAGE
            raw.setdefault("databases", {}).setdefault(engine, {})[sub] = value
            continue
        hints = get_type_hints(_SECTIONS[section])
        if key in hints:
            raw.setdefault(section, {})[key] = _parse_env_value(name, value, hints[key])


def _parse_env_value(name: str, value: str, hint: Any) -> Any:
    kind = get_origin(hint) or hint
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"{name}: expected true|false|1|0|yes|no, got {value!r}")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if kind is list:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{name}: expected a JSON list, got {value!r}") from None
    return value


def _build(raw: dict[str, Any]) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("config must be a TOML table")
    unknown = set(raw) - set(_SECTIONS) - {"runtimes"}
    if unknown:
        raise ConfigError(f"unknown config section [{sorted(unknown)[0]}]")
    sections: dict[str, Any] = {}
    engine_tables: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        if name == "databases":  # [databases.<engine>] tables beside the section's own keys
            engine_tables = {k: v for k, v in table.items() if isinstance(v, dict)}
            table = {k: v for k, v in table.items() if not isinstance(v, dict)}
        sections[name] = _build_section(name, cls, table)
    sections["runtimes"] = _build_runtimes(raw.get("runtimes", {}))
    sections["database_images"] = _build_images(
        "databases", engine_tables, DATABASE_ENGINES, DEFAULT_DATABASE_IMAGES
    )
    _check_cron("databases.backup_schedule", sections["databases"].backup_schedule)
    _check_trusted_proxies(sections["server"].trusted_proxies)
    _check_caddy_admin(sections["proxy"].caddy_admin)
    sections["proxy"] = _check_api_domain(sections["proxy"])
    return Config(**sections)


def _check_trusted_proxies(cidrs: list[str]) -> None:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"server.trusted_proxies: {cidr!r} is not an IP network (like 10.0.0.0/8 or ::1)"
            ) from None


def _check_caddy_admin(url: str) -> None:
    """An http(s) URL with a host and a valid port (the rendered config listens on it)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise ConfigError(
            f"proxy.caddy_admin: expected http://host:port (http://127.0.0.1:2019), got {url!r}"
        )


def _check_api_domain(proxy: ProxyConfig) -> ProxyConfig:
    """`proxy.api_domain` passes the route domain rules, and is kept in their normal form."""
    if not proxy.api_domain:
        return proxy
    # Imported here: dployr.proxy imports this module (and aiohttp); only `serve` gets here.
    from dployr.errors import ValidationError
    from dployr.proxy.domains import normalize_domain

    try:
        domain = normalize_domain(proxy.api_domain, "proxy.api_domain")
    except ValidationError as err:
        reason = (err.details or {}).get("reason", err.message)
        raise ConfigError(f"proxy.api_domain: {reason}, got {proxy.api_domain!r}") from None
    if domain.startswith("*."):
        raise ConfigError(f"proxy.api_domain: must be one host name, got {proxy.api_domain!r}")
    return dataclasses.replace(proxy, api_domain=domain)


def _build_section(section: str, cls: type[Any], table: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key in table:
        if key not in fields:
            raise ConfigError(f"unknown config key {section}.{key}")
    values = {}
    for key, value in table.items():
        values[key] = _check_value(f"{section}.{key}", value, hints[key], fields[key].metadata)
    return cls(**values)


def _check_value(key: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    kind = get_origin(hint) or hint
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif kind is list:
        (item,) = get_args(hint)
        if not isinstance(value, list) or not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key}: expected a list of {item.__name__}, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    if "range" in meta:
        low, high = meta["range"]
        for number in value if isinstance(value, list) else [value]:
            if number < low or (high is not None and number > high):
                bound = f"{low}-{high}" if high is not None else f">= {low}"
                raise ConfigError(f"{key}: must be {bound}, got {number!r}")
    return value


def _build_runtimes(table: Any) -> dict[str, RuntimeImage]:
    if not isinstance(table, dict):
        raise ConfigError("[runtimes] must be a table of [runtimes.<id>] tables")
    return _build_images("runtimes", table, RUNTIME_IDS, DEFAULT_RUNTIME_IMAGES)


def _build_images(
    section: str, table: dict[str, Any], known: Sequence[str], defaults: Mapping[str, str]
) -> dict[str, RuntimeImage]:
    """`[<section>.<id>] image = "name:{version}"` tables over the defaults."""
    images = dict(defaults)
    for entry_id, entry in table.items():
        if entry_id not in known:
            raise ConfigError(f"unknown [{section}.{entry_id}] (known: {', '.join(known)})")
        if not isinstance(entry, dict):
            raise ConfigError(f"[{section}.{entry_id}] must be a table")
        for key, value in entry.items():
            if key != "image":
                raise ConfigError(f"unknown config key {section}.{entry_id}.{key}")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{section}.{entry_id}.image: expected an image name")
            images[entry_id] = value
    return {k: RuntimeImage(v) for k, v in images.items()}


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a cron schedule that fires (UTC), or None when it is one."""
    from datetime import UTC, datetime

    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as err:
        return str(err)
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        return "it never fires"
    return None


def _check_cron(key: str, expression: str) -> None:
    if (problem := cron_problem(expression)) is not None:
        raise ConfigError(
            f'{key}: expected a cron expression like "0 3 * * *" ({problem}), got {expression!r}'
        )
