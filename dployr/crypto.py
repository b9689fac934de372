"""Secrets at rest: env values, credentials and hook secrets encrypted with a key file (0600)."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from dployr.auth.jwt_tokens import load_or_create_key

MASK = "********"


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256): authenticated, so a tampered value fails loudly."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key[:32]))

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The data dir's key, made at first start. Blocking: run it in a thread."""
        return cls(load_or_create_key(path))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError("a stored secret does not decrypt with this data dir's key") from None


def mask_secrets(text: str, secrets: list[str]) -> str:
    """Replace every known secret value in `text` (longest first, so overlaps mask fully)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text
