"""Webhook secrets and signatures (SPEC §7, §13 "Signatures")."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from dployr import __version__

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


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64-decoded part of a whsec_ secret, else its bytes."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX) :], validate=True)
        except binascii.Error:
            pass  # refused at create; an old row still signs with its bytes
    return secret.encode("utf-8")


def signed_headers(
    secret: str, delivery_id: str, event_type: str, body: str, timestamp: int
) -> dict[str, str]:
    """Both signatures of SPEC §7: dployr's own (hex, keyed with the secret's UTF-8 bytes) and
    Standard Webhooks' (base64, over "<id>.<timestamp>.<body>")."""
    own = hmac.new(secret.encode("utf-8"), f"{timestamp}.{body}".encode(), hashlib.sha256)
    standard = hmac.new(
        standard_key(secret), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": f"dployr/{__version__}",
        "X-Dployr-Event": event_type,
        "X-Dployr-Delivery": delivery_id,
        "X-Dployr-Signature": f"t={timestamp},v1={own.hexdigest()}",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(standard.digest()).decode("ascii"),
    }
