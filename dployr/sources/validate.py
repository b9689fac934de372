"""Remotes, branches and local paths, checked before they reach git (SPEC §13 "Remotes")."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dployr.errors import ValidationError

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
SCHEMES = ("https", "http", "ssh", "git")
# scp-style needs the user: without it `name:path` is as likely a typo as an ssh alias, and the
# daemon has no ssh config in which an alias could mean anything.
_SCP = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[^:/@]+):(?P<path>.+)\Z")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}\Z")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE_REASON = (
    "resolves to a private or loopback address (set runtime.allow_private_remotes to allow)"
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Remote:
    url: str
    scheme: str  # "https" | "http" | "ssh" | "git"
    host: str
    port: int | None


def _bad(reason: str) -> ValidationError:
    return ValidationError("remote", reason)


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in text)


def parse_remote(url: str) -> Remote:
    """A git URL we are willing to hand to git, or a 400 naming what is wrong with it."""
    if not url or len(url) > 2048:
        raise _bad("must be 1-2048 characters")
    if url.startswith("-"):
        raise _bad("must not start with '-'")
    # git hands `<helper>::<address>` to git-remote-<helper>: ext:: runs a command.
    if "::" in url.split("/", 1)[0]:
        raise _bad("transport helpers (ext::, fd::) are not allowed")
    if _has_control_or_space(url):
        raise _bad("must not contain spaces or control characters")
    if "://" not in url:
        match = _SCP.match(url)
        if not match:
            raise _bad("must be an https://, http://, ssh://, git:// or user@host:path remote")
        _check_host(match.group("host"))
        _check_path(match.group("path"))
        return Remote(url, "ssh", match.group("host").lower(), None)
    scheme = url.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise _bad(f"scheme is not allowed (use {', '.join(SCHEMES)}; host paths are source local)")
    parts = urlsplit(url)
    # Over http(s) a user name is a credential too (a token is often sent as the user name),
    # and the URL is shown in logs and events; ssh://git@host is a login name, not a secret.
    if parts.password is not None or (scheme != "ssh" and parts.username is not None):
        raise _bad("credentials belong in a credential (credential_id), not the URL")
    if parts.netloc.rpartition("@")[2].startswith("["):
        raise _bad("ipv6 literals are not supported; use a host name")
    host = parts.hostname or ""
    _check_host(host)
    try:
        port = parts.port
    except ValueError:
        raise _bad("port must be 1-65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise _bad("port must be 1-65535")
    _check_path(parts.path)
    return Remote(url, scheme, host.lower(), port)


def _check_host(host: str) -> None:
    # Also what stops `ssh://-oProxyCommand=...`: ssh would read such a host as an option.
    if not host or host.startswith("-") or not _HOST.match(host) or ".." in host:
        raise _bad("has an invalid host")


def _check_path(path: str) -> None:
    if any(part.startswith("-") for part in path.split("/")):
        raise _bad("path components must not start with '-'")


def check_branch(branch: str) -> str:
    """The rules of `git check-ref-format --branch`, so a branch can never be read as an option."""

    def bad(reason: str) -> ValidationError:
        return ValidationError("branch", reason)

    if not 1 <= len(branch) <= 255:
        raise bad("must be 1-255 characters")
    if branch.startswith(("-", "/")):
        raise bad("must not start with '-' or '/'")
    if branch.endswith(("/", ".")):
        raise bad("must not end with '/' or '.'")
    if _BAD_REF_CHARS.search(branch):
        raise bad("must not contain spaces, control characters or any of ~^:?*[\\")
    if ".." in branch or "//" in branch or "@{" in branch or branch == "@":
        raise bad("must not contain '..', '//' or '@{', or be '@'")
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        raise bad("components must not start with '.' or end with '.lock'")
    return branch


def check_local_path(path: str) -> Path:
    """An absolute host path without tricks; whether it exists is seen at fetch time."""
    if not 1 <= len(path) <= 4096:
        raise ValidationError("path", "must be 1-4096 characters")
    if any(not ch.isprintable() for ch in path):  # NUL, newlines, escapes; spaces are fine
        raise ValidationError("path", "must not contain control characters")
    if not path.startswith("/"):
        raise ValidationError("path", "must be absolute")
    if ".." in path.split("/"):
        raise ValidationError("path", "must not contain '..'")
    return Path(path)


async def outside_protected(path: Path, protected: dict[str, Path]) -> Path:
    """The path with its symlinks resolved, when it is neither `/` nor inside nor around any of
    the `protected` directories (by name); else a 400. Resolving reads the filesystem: a thread."""

    def resolve_all() -> tuple[Path, dict[str, Path]]:
        return path.resolve(), {name: p.resolve() for name, p in protected.items()}

    try:
        resolved, roots = await asyncio.to_thread(resolve_all)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        raise ValidationError("path", f"cannot be resolved: {err}") from None
    if resolved == Path(resolved.anchor):
        raise ValidationError("path", "must not be / itself")
    for name, root in roots.items():
        if resolved == root or root in resolved.parents:
            raise ValidationError("path", f"is inside {name} ({root}); choose another directory")
        if resolved in root.parents:
            raise ValidationError("path", f"contains {name} ({root}); choose a narrower directory")
    return resolved


async def check_remote_host(remote: Remote, allow_private: bool) -> None:
    """Refuse link-local and metadata addresses always; loopback and private ones unless the
    operator allows them (a LAN Gitea). Checked at request time and again before each fetch."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(remote.host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                remote.host, remote.port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            raise _bad("host does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise _bad("host does not resolve")
    candidates = [a for address in addresses for a in with_embedded_ipv4(address)]
    # Every address first for the unconditional refusal, so allow_private never decides it.
    if any(a in METADATA or a.is_link_local for a in candidates):
        raise _bad("resolves to a link-local or metadata address")
    if not allow_private and any(is_private(a) for a in candidates):
        raise _bad(_PRIVATE_REASON)


def with_embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """The address, plus the IPv4 address inside a mapped, 6to4 or Teredo IPv6 one."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    return [address, *(a for a in embedded if a is not None)]


def is_private(address: IPAddress) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or address in _CGNAT
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )
