"""Inbound git push hooks (SPEC §4.5): verify GitHub's or GitLab's signature, read the push."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from secrets import token_bytes
from typing import Any
from urllib.parse import parse_qs

from dployr.errors import ValidationError

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")
_ZERO = re.compile(r"^0+\Z")  # a deleted branch's `after`


@dataclass(frozen=True)
class Push:
    event: str  # "push", "ping", or the sender's other event name
    ref: str | None = None
    commit: str | None = None  # None: the branch was deleted


def verify(headers: Mapping[str, str], body: bytes, secret: str | None) -> bool:
    """GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`; GitLab:
    `X-Gitlab-Token: <secret>`. Both compared in constant time. `secret` None (no such
    service): the same work against a random key, so timing does not tell that it is missing."""
    key = secret.encode() if secret is not None else token_bytes(32)
    signature = headers.get("X-Hub-Signature-256")
    if signature is not None:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.strip().encode()) and bool(secret)
    token = headers.get("X-Gitlab-Token")
    if token is not None:
        return hmac.compare_digest(key, token.encode()) and bool(secret)
    return False


def read_push(headers: Mapping[str, str], content_type: str, body: bytes) -> Push:
    """The event of a verified hook; a push's `ref` and commit (400s name the field)."""
    github = headers.get("X-GitHub-Event")
    event = github if github is not None else headers.get("X-Gitlab-Event", "")
    if github == "ping":
        return Push("ping")
    if event not in ("push", "Push Hook"):
        return Push(event or "unknown")
    payload = _payload(content_type, body)
    ref = payload.get("ref")
    if not isinstance(ref, str):
        raise ValidationError("ref", "a push names the ref it updated")
    commit = payload.get("after") if github is not None else payload.get("checkout_sha")
    if commit is None or (isinstance(commit, str) and _ZERO.match(commit)):
        return Push("push", ref, None)
    field = "after" if github is not None else "checkout_sha"
    if not isinstance(commit, str) or not _SHA.match(commit.lower()):
        raise ValidationError(field, "must be a 40 or 64 digit hex commit SHA")
    return Push("push", ref, commit.lower())


def _payload(content_type: str, body: bytes) -> dict[str, Any]:
    """GitHub sends JSON, or a form whose `payload` field is the JSON; GitLab sends JSON."""
    try:
        if content_type == "application/x-www-form-urlencoded":
            text = parse_qs(body.decode(), strict_parsing=True)["payload"][0]
        else:
            text = body.decode()
        data = json.loads(text)
    except (ValueError, KeyError, IndexError):
        raise ValidationError("body", "is not a JSON push event") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "is not a JSON push event")
    return data
