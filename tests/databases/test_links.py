"""Links: an app deployed through the API, linked to each engine, writes on each request and
reads its data back after a redeploy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dployr.keys import DATABASES, DB, DEPLOYER
from dployr.store import databases as store
from dployr.store.services import read_env
from tests.conftest import user_headers
from tests.databases.conftest import Client, running_database
from tests.docker.conftest import fetch_text, make_repo, wait_done

# Each request to /cgi-bin/hit writes a row (a key) with the engine's own client, reading
# $DATABASE_URL, and answers how many there are.
HIT = {
    "postgres": 'PGOPTIONS="-c client_min_messages=warning" psql "$DATABASE_URL" -qtA'
    ' -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS hits'
    ' (n serial); INSERT INTO hits DEFAULT VALUES;" -c "SELECT count(*) FROM hits" 2>&1',
    # redis-cli 7.0 -u sends an empty user name for redis://:pass@…: the URL is split here.
    "redis": "u=${DATABASE_URL#redis://:}; rest=${u#*@}; hp=${rest%%/*}\n"
    'REDISCLI_AUTH=${u%%@*} redis-cli -h "${hp%%:*}" -p "${hp#*:}" INCR hits 2>&1',
    "mariadb": "u=${DATABASE_URL#mysql://}; cred=${u%%@*}; rest=${u#*@}; hp=${rest%%/*}\n"
    'MYSQL_PWD=${cred#*:} mariadb -h "${hp%%:*}" -P "${hp#*:}" -u "${cred%%:*}" "${rest#*/}"'
    ' -N -e "CREATE TABLE IF NOT EXISTS hits (n INT AUTO_INCREMENT PRIMARY KEY);'
    ' INSERT INTO hits VALUES (); SELECT COUNT(*) FROM hits;" 2>&1',
}
IMAGE = {"postgres": "postgres:15", "redis": "redis:7", "mariadb": "mariadb:10.11"}


def app_files(engine: str, image: str) -> dict[str, str]:
    return {
        "Dockerfile": (
            f"FROM {image}\n"
            "COPY --from=busybox:stable /bin/busybox /bin/busybox\n"
            "COPY www /www\n"
            "RUN chmod 755 /www/cgi-bin/hit\n"
            "ENTRYPOINT []\n"
            'CMD ["/bin/busybox", "sh", "-c",'
            ' "exec /bin/busybox httpd -f -p \\"$PORT\\" -h /www"]\n'
        ),
        "www/index.html": "up\n",
        "www/cgi-bin/hit": (f"#!/bin/sh\necho 'Content-Type: text/plain'\necho\n{HIT[engine]}\n"),
    }


def app_body(repo: Path, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": "local",
        "path": str(repo),
        "branch": "main",
        "runtime": "dockerfile",
        "target": "docker",
        "port": 8080,
        "health_check": {"path": "/", "timeout": 60},
    }


def busybox_app(name: str) -> dict[str, Any]:
    """A small app from busybox:stable (no build): for tests that need a service, not its data."""
    serve = 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p "$PORT" -h /www'
    return {"name": name, "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": serve, "port": 8080, "target": "docker"}  # fmt: skip


async def deploy(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=headers)
    assert resp.status == 202, await resp.text()
    live = await wait_done(client, headers, (await resp.json())["id"], limit=600)
    assert live["status"] == "live", live.get("error")
    service = await client.get(f"/api/v1/services/{live['service_id']}", headers=headers)
    return dict(await service.json())


async def hit(client: Client, headers: dict[str, str], service_id: str) -> str:
    service = await (await client.get(f"/api/v1/services/{service_id}", headers=headers)).json()
    status, text = await fetch_text(service["host_port"], "/cgi-bin/hit")
    assert status == 200, text
    return text.strip()


@pytest.mark.parametrize("engine", ["postgres", "redis", "mariadb"])
async def test_a_linked_app_writes_and_reads_its_data_back_after_a_redeploy(
    dbclient: Client, auth: dict[str, str], tmp_path: Path, engine: str
) -> None:
    database, password = await running_database(dbclient, auth, name=f"{engine}-db", engine=engine)
    image = dbclient.app[DATABASES].image_of(engine, database["version"])  # type: ignore[index]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", app_files(engine, image))
    service = await deploy(dbclient, auth, app_body(repo, "counter"))
    resp = await dbclient.post(
        f"/api/v1/databases/{database['id']}/links?apply=true",
        json={"service_id": service["id"]},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["env"] == "DATABASE_URL"
    # The var is secret: masked in the API, the URL of the database's alias inside.
    env = await (await dbclient.get(f"/api/v1/services/{service['id']}/env", headers=auth)).json()
    assert [(v["key"], v["value"], v["secret"]) for v in env["env"]] == [
        ("DATABASE_URL", "********", True)
    ]
    box = dbclient.app[DEPLOYER].box  # type: ignore[index]
    plain = await read_env(dbclient.app[DB], service["id"], box)  # type: ignore[arg-type]
    port = {"postgres": 5432, "redis": 6379, "mariadb": 3306}[engine]
    assert f"{password}@{database['name']}:{port}" in plain[0].value
    assert await hit(dbclient, auth, service["id"]) == "1"
    assert await hit(dbclient, auth, service["id"]) == "2"
    await deploy(dbclient, auth, app_body(repo, "counter"))  # a new release, a new container
    assert await hit(dbclient, auth, service["id"]) == "3"
    found = await (await dbclient.get(f"/api/v1/databases/{database['id']}", headers=auth)).json()
    assert found["linked_service_ids"] == [service["id"]]
    # Unlink: the var goes (the running release keeps it until it restarts).
    resp = await dbclient.delete(
        f"/api/v1/databases/{database['id']}/links/{service['id']}", headers=auth
    )
    assert resp.status == 204, await resp.text()
    env = await (await dbclient.get(f"/api/v1/services/{service['id']}/env", headers=auth)).json()
    assert env["env"] == []


async def test_link_refusals_and_delete_while_linked(
    dbclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    database, _ = await running_database(dbclient, auth, name="shared", engine="redis")
    mine = await deploy(dbclient, auth, busybox_app("mine"))
    bob = await user_headers(dbclient, auth, "bob@example.com")
    theirs = await deploy(dbclient, bob, busybox_app("theirs"))
    db_path = f"/api/v1/databases/{database['id']}"
    for body, field in [
        ({"service_id": theirs["id"]}, "service_id"),  # another owner's service
        ({"service_id": "svc_nope"}, "service_id"),
        ({"service_id": mine["id"], "env": "1BAD"}, "env"),
        ({"service_id": mine["id"], "env": "A-B"}, "env"),
        ({}, "service_id"),
    ]:
        resp = await dbclient.post(f"{db_path}/links", json=body, headers=auth)
        assert resp.status == 400, (body, await resp.text())
        assert (await resp.json())["error"]["details"]["field"] == field
    # Bob cannot link my database to his service either: he does not see it.
    resp = await dbclient.post(f"{db_path}/links", json={"service_id": theirs["id"]}, headers=bob)
    assert resp.status == 404
    for service in (mine, theirs):
        headers = auth if service is mine else bob
        env = await (
            await dbclient.get(f"/api/v1/services/{service['id']}/env", headers=headers)
        ).json()
        assert env["env"] == []
    assert await store.links_of(dbclient.app[DB], database["id"]) == []  # type: ignore[arg-type]

    resp = await dbclient.post(
        f"{db_path}/links", json={"service_id": mine["id"], "env": "REDIS_URL"}, headers=auth
    )
    assert resp.status == 201, await resp.text()
    again = await dbclient.post(
        f"{db_path}/links", json={"service_id": mine["id"], "env": "CACHE_URL"}, headers=auth
    )
    assert again.status == 200, await again.text()  # the link changed its var
    env = await (await dbclient.get(f"/api/v1/services/{mine['id']}/env", headers=auth)).json()
    assert [v["key"] for v in env["env"]] == ["CACHE_URL"]
    resp = await dbclient.delete(db_path, headers=auth)
    assert resp.status == 409, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "conflict" and error["details"]["linked_service_ids"] == [mine["id"]]
    assert (await dbclient.get(db_path, headers=auth)).status == 200
    resp = await dbclient.delete(f"{db_path}?force=true", headers=auth)
    assert resp.status == 204, await resp.text()
    env = await (await dbclient.get(f"/api/v1/services/{mine['id']}/env", headers=auth)).json()
    assert env["env"] == []


async def test_a_deleted_service_goes_from_the_links(
    dbclient: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    database, _ = await running_database(dbclient, auth, name="cache", engine="redis")
    service = await deploy(dbclient, auth, busybox_app("gone"))
    resp = await dbclient.post(
        f"/api/v1/databases/{database['id']}/links",
        json={"service_id": service["id"]},
        headers=auth,
    )
    assert resp.status == 201
    resp = await dbclient.delete(f"/api/v1/services/{service['id']}", headers=auth)
    assert resp.status == 204, await resp.text()
    found = await (await dbclient.get(f"/api/v1/databases/{database['id']}", headers=auth)).json()
    assert found["linked_service_ids"] == []
    resp = await dbclient.delete(f"/api/v1/databases/{database['id']}", headers=auth)
    assert resp.status == 204, await resp.text()
