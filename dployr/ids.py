"""Opaque prefixed IDs and the one timestamp format of the API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower-case


def new_id(prefix: str) -> str:
    """`prj_…`: 16 random base32 characters (80 bits) after the type prefix."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(utcnow())


def iso_in(seconds: float) -> str:
    return iso(utcnow() + timedelta(seconds=seconds))


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
