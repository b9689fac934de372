"""Domain names and path prefixes of routes (SPEC §5), checked before they reach any proxy
config: what passes is safe inside a Caddyfile, Caddy's JSON and an nginx server block."""

from __future__ import annotations

import re
import unicodedata

import idna

from dployr.errors import ValidationError

MAX_DOMAIN = 253
MAX_LABEL = 63
# fullmatch, never `$`: `$` also matches before a final newline ("/x\n" passed that way).
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Characters that could end a token in some proxy config syntax, named in the error. The
# label pattern above is the real gate (a whitelist); this only says what was wrong.
_FORBIDDEN = {
    " ": "a space", "{": "a brace", "}": "a brace", '"': "a quote", "'": "a quote",
    "`": "a quote", ";": "a semicolon", "#": "a '#'", ":": "a port (':')", "/": "a '/'",
    "\\": "a backslash", "$": "a '$'", "@": "an '@'", "*": "a '*' other than a leading '*.'",
}  # fmt: skip
# Unicode categories never part of a host name: controls, format characters (zero-width,
# bidi overrides), unassigned and private-use code points, and every kind of separator.
_INVISIBLE = ("Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs")
# `*` is Caddy's path wildcard and `%` an escape nginx decodes before matching: neither is
# allowed, so a prefix means the same literal path to both backends.
_PATH = re.compile(r"/[A-Za-z0-9._~!&()+,=:@/-]*")
MAX_PATH = 256


def normalize_domain(value: object, field: str = "domain") -> str:
    """The domain lower-cased, non-ASCII labels as punycode (IDNA 2008 with UTS #46
    mapping); else a 400 naming the problem."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty host name")
    if len(value) > MAX_DOMAIN:  # refused before any work; punycode is longer anyway
        raise ValidationError(field, f"must be at most {MAX_DOMAIN} characters")
    wildcard = value.startswith("*.")
    rest = value[2:] if wildcard else value
    for char in rest:
        if char in _FORBIDDEN:
            raise ValidationError(field, f"must be a bare host name, without {_FORBIDDEN[char]}")
        if unicodedata.category(char) in _INVISIBLE:
            raise ValidationError(
                field, "must not contain control characters, whitespace or invisible characters"
            )
    # Only the ASCII dot separates labels: the ideographic and fullwidth dots that IDNA maps
    # to one are refused inside a label by the label pattern.
    labels = [_ascii_label(label, field) for label in rest.split(".")]
    domain = ("*." if wildcard else "") + ".".join(labels)
    if len(domain) > MAX_DOMAIN:
        raise ValidationError(field, f"must be at most {MAX_DOMAIN} characters as punycode")
    return domain


def _ascii_label(label: str, field: str) -> str:
    if not label:
        raise ValidationError(field, "has an empty label (two dots, or a leading or trailing dot)")
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):
            _check_a_label(label, field)
    else:
        try:
            label = idna.encode(label, uts46=True, std3_rules=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as err:
            raise ValidationError(field, f"has a label IDNA cannot encode ({err})") from None
    if len(label) > MAX_LABEL:
        raise ValidationError(field, f"has a label longer than {MAX_LABEL} characters")
    if not _LABEL.fullmatch(label):
        raise ValidationError(
            field, "labels are letters, digits and inner hyphens (RFC 1123), 1-63 characters"
        )
    return label


def _check_a_label(label: str, field: str) -> None:
    """An `xn--` label must be punycode that decodes, or no proxy or browser agrees on it."""
    try:
        idna.decode(label)
    except (idna.IDNAError, UnicodeError) as err:
        reason = f"has an 'xn--' label that is not valid punycode ({err})"
        raise ValidationError(field, reason) from None


def check_path_prefix(value: object, field: str = "path_prefix") -> str:
    """`/` or `/something`, without a trailing slash: no spaces, braces, quotes, `..`, `%`,
    `*`, `?` or `#`."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError(field, "must start with '/'")
    if len(value) > MAX_PATH:
        raise ValidationError(field, f"must be at most {MAX_PATH} characters")
    if ".." in value or "/./" in value + "/" or "//" in value:
        raise ValidationError(field, "must not contain '..', '.' segments or empty segments")
    if not _PATH.fullmatch(value):
        raise ValidationError(
            field, "may hold letters, digits and - . _ ~ ! & ( ) + , = : @ / only"
        )
    if len(value) > 1 and value.endswith("/"):
        value = value.rstrip("/")
    return value


def default_tls(domain: str) -> str:
    """`auto`, except for names under .localhost (SPEC §13): those are served over HTTP."""
    return "off" if domain == "localhost" or domain.endswith(".localhost") else "auto"
