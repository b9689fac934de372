"""Secrets at rest: env values, credentials and hook secrets encrypted with a key file (0600)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from dployr.auth.jwt_tokens import load_or_create_key
from dployr.errors import Unavailable

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MASK = "********"


class SecretUndecryptable(Unavailable):
    """A stored secret this data dir's key does not open: a database restored without its
    secrets/ (or a key file replaced). A 503 that says what to restore, never a 500."""


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256): authenticated, so a tampered value fails loudly."""

    def __init__(self, key: bytes) -> None:
        self._key = base64.urlsafe_b64encode(key[:32])
        self._cipher: Fernet | None = None

    def _fernet(self) -> Fernet:
        """Made at first use. Requests reach here authenticated, after PyJWT (AccessTokens.load)
        imported `cryptography` in a thread, so this import is then cheap; an idle daemon
        holds neither."""
        if self._cipher is None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(self._key)
        return self._cipher

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The data dir's key, made at first start. Blocking: run it in a thread."""
        return cls(load_or_create_key(path))

    def encrypt(self, plain: str) -> str:
        return self._fernet().encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUndecryptable(
                "a stored secret does not decrypt with this data dir's key: restore secrets/ "
                "from the backup the database came from (dployr restore)"
            ) from None


def mask_secrets(text: str, secrets: list[str]) -> str:
    """Replace every known secret value in `text` (longest first, so overlaps mask fully)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text
