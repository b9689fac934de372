"""The error envelope, from every kind of failure: router, body reader, validation, a crash."""

import io

import pytest
from aiohttp import web

from dployr.api.openapi import operation
from dployr.app import create_app


def assert_error(body, code):
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_unknown_path(client):
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    assert "X-RateLimit-Limit" in resp.headers


async def test_method_not_allowed(client):
    resp = await client.patch("/api/v1/projects")
    assert resp.status == 405
    assert_error(await resp.json(), "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


async def test_two_mebibyte_body(client, admin):
    resp = await client.post(
        "/api/v1/projects",
        data=io.BytesIO(b"x" * (2 * 1024 * 1024)),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")


async def test_chunked_body_over_the_limit(client, admin):
    async def chunks():
        for _ in range(40):
            yield b"[" * 65536

    resp = await client.post(
        "/api/v1/projects", data=chunks(), headers={**admin, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"name": ', "application/json", 400, "validation_error"),
        (b"\xff\xfe", "application/json", 400, "validation_error"),
        (b"[1, 2]", "application/json", 400, "validation_error"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "validation_error"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json", 400, "validation_error"),
    ],
    ids=["truncated", "not-utf8", "array", "form", "text", "deep-array", "deep-object"],
)
async def test_bad_bodies(client, admin, body, content_type, status, code):
    resp = await client.post(
        "/api/v1/projects", data=body, headers={**admin, "Content-Type": content_type}
    )
    assert resp.status == status, await resp.text()
    assert_error(await resp.json(), code)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": ["a"]}, "name"),
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "ok", "settings": "x"}, "settings"),
        ({"name": "ok", "bogus": 1}, "bogus"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "x" * 101}, "name"),
    ],
)
async def test_validation_names_the_field(client, admin, body, field):
    resp = await client.post("/api/v1/projects", json=body, headers=admin)
    assert resp.status == 400
    data = await resp.json()
    assert_error(data, "validation_error")
    assert data["error"]["details"]["field"] == field


async def test_crash_is_a_500_without_traceback(aiohttp_client, config, caplog):
    @operation("boom", tag="test", public=True, responses={200: None})
    async def explode(request):
        raise RuntimeError("secret-detail-in-exception")

    app = create_app(config)
    app.router.add_get("/boom", explode)
    client = await aiohttp_client(app)
    resp = await client.get("/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "secret-detail" not in text and "Traceback" not in text
    assert_error(await resp.json(), "internal_error")
    assert "secret-detail-in-exception" in caplog.text  # the daemon log has it


async def test_head_is_not_routed(client):
    resp = await client.head("/api/v1/projects")
    assert resp.status == 405


async def test_request_log_has_no_secrets(client, caplog):
    caplog.set_level("INFO", logger="dployr.access")
    await client.get("/api/v1/projects?token=sekrit", headers={"Authorization": "Bearer sekrit"})
    lines = [r.getMessage() for r in caplog.records if r.name == "dployr.access"]
    assert lines and lines[-1].startswith("GET /api/v1/projects 401 ")
    assert "sekrit" not in caplog.text


def test_error_tree_codes():
    from dployr import errors

    for cls in errors.DployrError.__subclasses__():
        if cls is errors.ValidationError:
            body = cls("f", "is bad")
        elif cls is errors.ProxyError:
            body = cls("caddy", "loading config: unrecognized directive")
            assert body.body()["error"]["details"]["message"].endswith("directive")
        else:
            body = cls()
        assert body.body()["error"]["code"] == cls.code
    assert web.HTTPNotFound.status_code in errors.HTTP_STATUS_CODES


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": "\\ud800"}', "name"),
        (b'{"name": "ok \\uDFFF"}', "name"),
        (b'{"name": "\xed\xa0\x80"}', "name"),  # the same surrogate, as raw bytes
        (b'{"name": "ok", "settings": {"tags": ["a", "\\udc00"]}}', "settings.tags.1"),
        (b'{"name": "ok", "settings": {"k\\ud83d": 1}}', "settings.k\\ud83d"),
        (b'{"name": "ok", "settings": {"n": ' + b"9" * 5000 + b"}}", "settings.n"),
        (b'{"name": "ok", "settings": {"n": -' + b"1" * 4301 + b"}}", "settings.n"),
        (b'{"name": ' + b"7" * 5000 + b"}", "name"),
        (b'{"name": "ok", "settings": {"cpus": NaN}}', "settings.cpus"),
        (b'{"name": "ok", "settings": {"x": [-Infinity]}}', "settings.x.0"),
    ],
    ids=[
        "escape",
        "low-half",
        "raw-bytes",
        "in-list",
        "in-key",
        "huge-int",
        "huge-neg",
        "top",
        "nan",
        "infinity",
    ],
)
async def test_unstorable_json_is_a_400_naming_the_field(client, admin, raw, field):
    """Python's int() limit and lone surrogates (which SQLite cannot encode) are caught at the
    one JSON reading edge, for every endpoint: never a 500."""
    resp = await client.post(
        "/api/v1/projects", data=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert resp.status == 400, await resp.text()
    data = await resp.json()
    assert_error(data, "validation_error")
    assert data["error"]["details"]["field"] == field


@pytest.mark.parametrize("name", ["page", "per_page", "limit"])
async def test_a_page_number_with_thousands_of_digits_is_a_400_or_capped(client, admin, name):
    resp = await client.get(f"/api/v1/projects?{name}=" + "9" * 5000, headers=admin)
    if name == "page":  # far past the last page: an empty one
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["items"] == []
    else:  # capped like any per_page over 100
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["per_page"] == 100
    resp = await client.get(f"/api/v1/projects?{name}=" + "0" * 5000, headers=admin)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == name


async def test_surrogate_on_a_public_endpoint_is_a_400(client):
    resp = await client.post(
        "/api/v1/auth/register",
        data=b'{"name": "\\ud800", "email": "a@example.com", "password": "long enough"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["details"]["field"] == "name"


async def test_valid_pairs_and_big_but_legal_numbers_still_pass(client, admin):
    raw = b'{"name": "smile \\ud83d\\ude00", "settings": {"n": ' + b"9" * 4000 + b"}}"
    resp = await client.post(
        "/api/v1/projects", data=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["name"] == "smile \U0001f600"


@pytest.mark.parametrize("query", ["search=%ED%A0%80", "search=%F0%9F", "status=%ED%A0%80"])
async def test_undecodable_query_strings_are_not_500s(client, admin, query):
    for path in ("/api/v1/projects", "/api/v1/services", "/api/v1/users"):
        resp = await client.get(f"{path}?{query}", headers=admin)
        assert resp.status in (200, 400), (path, await resp.text())


async def test_undecodable_path_ids_are_404s(client, admin):
    for path in ("/api/v1/projects/%ED%A0%80", "/api/v1/services/%ED%A0%80/env/%ED%A0%80"):
        resp = await client.delete(path, headers=admin)
        assert resp.status == 404, (path, await resp.text())
