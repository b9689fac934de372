"""Health, readiness, info, and an OpenAPI document that matches the route table."""

import pytest

from dployr.app import create_app, deployer_ctx
from dployr.keys import DEPLOYER
from tests.conftest import make_config
from tests.docker.conftest import docker_engine  # noqa: F401  (a fixture: skips without one)


async def test_health_and_live(client):
    for path in ("/health", "/health/live"):
        resp = await client.get(path)
        body = await resp.json()
        assert resp.status == 200 and body["status"] == "ok" and body["uptime"] >= 0
        assert "X-RateLimit-Limit" not in resp.headers  # never rate-limited


@pytest.mark.usefixtures("docker_engine")
async def test_ready_with_defaults(client):
    """`auto` is ready when the engine answers: docker is the only target this version has."""
    resp = await client.get("/health/ready")
    assert resp.status == 200, await resp.text()
    checks = (await resp.json())["checks"]
    assert {k: checks[k] for k in ("database", "runtime", "proxy")} == {
        "database": "ok", "runtime": "ok", "proxy": "ok"
    }  # fmt: skip
    # The swarm target says whether it can run here; without swarm services it is no reason
    # to be unready (this engine may or may not be a swarm manager now).
    assert checks["swarm"] == "ok" or checks["swarm"].startswith("not available: "), checks


async def test_ready_names_what_failed(aiohttp_client, tmp_path):
    config = make_config(
        tmp_path,
        runtime={"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"},
        proxy={"backend": "caddy", "caddy_admin": "http://127.0.0.1:9"},
    )
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/health/ready")
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["database"] == "ok"
    assert "no docker engine" in error["details"]["runtime"]
    assert "caddy admin API" in error["details"]["proxy"]
    assert error["details"]["swarm"].startswith("not available: no docker engine")


async def test_info(client):
    body = await (await client.get("/api/v1/info")).json()
    # The available targets: process runs wherever the daemon does; docker when an engine
    # answers; swarm when that engine is a swarm manager; systemd is not PID 1 here.
    assert body["name"] == "dployr" and "process" in body["targets"]
    assert set(body["targets"]) <= {"docker", "process", "swarm"}
    assert "swarm" not in body["targets"] or "docker" in body["targets"]
    assert body["default_target"] in (*body["targets"], None)
    assert body["docs_url"] == "/api/v1/openapi.json"
    assert body["proxy"] in ("caddy", "nginx", "none")


async def test_templates_name_the_targets_of_each_runtime(client, admin):
    body = await (await client.get("/api/v1/templates", headers=admin)).json()
    targets = {t["id"]: t["targets"] for t in body["items"]}
    for runtime in ("nodejs", "python", "go", "rust", "static"):
        assert "process" in targets[runtime] and "docker" in targets[runtime]
    assert targets["image"] == targets["dockerfile"] == ["docker", "swarm"]


BODYLESS_ACTIONS = (
    "/logout", "/rollback", "/start", "/stop", "/restart", "/redeliver", "/ping", "/backups"
)  # fmt: skip


async def test_openapi_documents_exactly_the_routes(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = {(r.method, r.resource.canonical) for r in client.app.router.routes() if r.resource}
    assert documented == routed
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            if method in ("post", "put", "patch") and not path.endswith(BODYLESS_ACTIONS):
                assert "requestBody" in op, (method, path)
    must = {
        ("POST", "/api/v1/auth/register"),
        ("GET", "/api/v1/projects/{id}"),
        ("PATCH", "/api/v1/users/{id}"),
        ("DELETE", "/api/v1/tokens/{id}"),
    }
    assert must <= documented


async def test_info_and_ready_report_the_proxy_the_daemon_drives(client):
    """Backend `none` by the tests' config: its real state, not the config re-read."""
    body = await (await client.get("/api/v1/info")).json()
    assert (body["proxy"], body["proxy_https"]) == ("none", "off")
    assert "nothing serves them" in body["proxy_https_means"]

    class Nginx:  # the app's proxy instance is what is asked (nginx's own are tested with it)
        name = "nginx"

        async def apply(self, routes, upstreams):
            return None

        async def problem(self):
            return "nginx -t failed: unknown directive"

        def https(self):
            return "certificates"

    client.app[DEPLOYER].router.proxy = Nginx()
    body = await (await client.get("/api/v1/info")).json()
    assert (body["proxy"], body["proxy_https"]) == ("nginx", "certificates")
    assert "otherwise over plain HTTP" in body["proxy_https_means"]
    resp = await client.get("/health/ready")
    assert resp.status == 503
    details = (await resp.json())["error"]["details"]
    assert details["proxy"] == "nginx -t failed: unknown directive"


async def test_info_and_ready_before_the_deployer_is_set_up(aiohttp_client, tmp_path):
    app = create_app(make_config(tmp_path))
    app.cleanup_ctx.remove(deployer_ctx)  # as while the daemon starts: no proxy yet
    client = await aiohttp_client(app)
    body = await (await client.get("/api/v1/info")).json()
    assert (body["proxy"], body["proxy_https"]) == (None, None)
    resp = await client.get("/health/ready")
    assert resp.status == 503
    assert "not set up yet" in (await resp.json())["error"]["details"]["proxy"]
