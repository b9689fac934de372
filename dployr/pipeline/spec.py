"""A release's config, validated at the edge into a frozen DeploySpec the pipeline trusts."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.config import Config
from dployr.errors import Forbidden, ValidationError
from dployr.proxy.domains import normalize_domain
from dployr.runtime.catalog import CATALOG
from dployr.runtime.protocol import InstanceSpec, Mount, Resources
from dployr.runtime.reference import parse_image
from dployr.runtime.swarm_names import upstream
from dployr.sources.validate import (
    check_branch,
    check_local_path,
    check_remote_host,
    outside_protected,
    parse_remote,
)
from dployr.store.routes import loopback

if TYPE_CHECKING:
    from dployr.runtime.targets import Targets
    from dployr.store.deployments import Deployment


@dataclass(frozen=True)
class HealthCheck:
    path: str | None = "/"
    timeout: int = 60


@dataclass(frozen=True)
class DeploySpec:
    source: str  # remote | local | image | upload
    runtime: str
    target: str
    port: int | None  # None: a worker (SPEC §13): no PORT, no route, no HTTP or TCP check
    remote: str | None = None
    branch: str | None = None
    credential_id: str | None = None
    path: str | None = None
    image: str | None = None
    version: str | None = None
    build_cmd: str | None = None
    run_cmd: str | None = None
    health_check: HealthCheck = field(default_factory=HealthCheck)
    resources: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    volumes: list[dict[str, str]] = field(default_factory=list)  # [{name, path}] (SPEC §14)
    strategy: str = "start-first"  # or "stop-first": the old instance stops before the new
    replicas: int | None = None  # swarm only (SPEC §15); None: the service's current scale
    placement: list[str] = field(default_factory=list)  # swarm only: Swarm constraints

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploySpec:
        return cls(**{**data, "health_check": HealthCheck(**data["health_check"])})


CONFIG_FIELDS = (
    "remote", "branch", "credential_id", "path", "image", "runtime", "version", "target",
    "build_cmd", "run_cmd", "port", "health_check", "resources", "domain", "volumes",
    "strategy", "replicas", "placement",
)  # fmt: skip
PLACEMENT = re.compile(r"[a-z][a-z0-9._-]*(==|!=)[A-Za-z0-9._-]+")  # SPEC §15
# Where a volume may not be mounted (SPEC §14): the system's own directories.
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/lib", "/sbin")


def upstream_of(deployment: Deployment, host_port: int | None) -> list[str]:
    """Where the proxy sends a live release's traffic: its loopback port, or on the swarm
    target every task of its service by the overlay's DNS; none for a worker."""
    spec = DeploySpec.from_json(deployment.spec)
    if spec.target == "swarm":
        return [] if spec.port is None else [upstream(deployment.service_id, spec.port)]
    return [] if host_port is None else [loopback(host_port)]


def instance_spec(
    deployment: Deployment,
    env: Mapping[str, str],
    host_port: int | None,
    volumes: tuple[Mount, ...] = (),
    replicas: int | None = None,
) -> InstanceSpec:
    """What a target needs to run an instance of a release (a new one, or the live one again);
    `volumes`: the service's storage of each volume the release names (store.volumes.mounts);
    `replicas`: the service's scale now (swarm), else the release's own, else 1."""
    spec = DeploySpec.from_json(deployment.spec)
    assert deployment.artifact is not None
    return InstanceSpec(
        deployment.service_id,
        deployment.service_name,
        deployment.id,
        deployment.number,
        deployment.artifact,
        spec.runtime,
        spec.port,
        host_port,
        env,
        Resources(**spec.resources),
        spec.run_cmd,
        deployment.owner_id,
        volumes,
        replicas or spec.replicas or 1,
        tuple(spec.placement),
        spec.health_check.path,
        spec.health_check.timeout,
        spec.strategy,
    )


async def spec_from_body(
    body: dict[str, Any],
    config: Config,
    targets: Targets,
    default_target: str,
    base: DeploySpec | None = None,
    *,
    admin: bool,
) -> DeploySpec:
    """The body (already schema-checked) merged over `base` (PUT) or the catalog defaults. The
    version is the target's to choose when none is given (docker: the catalog's default;
    systemd and process: the host's own interpreter)."""
    if base is None:
        source = body["source"]
        runtime_id = body.get("runtime") or ("image" if source == "image" else None)
        if runtime_id is None:
            raise ValidationError("runtime", "is required")
        runtime = CATALOG[runtime_id]
        base = DeploySpec(
            source=source,
            runtime=runtime_id,
            target=default_target,
            port=runtime.default_port,
            health_check=HealthCheck("/", config.runtime.health_timeout),
        )
    changes = {k: body[k] for k in CONFIG_FIELDS if k in body}
    if "health_check" in changes:
        changes["health_check"] = replace(base.health_check, **changes["health_check"])
    if "resources" in changes:
        changes["resources"] = {k: v for k, v in changes["resources"].items() if v is not None}
    if changes.get("target") is None:
        changes.pop("target", None)
    if ("runtime" in changes or "target" in changes) and "version" not in changes:
        changes["version"] = None  # the new runtime's (or target's) default, chosen below
    if "volumes" in changes:
        changes["volumes"] = check_volumes(changes["volumes"])
    if changes.get("domain") is not None:
        changes["domain"] = normalize_domain(changes["domain"])
    spec = replace(base, **changes)
    if spec.target != "swarm":
        # A release that moves off swarm leaves its base's swarm fields behind; the ones the
        # body names are refused, before the target is asked about anything else.
        spec = replace(
            spec,
            replicas=changes.get("replicas"),
            placement=changes.get("placement", []),
        )
    check_swarm_fields(spec)
    version = await targets.check(spec.target, spec.runtime, spec.version, admin=admin)
    spec = replace(spec, version=version)
    await check_spec(spec, config, admin=admin)
    return spec


def check_local_allowed(admin: bool) -> None:
    """A local source reads the host's files: deploying one (or redeploying its release) is
    for admins only (SPEC §13)."""
    if not admin:
        raise Forbidden(
            "Local sources read the host's files: only an admin may deploy one",
            details={"field": "source", "reason": "local sources are for admins only"},
        )


def protected_dirs(config: Config) -> dict[str, Path]:
    """What a local source must neither be inside of nor contain: the daemon's secrets."""
    return {"the daemon's data dir": config.data_path, "the config's directory": config.config_dir}


async def check_spec(spec: DeploySpec, config: Config, *, admin: bool) -> None:
    """The rules a schema cannot say: which fields each source needs, remotes, branches.
    `admin`: whether the caller is one (a local source reads the host: admins only)."""
    if spec.source == "image" or spec.runtime == "image":
        if spec.source != "image" or spec.runtime != "image":
            raise ValidationError("runtime", "source image goes with runtime image, and only it")
        if not spec.image:
            raise ValidationError("image", "is required for source image")
        parse_image(spec.image)
    elif spec.source == "remote":
        if not spec.remote:
            raise ValidationError("remote", "is required for source remote")
        remote = parse_remote(spec.remote)
        await check_remote_host(remote, config.runtime.allow_private_remotes)
        check_branch(spec.branch or "main")
    elif spec.source == "local":
        if not config.runtime.allow_local_sources:
            raise Forbidden(
                "Local sources are disabled on this host (runtime.allow_local_sources)",
                details={"field": "source", "reason": "local sources are disabled"},
            )
        check_local_allowed(admin)
        if not spec.path:
            raise ValidationError("path", "is required for source local")
        await outside_protected(check_local_path(spec.path), protected_dirs(config))
        if spec.branch is not None:
            check_branch(spec.branch)
    elif spec.source == "upload":  # the archive is the source (SPEC §4.1)
        for name in ("remote", "branch", "credential_id", "path", "image"):
            if getattr(spec, name) is not None:
                raise ValidationError(name, "is not used by source upload")
    if spec.domain is not None:
        normalize_domain(spec.domain)
    for index, constraint in enumerate(spec.placement):  # whole (a schema's `$` takes a "\n")
        if not PLACEMENT.fullmatch(constraint):
            raise ValidationError(
                f"placement.{index}", "is not a Swarm constraint such as node.labels.tier==web"
            )
    check_volumes(spec.volumes)
    check_swarm_fields(spec)
    if spec.domain is not None and spec.port is None:
        raise ValidationError(
            "domain", "a worker (port null) takes no traffic, so it has no domain"
        )


def check_swarm_fields(spec: DeploySpec) -> None:
    """`replicas` and `placement` mean something only to a Swarm service (SPEC §15)."""
    if spec.target == "swarm":
        return
    if spec.replicas is not None:
        raise ValidationError(
            "replicas", f"is only for the swarm target (this release runs on {spec.target})"
        )
    if spec.placement:
        raise ValidationError(
            "placement", f"is only for the swarm target (this release runs on {spec.target})"
        )


def check_volumes(volumes: list[dict[str, str]]) -> list[dict[str, str]]:
    """Names unique, paths absolute and normalised, one per volume, outside the system's own
    directories (SPEC §14); returns them normalised."""
    checked: list[dict[str, str]] = []
    for index, volume in enumerate(volumes):
        field_name = f"volumes.{index}"  # as the schema names it (api.validation)
        path = posixpath.normpath(volume["path"])
        if not path.startswith("/") or path.startswith("//"):
            raise ValidationError(f"{field_name}.path", "must be an absolute path")
        if path == "/" or any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS):
            raise ValidationError(
                f"{field_name}.path",
                f"{path} is a system directory; mount a volume under /app, /data or /srv",
            )
        for seen in checked:
            if seen["name"] == volume["name"]:
                raise ValidationError(f"{field_name}.name", f"{volume['name']!r} is named twice")
            if seen["path"] == path:
                raise ValidationError(f"{field_name}.path", f"{path} is mounted twice")
        checked.append({"name": volume["name"], "path": path})
    return checked
