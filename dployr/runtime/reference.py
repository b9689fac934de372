"""Image references checked against Docker's grammar (github.com/distribution/reference)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dployr.errors import ValidationError

# The grammar of distribution/reference's regexp.go, anchored piece by piece.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?\Z")
_PATH = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*\Z")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_DIGEST = re.compile(r"^(?P<algorithm>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)\Z")
# go-digest's registered algorithms and the length of their lower-case hex.
_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+\Z")
NAME_MAX = 255
DEFAULT_DOMAIN = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    domain: str  # docker.io when none was written
    path: str  # library/alpine, dployr/svc_x
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"


def _bad(reason: str) -> ValidationError:
    return ValidationError("image", reason)


def parse_image(text: str) -> ImageRef:
    """`[domain[:port]/]path[:tag][@algorithm:hex]`, normalised the way the engine reads it,
    or a 400 naming what is wrong."""
    name, at, digest = text.partition("@")
    if at:
        _check_digest(digest)
    tag = None
    head, slash, last = name.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        if not _TAG.match(tag):
            raise _bad("has an invalid tag (letters, digits, '_', '.', '-'; at most 128)")
    name = head + slash + last
    if not name or len(name) > NAME_MAX:
        raise _bad(f"must have a name of 1-{NAME_MAX} characters")
    domain, path = _split_domain(name)
    if not _PATH.match(path):
        raise _bad(
            "has an invalid name: lower-case letters and digits, separated by '.', '_', '__', "
            "'-' or '/'"
        )
    if domain != DEFAULT_DOMAIN and not _DOMAIN.match(domain):
        raise _bad("has an invalid registry host")
    _refuse_id_lookups(domain, path, tag, digest, text)
    return ImageRef(domain, path, tag, digest or None)


def _split_domain(name: str) -> tuple[str, str]:
    """The engine's own rule (ParseNormalizedNamed): the first component is a registry when it
    has a '.' or ':', is `localhost`, or has upper case; `index.docker.io` is `docker.io`."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


def _check_digest(digest: str) -> None:
    match = _DIGEST.match(digest)
    if match is None:
        raise _bad("has an invalid digest (algorithm:hex)")
    algorithm, hex_ = match.group("algorithm"), match.group("hex")
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise _bad("has a digest of an unknown algorithm (use sha256, sha384 or sha512)")
    if len(hex_) != length or not _HEX.match(hex_):
        raise _bad(f"has an invalid {algorithm} digest: {length} lower-case hex digits")


def _refuse_id_lookups(domain: str, path: str, tag: str | None, digest: str, text: str) -> None:
    """The engine falls back to matching image IDs by prefix when a bare name is not a known
    tag (`a1b2` or `sha256:a1b2` may name any image on the host, another owner's release
    included), so a reference must be read as a name and only as one."""
    if domain != DEFAULT_DOMAIN or "/" in text.partition("@")[0]:
        return
    bare = path.removeprefix("library/")
    if bare in _HEX_LENGTH and tag is not None:
        raise _bad("looks like an image ID; name the image by repository and tag")
    if tag is None and not digest and _HEX.match(bare):
        raise _bad("could be read as an image ID; add a tag (e.g. ':latest')")
