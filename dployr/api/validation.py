"""Reading requests at the edge: JSON bodies against their schema, paging and query filters."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from typing import Any

from aiohttp import web

from dployr.errors import UnsupportedMediaType, ValidationError
from dployr.store.paging import MAX_PER_PAGE, JsonPage, Page, PageRequest

_validators: dict[int, Any] = {}
# A lone surrogate can only arrive as a \uD800-\uDFFF escape, or as its UTF-8-like bytes (json
# decodes bytes with "surrogatepass"); only then is the decoded body searched for one.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unstorable:
    """Stands in for a literal Python parses but JSON and the store cannot hold (an integer
    past int()'s digit limit; NaN or Infinity, which json.loads accepts), until it is named."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_TOO_LONG = _Unstorable("is an integer with too many digits")
_NOT_FINITE = _Unstorable("must be a finite number (NaN and Infinity are not JSON)")


async def read_json(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, checked against `schema`; 415/413/400 with the SPEC shape."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()  # over client_max_size: aiohttp raises 413, the middleware shapes it
    return await checked_json(raw, schema)


async def checked_json(raw: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    """`raw` parsed as a JSON object and checked against `schema` (a body, or a JSON part of
    a multipart body): a 400 naming the field."""
    data = parse_json(raw)
    if id(schema) not in _validators:
        # In a thread: the first one also imports jsonschema (~2 MB, tens of ms), which a
        # daemon that has had no request with a body yet does not hold.
        _validators[id(schema)] = await asyncio.to_thread(_compile, schema)
    validate(schema, data)
    return data


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object every value of which Python and SQLite can hold, or a 400 naming the field."""
    unstorable = False

    def parse_int(text: str) -> int | _Unstorable:
        nonlocal unstorable
        try:
            return int(text)
        except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
            unstorable = True
            return _TOO_LONG

    def parse_constant(text: str) -> _Unstorable:
        nonlocal unstorable
        unstorable = True
        return _NOT_FINITE

    try:
        data = json.loads(raw, parse_int=parse_int, parse_constant=parse_constant)
    except UnicodeDecodeError:
        raise ValidationError(None, "is not UTF-8", "Malformed JSON body: not UTF-8") from None
    except json.JSONDecodeError as err:
        raise ValidationError(None, err.msg, f"Malformed JSON body: {err}") from None
    except RecursionError:
        raise ValidationError(None, "is nested too deeply", "Malformed JSON body") from None
    if not isinstance(data, dict):
        raise ValidationError(None, "must be a JSON object")
    if unstorable or _SURROGATE_HINT.search(raw):
        problem = _unstorable(data, None)
        if problem is not None:
            raise ValidationError(*problem)
    return data


def _unstorable(value: Any, path: str | None) -> tuple[str | None, str] | None:
    """The first value (depth first) that cannot be stored: a too-long integer, NaN or
    Infinity, or a string with a lone surrogate."""
    if isinstance(value, _Unstorable):
        return path, value.reason
    if isinstance(value, str):
        return (path, "must not contain " + _LONE_SURROGATE) if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        if _SURROGATE.search(key):
            shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
            return _join(path, shown), "is a field name with " + _LONE_SURROGATE
        problem = _unstorable(item, _join(path, key))
        if problem is not None:
            return problem
    return None


_LONE_SURROGATE = "a lone surrogate (\\ud800-\\udfff): it is not valid Unicode"


def _compile(schema: dict[str, Any]) -> Any:
    import jsonschema

    def pattern(validator: Any, regex: str, instance: Any, _: Any) -> Any:
        if validator.is_type(instance, "string") and not _end_anchored(regex).search(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")

    strict = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"pattern": pattern}
    )
    return strict(schema)


@functools.cache
def _end_anchored(regex: str) -> re.Pattern[str]:
    """A schema pattern's final `$` means the end of the string. Python's `$` also matches
    before a final newline (a name "web" plus a newline passed `^[a-z0-9-]+$`), so it is read
    as Python's end-of-string anchor."""
    if regex.endswith("$") and not regex.endswith("\\$"):
        regex = regex[:-1] + r"\Z"
    return re.compile(regex)


def validate(schema: dict[str, Any], data: Any) -> None:
    """Raise ValidationError naming the first field that breaks `schema`."""
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = _compile(schema)
    error = next(iter(sorted(validator.iter_errors(data), key=lambda e: e.path)), None)
    if error is not None:
        field, reason = _describe(error)
        raise ValidationError(field, reason)


def _describe(error: Any) -> tuple[str | None, str]:
    path = ".".join(str(p) for p in error.path) or None
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        missing = next(p for p in expected if p not in error.instance)
        return _join(path, missing), "is required"
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return _join(path, extra[0] if extra else "?"), "is not a known field"
    if kind == "type":
        expected = " or ".join(expected) if isinstance(expected, list) else expected
    elif kind == "enum":
        expected = ", ".join(map(str, expected))
    return path, _REASONS.get(kind, "is invalid").format(expected)


_REASONS = {
    "type": "must be of type {}",
    "minLength": "must be at least {} characters",
    "maxLength": "must be at most {} characters",
    "pattern": "has an invalid format",
    "enum": "must be one of {}",
    "const": "must be {}",
    "minimum": "must be >= {}",
    "maximum": "must be <= {}",
    "maxProperties": "must have at most {} entries",
}


def _join(path: str | None, key: str) -> str:
    return f"{path}.{key}" if path else key


def page_request(request: web.Request) -> PageRequest:
    """`page` and `per_page` (alias `limit`); per_page is capped at 100, below 1 is a 400."""
    page = query_int(request, "page", 1, minimum=1)
    per_page = query_int(request, "per_page", None, minimum=1)
    if per_page is None:
        per_page = query_int(request, "limit", 20, minimum=1)
    assert per_page is not None and page is not None
    return PageRequest(page=page, per_page=min(per_page, MAX_PER_PAGE))


def query_int(
    request: web.Request, name: str, default: int | None, *, minimum: int, maximum: int = 10**9
) -> int | None:
    """A decimal integer query parameter, at least `minimum`, capped at `maximum`. Its length
    is looked at before int(): int() of thousands of digits raises (Python's limit)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ValidationError(name, _INT_REASONS.get(minimum, f"must be an integer >= {minimum}"))
    digits = raw.lstrip("0") or "0"
    value = int(digits) if len(digits) < 10 else maximum
    if value < minimum:
        raise ValidationError(name, _INT_REASONS.get(minimum, f"must be an integer >= {minimum}"))
    return min(value, maximum)


_INT_REASONS = {0: "must be a non-negative integer", 1: "must be a positive integer"}


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise ValidationError(name, "must be one of " + ", ".join(choices))
    return raw


def query_text(request: web.Request, name: str, max_length: int = 200) -> str | None:
    raw = request.query.get(name)
    if raw is not None and (len(raw) > max_length or "\x00" in raw):
        raise ValidationError(name, f"must be at most {max_length} characters, without NUL")
    return raw or None


def query_bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError(name, "must be true or false")
    return raw in ("true", "1")


def json_page_response(page: JsonPage) -> web.Response:
    """The list envelope around items SQLite rendered: no Python object per item."""
    text = (
        f'{{"items": {page.items_json}, "page": {page.request.page}, '
        f'"per_page": {page.request.per_page}, "total": {page.total}, '
        f'"total_pages": {page.total_pages}}}'
    )
    return web.Response(text=text, content_type="application/json")


def page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    return {
        "items": items,
        "page": page.request.page,
        "per_page": page.request.per_page,
        "total": page.total,
        "total_pages": page.total_pages,
    }
