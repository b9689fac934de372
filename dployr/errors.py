"""The DployrError tree: each error carries its HTTP status and the SPEC's error code."""

from __future__ import annotations

from typing import Any


class DployrError(Exception):
    status = 500
    code = "internal_error"
    default_message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class ValidationError(DployrError):
    status = 400
    code = "validation_error"
    default_message = "Invalid request parameters"

    def __init__(self, field: str | None, reason: str, message: str | None = None) -> None:
        details = {"field": field, "reason": reason} if field else {"reason": reason}
        super().__init__(message or f"Invalid request: {field or 'body'} {reason}", details=details)


class AuthenticationRequired(DployrError):
    status = 401
    code = "authentication_required"
    default_message = "Authentication required: send 'Authorization: Bearer <token>'"


class InvalidToken(DployrError):
    status = 401
    code = "invalid_token"
    default_message = "The token is malformed, unknown, revoked or expired; log in again"


class Forbidden(DployrError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this"


class NotFound(DployrError):
    status = 404
    code = "not_found"
    default_message = "Not found"


class MethodNotAllowed(DployrError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"


class Conflict(DployrError):
    status = 409
    code = "conflict"
    default_message = "Conflict with an existing object"


class InvalidState(DployrError):
    status = 409
    code = "invalid_state"
    default_message = "The object is not in a state that allows this"


class PayloadTooLarge(DployrError):
    status = 413
    code = "payload_too_large"
    default_message = "Request body is too large"


class UnsupportedMediaType(DployrError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Send the body as JSON with 'Content-Type: application/json'"


class RateLimited(DployrError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; retry later"


class ProxyError(DployrError):
    """The proxy refused or could not take a config; the previous one keeps serving."""

    status = 502
    code = "proxy_error"
    default_message = "The reverse proxy rejected the configuration"

    def __init__(self, backend: str, said: str, message: str | None = None) -> None:
        said = said.strip()[-4000:]  # the proxy's own words, its last lines when long
        last = said.splitlines()[-1][:300] if said else "no message"
        super().__init__(
            message or f"{backend} refused the new config ({last}); the previous one keeps serving",
            details={"backend": backend, "message": said},
        )


class Unavailable(DployrError):
    status = 503
    code = "unavailable"
    default_message = "Service unavailable"


# Codes for plain HTTP errors raised by aiohttp itself (router, body reader).
HTTP_STATUS_CODES = {
    400: ValidationError.code,
    401: AuthenticationRequired.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: MethodNotAllowed.code,
    409: Conflict.code,
    413: PayloadTooLarge.code,
    415: UnsupportedMediaType.code,
    429: RateLimited.code,
    502: ProxyError.code,
    503: Unavailable.code,
}
