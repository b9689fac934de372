"""The API client of the CLI: where the daemon is (cli.toml, env, flags) and one request call.

Standard library only (urllib): a command that lists services must start in well under 300 ms,
and aiohttp alone takes longer than that to import. Only WebSocket follows use aiohttp.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dployr.cli.errors import AUTH, UNREACHABLE, USAGE, CommandError

DEFAULT_URL = "http://127.0.0.1:7870"
API = "/api/v1"

# What to do next, by the API's error code (SPEC §1).
_HINTS = {
    "authentication_required": "log in with `dployr login`",
    "invalid_token": "run `dployr login` (or pass a valid --token)",
    "forbidden": "this needs an admin's token",
    "not_found": "check the name or id (the `ls` commands list them)",
    "rate_limited": "wait and try again",
    "payload_too_large": "make it smaller, or raise the daemon's limit",
    "internal_error": "the daemon failed: see its log (`journalctl -u dployr`)",
    "unavailable": "the daemon is not ready: see `dployr status` or its log",
}


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dployr" / "cli.toml"


@dataclass(frozen=True)
class Settings:
    """Where the daemon is and how to prove who we are. `refresh_token` is set after a
    password login (the access token is then a JWT renewed through it)."""

    url: str = DEFAULT_URL
    token: str = ""
    refresh_token: str = ""
    email: str = ""

    @classmethod
    def load(cls, url: str | None = None, token: str | None = None) -> Settings:
        """cli.toml, then DPLOYR_URL/DPLOYR_TOKEN, then the flags: the later one wins. A
        token given by env or flag has no refresh token (it is used as it is). The file's
        tokens go only to the daemon they came from: another URL needs a token of its own."""
        stored = cls.read(settings_path())
        settings = stored
        if env_url := os.environ.get("DPLOYR_URL"):
            settings = replace(settings, url=env_url)
        if url:
            settings = replace(settings, url=url)
        settings = replace(settings, url=check_url(settings.url))
        if settings.url != check_url(stored.url):
            settings = replace(settings, token="", refresh_token="", email="")
        if env_token := os.environ.get("DPLOYR_TOKEN"):
            settings = replace(settings, token=env_token, refresh_token="")
        if token:
            settings = replace(settings, token=token, refresh_token="")
        return settings

    @classmethod
    def read(cls, path: Path) -> Settings:
        import tomllib

        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as err:
            raise CommandError(f"cannot read {path}: {err}", USAGE) from None
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if not all(isinstance(v, str) for v in fields.values()):
            raise CommandError(f"{path}: every value must be a string", USAGE)
        return cls(**fields)

    def save(self, path: Path | None = None) -> Path:
        """Write cli.toml 0600 (in a 0700 dir) through a temp file: a token is a secret, and a
        crash mid-write must not leave half a file."""
        path = path or settings_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [f"{key} = {json.dumps(getattr(self, key))}" for key in self.__dataclass_fields__]
        fd, temp = tempfile.mkstemp(prefix=".cli.", dir=path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write("# written by `dployr login`\n" + "\n".join(lines) + "\n")
            Path(temp).replace(path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return path


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(
            f"not a daemon URL: {url!r} (give http://HOST:PORT or https://DOMAIN)", USAGE
        )
    return url.rstrip("/")


class ApiError(CommandError):
    """The API answered with its error shape: status, code, message, details (SPEC §1)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        text = message
        if isinstance(details, dict) and details.get("field"):
            text += f" ({details['field']}: {details.get('reason', 'invalid')})"
        elif details and code == "proxy_error":
            text += f": {details}"
        if hint := _HINTS.get(code):
            text += f"; {hint}"
        super().__init__(text, AUTH if status == 401 else 1)
        self.status = status
        self.code = code
        self.details = details


class Api:
    """Requests to one daemon. A 401 with a refresh token at hand renews the pair once (and
    saves it), then repeats the request."""

    def __init__(self, settings: Settings, *, timeout: float = 30) -> None:
        self.settings = settings
        self.timeout = timeout
        self._https = settings.url.startswith("https")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, body, params=params)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str = "application/json",
        auth: bool = True,
    ) -> Any:
        """JSON in, JSON out (None for a 204). `path` is under /api/v1 unless it starts with
        `/health` or `/metrics`."""
        if body is not None:
            data = json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                with self.open(method, path, params, data, content_type, auth) as response:
                    return self.decode(response.read(), path)
            except ApiError as err:
                if attempt == 1 and err.status == 401 and auth and self._refresh():
                    continue
                raise
        raise AssertionError("unreachable")

    def decode(self, raw: bytes, path: str) -> Any:
        """The JSON of an answer; one clear line when something else answers at the URL."""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            first = raw.decode("utf-8", "replace").strip()[:80]
            raise CommandError(
                f"the answer from {self.url(path)} is not dployr's JSON ({first!r}): "
                "is --url / DPLOYR_URL a dployr daemon?",
                UNREACHABLE,
            ) from None

    def records(self, path: str, **params: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """A streamed NDJSON answer (logs with follow=true): each line as it came and as JSON,
        as they come; blank keep-alive lines skipped."""
        for raw in self.lines(path, **params):
            if raw:
                yield raw, self.decode(raw.encode(), path)

    def lines(self, path: str, **params: Any) -> Iterator[str]:
        """A streamed answer, line by line as they come."""
        for attempt in (1, 2):
            try:
                response = self.open("GET", path, params, None, "application/json", True, None)
            except ApiError as err:
                if attempt == 1 and err.status == 401 and self._refresh():
                    continue
                raise
            with response:
                for raw in response:
                    yield raw.decode("utf-8", "replace").rstrip("\n")
            return

    def open(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        data: bytes | None,
        content_type: str,
        auth: bool,
        timeout: float | None = -1.0,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import ssl
        import urllib.error
        import urllib.request  # here: 20 ms that `dployr --help` need not pay

        url = self.url(path, params)
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http/https: check_url)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if auth:
            if not self.settings.token:
                raise CommandError(
                    f"not logged in to {self.settings.url}: run `dployr login` "
                    "(or set DPLOYR_TOKEN, or pass --token)",
                    AUTH,
                )
            request.add_header("Authorization", f"Bearer {self.settings.token}")
        try:
            return urllib.request.urlopen(  # noqa: S310
                request,
                timeout=self.timeout if timeout == -1.0 else timeout,
                context=ssl.create_default_context() if self._https else None,
            )
        except urllib.error.HTTPError as err:
            raise _api_error(err) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise CommandError(
                f"cannot reach the dployr daemon at {self.settings.url}: {reason} "
                "(is it running? `systemctl status dployr`; or set --url / DPLOYR_URL)",
                UNREACHABLE,
            ) from None

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        prefix = "" if path.startswith(("/health", "/metrics", API)) else API
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        tail = "?" + urllib.parse.urlencode(query) if query else ""
        return f"{self.settings.url}{prefix}{path}{tail}"

    def _refresh(self) -> bool:
        """Renew an expired access token with the stored refresh token. Refresh tokens rotate
        and a spent one presented again revokes the session, so commands running at once
        take turns (a lock beside cli.toml), and one that finds a pair renewed by another
        while it waited uses that pair. The new pair is saved at once."""
        if not self.settings.refresh_token:
            return False
        import fcntl

        path = settings_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (path.parent / ".cli.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = Settings.read(path)
            if stored.url != self.settings.url or not stored.refresh_token:
                return False  # the file changed hands (a logout, another daemon): log in
            if stored.refresh_token != self.settings.refresh_token:
                self.settings = replace(
                    self.settings, token=stored.token, refresh_token=stored.refresh_token
                )
                return True
            try:
                pair = self.request(
                    "POST",
                    "/auth/refresh",
                    {"refresh_token": self.settings.refresh_token},
                    auth=False,
                )
            except ApiError:
                return False
            self.settings = replace(
                self.settings, token=pair["access_token"], refresh_token=pair["refresh_token"]
            )
            replace(stored, token=self.settings.token, refresh_token=pair["refresh_token"]).save(
                path
            )
        return True


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _api_error(err: Any) -> ApiError:
    """From a urllib HTTPError."""
    raw = err.read()
    try:
        error = json.loads(raw)["error"]
        return ApiError(err.code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        # Not the daemon's error shape: something else answers at that URL (a proxy's page).
        text = raw.decode("utf-8", "replace").strip().splitlines()
        first = text[0][:200] if text else err.reason
        return ApiError(err.code, "http_error", f"HTTP {err.code} from {err.url}: {first}")
