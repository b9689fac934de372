"""The auth flows the API calls: register, login, refresh, logout, and who a bearer token is."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dployr.auth.jwt_tokens import (
    API_TOKEN_PREFIX,
    AccessClaims,
    AccessTokens,
    new_api_token,
    new_refresh_token,
    token_hash,
)
from dployr.auth.passwords import PasswordHasher, check_password_rules
from dployr.config import AuthConfig
from dployr.errors import AuthenticationRequired, Forbidden, InvalidToken, ValidationError
from dployr.ids import iso, parse_iso
from dployr.store import sessions, tokens, users
from dployr.store.db import Database
from dployr.store.tokens import ApiToken
from dployr.store.users import User

_LOGGER = logging.getLogger(__name__)
_CACHE_SIZE = 4096
BAD_CREDENTIALS = "Invalid email or password"
CLOSED = "Registration is closed; ask an admin to create your account"


@dataclass(frozen=True)
class Identity:
    """Who made a request: the user, and the access token's claims (None for an API token)."""

    user: User
    claims: AccessClaims | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


class AuthService:
    def __init__(self, db: Database, config: AuthConfig, access: AccessTokens) -> None:
        self._db = db
        self._config = config
        self._access = access
        self.passwords = PasswordHasher(config.bcrypt_rounds)
        self._cache: dict[str, tuple[int, float, Identity]] = {}

    async def register(
        self,
        caller: Identity | None,
        *,
        name: str,
        email: str,
        password: str,
        username: str | None,
    ) -> User:
        """Create an account: the first one is admin; later ones per `auth.registration`."""
        check_password_rules(password)
        caller_is_admin = caller is not None and caller.user.is_admin
        only_first = not caller_is_admin and self._config.registration != "open"
        if only_first and await users.count_users(self._db) > 0:
            raise Forbidden(CLOSED)
        password_hash = await self.passwords.hash(password)
        # The first-user check is repeated inside the insert's transaction: two racing first
        # registrations cannot both get in.
        return await users.create_user(
            self._db,
            name=name,
            email=email,
            password_hash=password_hash,
            username=username,
            only_if_first=only_first,
        )

    async def login(self, email: str, password: str) -> TokenPair:
        found = await users.get_login(self._db, email)
        ok = await self.passwords.verify(password, found[1] if found else None)
        if not found or not ok:
            raise InvalidToken(BAD_CREDENTIALS)
        user = found[0]
        if not user.is_active:
            raise Forbidden("This account is disabled; ask an admin to enable it")
        await users.record_login(self._db, user.id)
        refresh = new_refresh_token()
        session_id = await sessions.create_session(
            self._db, user.id, token_hash(refresh), self._config.refresh_ttl
        )
        await self._access.load()
        access, _ = self._access.issue(user.id, session_id)
        refreshed = await users.get_user(self._db, user.id)
        return TokenPair(access, refresh, self._access.ttl, refreshed or user)

    async def refresh(self, refresh_token: str) -> TokenPair:
        new = new_refresh_token()
        outcome = await sessions.rotate_refresh(
            self._db, token_hash(refresh_token), token_hash(new), self._config.refresh_ttl
        )
        if outcome.reused:
            _LOGGER.warning("a spent refresh token was presented again; its session is revoked")
            raise InvalidToken("This refresh token was already used; the session is revoked")
        if outcome.user_id is None or outcome.session_id is None:
            raise InvalidToken("The refresh token is unknown, expired or revoked; log in again")
        user = await users.get_user(self._db, outcome.user_id)
        if user is None:
            raise InvalidToken()
        await self._access.load()
        access, _ = self._access.issue(user.id, outcome.session_id)
        return TokenPair(access, new, self._access.ttl, user)

    async def logout(self, identity: Identity) -> None:
        claims = identity.claims
        if claims is None:
            return  # an API token is revoked with DELETE /tokens/{id}, not by logging out
        expires = iso(datetime.fromtimestamp(claims.exp, UTC))
        await sessions.logout(self._db, claims.sid, claims.jti, expires)

    async def change_password(
        self, identity: Identity, current_password: str | None, new_password: str
    ) -> str:
        """Check the current password and return the new hash; other sessions are revoked."""
        check_password_rules(new_password)
        if not current_password:
            raise ValidationError("current_password", "is required to change the password")
        stored = await users.get_password_hash(self._db, identity.user.id)
        if not await self.passwords.verify(current_password, stored):
            raise ValidationError("current_password", "is not correct")
        return await self.passwords.hash(new_password)

    async def revoke_other_sessions(self, identity: Identity) -> None:
        keep = identity.claims.sid if identity.claims else None
        await sessions.revoke_user_sessions(self._db, identity.user.id, keep=keep)

    async def authenticate(self, header: str | None) -> Identity | None:
        """The identity behind an Authorization header; None without one; InvalidToken if bad.

        Answers are cached per token until the next write to the database (any write: a
        logout, a role change, a revoked session) or the token's expiry, whichever is first."""
        if header is None:
            return None
        cached = self._cache.get(header)
        if cached and cached[0] == self._db.generation and cached[1] > time.time():
            return cached[2]
        generation = self._db.generation  # before reading: a write meanwhile voids the entry
        identity, expires = await self._authenticate(header)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[header] = (generation, expires, identity)
        return identity

    async def _authenticate(self, header: str) -> tuple[Identity, float]:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("Use 'Authorization: Bearer <token>'")
        # For API tokens too: what an authenticated request does next may decrypt a secret,
        # and the `cryptography` that SecretBox then needs comes with PyJWT, in a thread.
        await self._access.load()
        if token.startswith(API_TOKEN_PREFIX):
            found = await tokens.token_identity(self._db, token_hash(token))
            if found is None:
                raise InvalidToken("The API token is unknown, revoked or expired")
            expires = parse_iso(found[1]).timestamp() if found[1] else math.inf
            # Recheck at least every minute, so last_used_at stays roughly true.
            return Identity(found[0]), min(expires, time.time() + 60)
        claims = self._access.verify(token)
        user = await sessions.access_identity(self._db, claims.sub, claims.sid, claims.jti)
        if user is None:
            raise InvalidToken("The access token was revoked; log in again")
        return Identity(user, claims), float(claims.exp)

    async def still_valid(self, header: str, identity: Identity) -> bool:
        """Whether what authenticated an open stream (a WebSocket) still stands as it was: its
        session or API token not revoked, its user not deleted or disabled, nor made an admin
        or no longer one (what the stream may see was decided with the role). An access
        token's expiry does not end a stream; an API token's does."""
        claims = identity.claims
        if claims is None:
            token = header.partition(" ")[2].strip()
            found = await tokens.token_identity(self._db, token_hash(token))
            user = None if found is None else found[0]
        else:
            user = await sessions.access_identity(self._db, claims.sub, claims.sid, claims.jti)
        return user is not None and user.is_admin == identity.user.is_admin

    async def create_api_token(
        self, user: User, name: str, expires_in_days: int | None
    ) -> tuple[ApiToken, str]:
        """A new API token and its secret, which is shown this once and stored only hashed."""
        secret = new_api_token()
        expires = None
        if expires_in_days is not None:
            expires = iso(datetime.now(UTC) + timedelta(days=expires_in_days))
        token = await tokens.create_token(
            self._db,
            user.id,
            name,
            token_hash(secret),
            secret[: len(API_TOKEN_PREFIX) + 4],
            expires,
        )
        return token, secret


def require_user(identity: Identity | None) -> Identity:
    if identity is None:
        raise AuthenticationRequired()
    return identity


def require_admin(identity: Identity | None) -> Identity:
    identity = require_user(identity)
    if not identity.user.is_admin:
        raise Forbidden("This needs an admin account")
    return identity
