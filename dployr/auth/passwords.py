"""bcrypt password hashing, always off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

from dployr.errors import ValidationError

MIN_LENGTH = 8
MAX_BYTES = 72  # bcrypt reads at most 72 bytes; longer passwords are refused, never truncated


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationError(field, f"must be at least {MIN_LENGTH} characters")
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise ValidationError(field, f"must be at most {MAX_BYTES} bytes in UTF-8")
    if "\x00" in password:
        raise ValidationError(field, "must not contain NUL characters")


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        self._dummy_hash: bytes | None = None

    async def hash(self, password: str) -> str:
        hashed = await asyncio.to_thread(
            bcrypt.hashpw, password.encode("utf-8"), bcrypt.gensalt(self._rounds)
        )
        return hashed.decode("ascii")

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check a password; with no hash (unknown user) check a dummy one so timing matches."""
        secret = password.encode("utf-8")
        if len(secret) > MAX_BYTES or b"\x00" in secret:
            secret = b"!" * MAX_BYTES  # cannot match any stored hash, costs the same
            hashed = None
        if hashed is None:
            if self._dummy_hash is None:
                self._dummy_hash = (await self.hash("dummy-password-for-timing")).encode()
            await asyncio.to_thread(bcrypt.checkpw, secret, self._dummy_hash)
            return False
        return await asyncio.to_thread(bcrypt.checkpw, secret, hashed.encode("ascii"))

    async def warm_up(self) -> None:
        """Make the dummy hash at start so the first unknown-email login costs one check."""
        if self._dummy_hash is None:
            self._dummy_hash = (await self.hash("dummy-password-for-timing")).encode()
