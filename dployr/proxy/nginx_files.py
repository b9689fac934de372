"""nginx's files: the route table rendered into dployr-*.conf files, written and restored."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dployr.config import ProxyConfig
from dployr.errors import ProxyError
from dployr.proxy.protocol import Route, Upstreams
from dployr.render import render

# Every file dployr owns in nginx_dir matches this; nothing else there is ever touched.
PREFIX = "dployr-"
SUFFIX = ".conf"
# Upstream blocks, the one `map` (their names are global in nginx's http context) and a
# catch-all server live here. No domain starts with "-", so no site's file takes this name, and
# "-" sorts before every domain's file: the catch-all is the first server on http_port.
SHARED_FILE = f"{PREFIX}-shared{SUFFIX}"
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}\Z")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+@=,-]*\Z")  # a certificate path inside "…"


@dataclass
class Location:
    prefix: str  # "/" or "/api": rendered as `= /api` plus `^~ /api/`
    upstream: str | None = None  # proxy_pass http://<upstream>
    status: int = 0  # else `return <status>` (503: no live instance)
    redirect: str = ""  # else `return 308 <redirect>` (HTTP → HTTPS)


@dataclass
class Site:
    domain: str
    http: list[Location] = field(default_factory=list)
    https: list[Location] = field(default_factory=list)
    certificate: str = ""
    key: str = ""


def file_name(domain: str) -> str:
    """dployr-<domain>.conf; the `*` of a wildcard becomes `_` (never in a real label). A
    name too long for a file name (255 bytes, with the `.tmp` copy's) keeps its first 180
    characters and gains a digest of the whole."""
    name = domain.replace("*", "_")
    if len(name) > 200:
        name = f"{name[:180]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return f"{PREFIX}{name}{SUFFIX}"


def is_ours(name: str) -> bool:
    return name.startswith(PREFIX) and name.endswith(SUFFIX)


def upstream_name(key: str) -> str:
    """A global nginx name for an upstream key (service id, or the daemon's)."""
    if _SAFE_KEY.match(key):
        return f"dployr_{key}"
    return "dployr_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def certificate_dir(config: ProxyConfig, domain: str) -> Path:
    """certbot's layout: <nginx_certs>/<domain>/{fullchain,privkey}.pem (`*.` as `_.`)."""
    return Path(config.nginx_certs) / domain.replace("*", "_")


def render_files(
    config: ProxyConfig, routes: Sequence[Route], upstreams: Upstreams
) -> dict[str, str]:
    """The whole desired state: file name → text. Blocking (template and certificate reads)."""
    live = {key: list(addresses) for key, addresses in upstreams.items() if addresses}
    for addresses in live.values():
        for address in addresses:
            if not _ADDRESS.match(address):
                raise ProxyError("nginx", f"upstream address {address!r} is not host:port")
    by_domain: dict[str, list[Route]] = {}
    for route in routes:
        by_domain.setdefault(route.domain, []).append(route)
    files = {
        file_name(domain): render("nginx.conf.j2", site=_site(config, domain, own, live),
                                  http_port=config.http_port, https_port=config.https_port)
        for domain, own in sorted(by_domain.items())
    }  # fmt: skip
    used = sorted({route.upstream_key for route in routes if route.upstream_key in live})
    blocks = {upstream_name(key): live[key] for key in used}
    files[SHARED_FILE] = render(
        "nginx.shared.conf.j2", upstreams=blocks, http_port=config.http_port
    )
    return files


def _site(
    config: ProxyConfig, domain: str, routes: list[Route], live: Mapping[str, list[str]]
) -> Site:
    site = Site(domain)
    if any(route.tls == "auto" for route in routes):
        folder = certificate_dir(config, domain)
        certificate, private = folder / "fullchain.pem", folder / "privkey.pem"
        if certificate.is_file() and private.is_file():
            for path in (certificate, private):
                if not _SAFE_PATH.match(str(path)):
                    raise ProxyError(
                        "nginx", f"certificate path {str(path)!r} has unsafe characters"
                    )
            site.certificate, site.key = str(certificate), str(private)
    port = "" if config.https_port == 443 else f":{config.https_port}"
    # nginx picks the longest matching prefix whatever the order; longest first reads the same.
    for route in sorted(routes, key=lambda r: (-len(r.path_prefix), r.path_prefix)):
        key = route.upstream_key
        target = (
            Location(route.path_prefix, upstream_name(key))
            if key in live
            else Location(route.path_prefix, status=503)
        )
        if site.certificate:
            site.https.append(target)
        if route.tls == "auto" and site.certificate:
            site.http.append(
                Location(route.path_prefix, redirect=f"https://$host{port}$request_uri")
            )
        else:
            site.http.append(target)
    return site


def read_ours(folder: Path) -> dict[str, bytes]:
    """dployr's files in nginx_dir now, by name."""
    try:
        names = [
            entry.name for entry in os.scandir(folder) if entry.is_file() and is_ours(entry.name)
        ]
    except OSError as err:
        raise ProxyError("nginx", f"cannot read {folder}: {err}") from err
    return {name: (folder / name).read_bytes() for name in names}


def write_ours(folder: Path, files: Mapping[str, str]) -> dict[str, bytes]:
    """Make dployr's files in `folder` exactly `files`; return what was there before (for
    restore_ours). Each file is replaced atomically (rename), so nginx never reads half a file."""
    before = read_ours(folder)
    try:
        for name, text in files.items():
            if before.get(name) != text.encode():
                _replace(folder, name, text.encode())
        for name in before.keys() - files.keys():
            (folder / name).unlink(missing_ok=True)
    except OSError as err:
        restore_ours(folder, before)
        raise ProxyError("nginx", f"cannot write {folder}: {err}") from err
    return before


def restore_ours(folder: Path, before: Mapping[str, bytes]) -> None:
    """Put dployr's files back exactly as `before`: rewritten, and those new since deleted."""
    now = read_ours(folder)
    for name, data in before.items():
        if now.get(name) != data:
            _replace(folder, name, data)
    for name in now.keys() - before.keys():
        (folder / name).unlink(missing_ok=True)


def _replace(folder: Path, name: str, data: bytes) -> None:
    # A leading dot and no .conf ending: an `include …/*.conf` never reads the half-written file.
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    temporary.replace(folder / name)
