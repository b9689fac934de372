"""Access tokens (JWT, HS256 only) and the opaque refresh and API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from dployr.errors import InvalidToken

_LOGGER = logging.getLogger(__name__)
ALGORITHM = "HS256"
ACCESS_TYP = "access"
API_TOKEN_PREFIX = "dpl_"  # noqa: S105 (a prefix, not a secret)


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    jti: str
    sid: str
    iat: int
    exp: int


class AccessTokens:
    def __init__(self, key: bytes, ttl: int) -> None:
        self._key = key
        self.ttl = ttl
        self._loaded = False

    async def load(self) -> None:
        """Import PyJWT in a worker thread; await it before `issue` or `verify` on the loop.
        PyJWT imports all of `cryptography` (~10 MB of RSS, tens of ms): a daemon that no one
        has logged in to since it started holds neither."""
        if not self._loaded:
            await asyncio.to_thread(importlib.import_module, "jwt")
            self._loaded = True

    def issue(self, user_id: str, session_id: str) -> tuple[str, AccessClaims]:
        now = int(time.time())
        claims = AccessClaims(
            sub=user_id, jti=secrets.token_urlsafe(16), sid=session_id, iat=now, exp=now + self.ttl
        )
        payload = {
            "sub": claims.sub,
            "jti": claims.jti,
            "sid": claims.sid,
            "iat": claims.iat,
            "exp": claims.exp,
            "typ": ACCESS_TYP,
        }
        import jwt  # see load()

        return jwt.encode(payload, self._key, algorithm=ALGORITHM), claims

    def verify(self, token: str) -> AccessClaims:
        """Decode a token signed by us with HS256 and typ=access; anything else is InvalidToken."""
        import jwt  # see load()

        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp", "iat", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired; refresh it or log in again") from None
        except jwt.InvalidTokenError:
            raise InvalidToken() from None
        if payload.get("typ") != ACCESS_TYP:
            raise InvalidToken("This is not an access token")
        fields = ("sub", "jti", "sid")
        if not all(isinstance(payload.get(k), str) for k in fields):
            raise InvalidToken()
        return AccessClaims(
            sub=payload["sub"],
            jti=payload["jti"],
            sid=payload["sid"],
            iat=int(payload["iat"]),
            exp=int(payload["exp"]),
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are high-entropy random strings: a plain SHA-256 is the right stored form."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The signing key: 64 random bytes in a 0600 file, made at first start. Blocking: thread it."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(64)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        _LOGGER.info("generated a new key in %s", path)
        return key
    if len(key) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes; delete it to make a new key")
    return key
