"""Access tokens: HS256 only, typ pinned, every claim required; passwords: bcrypt rules."""

import time

import bcrypt
import jwt
import pytest

from dployr.auth.jwt_tokens import AccessTokens, load_or_create_key
from dployr.auth.passwords import PasswordHasher, check_password_rules
from dployr.errors import InvalidToken, ValidationError

KEY = b"k" * 64


def claims(**over):
    now = int(time.time())
    return {
        "sub": "usr_1",
        "jti": "j",
        "sid": "ses_1",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
    } | over


def test_issue_and_verify_round_trip():
    tokens = AccessTokens(KEY, 900)
    token, issued = tokens.issue("usr_1", "ses_1")
    assert tokens.verify(token) == issued
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(), None, algorithm="none"),
        jwt.encode(claims(), b"another key" * 4, algorithm="HS256"),
        jwt.encode(claims(exp=int(time.time()) - 5), KEY, algorithm="HS256"),
        jwt.encode(claims(typ="refresh"), KEY, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims().items() if k != "jti"}, KEY, algorithm="HS256"),
        jwt.encode(claims(), KEY, algorithm="HS512"),
        "not.a.jwt",
        "",
    ],
    ids=["alg-none", "other-key", "expired", "wrong-typ", "no-jti", "hs512", "garbage", "empty"],
)
def test_rejected_tokens(token):
    with pytest.raises(InvalidToken):
        AccessTokens(KEY, 900).verify(token)


def test_key_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "secrets" / "jwt.key"
    key = load_or_create_key(path)
    assert len(key) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key


@pytest.mark.parametrize(
    "password",
    ["short", "é" * 37, "a" * 73, "with\x00nul-inside"],
    ids=["short", "74-bytes", "73", "nul"],
)
def test_password_rules(password):
    with pytest.raises(ValidationError) as refused:
        check_password_rules(password)
    assert refused.value.details["field"] == "password"


def test_seventy_two_bytes_is_the_most():
    check_password_rules("a" * 72)


async def test_unknown_user_costs_a_bcrypt_check(monkeypatch):
    """Unknown e-mail and wrong password do the same work: one bcrypt check each."""
    hasher = PasswordHasher(4)
    stored = await hasher.hash("right password")
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda p, h: calls.append(h) or real(p, h))
    assert not await hasher.verify("wrong password", stored)
    assert not await hasher.verify("wrong password", None)
    assert not await hasher.verify("x" * 100, stored)
    assert len(calls) == 3
    assert await hasher.verify("right password", stored)
