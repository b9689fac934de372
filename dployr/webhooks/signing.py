"""Webhook secrets and signatures (SPEC §7, §13 "Signatures")."""

from __future__ import annotations

import base64
import binascii
import secrets

PREFIX = "whsec_"
MIN_SECRET_BYTES = 24


def generate_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: a Standard Webhooks secret."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_problem(secret: str) -> str | None:
    """Why a secret a user gave is not good enough, or None."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        return f"must be at least {MIN_SECRET_BYTES} bytes"
    if secret.startswith(PREFIX):
        try:
            key = base64.b64decode(secret[len(PREFIX) :], validate=True)
        except binascii.Error:
            return "starts with whsec_ but the rest is not base64"
        if len(key) < MIN_SECRET_BYTES:
            return f"must decode to at least {MIN_SECRET_BYTES} bytes after whsec_"
    return None
