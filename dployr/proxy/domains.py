"""Domain names and path prefixes of routes (SPEC §5), checked before they reach any proxy
config: what passes is safe inside a Caddyfile, Caddy's JSON and an nginx server block."""

from __future__ import annotations

import re

from dployr.errors import ValidationError

MAX_DOMAIN = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Characters that could end a token in some proxy config syntax, named in the error.
_FORBIDDEN = {
    " ": "a space", "{": "a brace", "}": "a brace", '"': "a quote", "'": "a quote",
    "`": "a quote", ";": "a semicolon", "#": "a '#'", ":": "a port (':')", "/": "a '/'",
    "\\": "a backslash", "$": "a '$'", "@": "an '@'",
}  # fmt: skip
_PATH = re.compile(r"^/[A-Za-z0-9._~!&()*+,=:@%/-]*$")
MAX_PATH = 256


def normalize_domain(value: object, field: str = "domain") -> str:
    """The domain lower-cased, non-ASCII labels as punycode; else a 400 naming the problem."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty host name")
    for char in value:
        if ord(char) < 32 or ord(char) == 127 or (char.isspace() and char != " "):
            raise ValidationError(field, "must not contain control characters or whitespace")
        if char in _FORBIDDEN:
            raise ValidationError(field, f"must be a bare host name, without {_FORBIDDEN[char]}")
    text = value.lower()
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    labels = rest.split(".")
    ascii_labels = [_ascii_label(label, field) for label in labels]
    domain = ("*." if wildcard else "") + ".".join(ascii_labels)
    if len(domain) > MAX_DOMAIN:
        raise ValidationError(field, f"must be at most {MAX_DOMAIN} characters")
    return domain


def _ascii_label(label: str, field: str) -> str:
    if label == "*":
        raise ValidationError(field, "may hold '*' only as its whole first label ('*.')")
    if not label:
        raise ValidationError(field, "has an empty label (two dots, or a leading or trailing dot)")
    if not label.isascii():
        try:
            label = label.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValidationError(field, f"has a label IDNA cannot encode: {label!r}") from None
    if len(label) > 63:
        raise ValidationError(field, "has a label longer than 63 characters")
    if not _LABEL.match(label):
        raise ValidationError(field, "labels are letters, digits and inner hyphens (RFC 1123)")
    return label


def check_path_prefix(value: object, field: str = "path_prefix") -> str:
    """`/` or `/something`: no spaces, braces, quotes, `..`, `?` or `#`."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError(field, "must start with '/'")
    if len(value) > MAX_PATH:
        raise ValidationError(field, f"must be at most {MAX_PATH} characters")
    if ".." in value.split("/") or "/./" in value + "/" or "//" in value:
        raise ValidationError(field, "must not contain '..', '.' or empty segments")
    if not _PATH.match(value):
        raise ValidationError(
            field, "may hold letters, digits and - . _ ~ ! & ( ) * + , = : @ % / only"
        )
    if len(value) > 1 and value.endswith("/"):
        value = value.rstrip("/")
    return value


def default_tls(domain: str) -> str:
    """`auto`, except for names under .localhost (SPEC §13): those are served over HTTP."""
    return "off" if domain == "localhost" or domain.endswith(".localhost") else "auto"
