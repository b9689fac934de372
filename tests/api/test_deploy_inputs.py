"""What POST/PUT /deployments refuses before anything runs: local sources that could read the
daemon, other owners' release images, image references outside Docker's grammar, targets this
version does not have. The engine is never reached: its socket is a path where nothing listens."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register, user_headers
from tests.docker.conftest import make_repo

Client = TestClient  # type: ignore[type-arg]


def _config(tmp_path: Path, **runtime: Any) -> Any:
    return make_config(
        tmp_path / "data",
        runtime={
            "default_target": "docker",
            "docker_host": f"unix://{tmp_path}/nothing-listens.sock",
            "allow_local_sources": True,
            **runtime,
        },
    )


@pytest.fixture
async def dep(aiohttp_client: Any, tmp_path: Path) -> Client:
    client: Client = await aiohttp_client(create_app(_config(tmp_path)))
    return client


async def _admin(client: Client) -> dict[str, str]:
    await register(client)
    return bearer((await login(client))["access_token"])


async def _post(client: Client, headers: dict[str, str], **body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=headers)
    return resp.status, await resp.json()


def _local(path: Path | str, name: str = "web") -> dict[str, Any]:
    return {"name": name, "source": "local", "path": str(path), "runtime": "static"}


async def _wait_finished(client: Client, headers: dict[str, str], deployment_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=headers)
        body = await resp.json()
        if body["status"] in ("failed", "cancelled", "live"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{deployment_id} did not finish")


# -- item 4: local sources ---------------------------------------------------------------------


async def test_local_source_is_for_admins_only_even_when_allowed(dep: Client, tmp_path: Path):
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    app = tmp_path / "app"
    await asyncio.to_thread(app.mkdir)
    status, body = await _post(dep, bob, **_local(app))
    assert status == 403, body
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["details"]["field"] == "source"


def _make_tree(tmp_path: Path) -> dict[str, Path]:
    """Real directories and symlinks: the data dir, an app beside it, links into the data dir."""
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True, exist_ok=True)
    app = tmp_path / "work" / "app"
    app.mkdir(parents=True)
    (tmp_path / "alias").symlink_to(data)  # a directory link to the data dir
    (tmp_path / "work" / "to-secrets").symlink_to(data / "secrets")
    (tmp_path / "work" / "to-root").symlink_to("/")
    (tmp_path / "work" / "to-app").symlink_to(app)
    return {"data": data, "app": app}


@pytest.mark.parametrize(
    ("relative", "why"),
    [
        ("data", "inside"),
        ("data/secrets", "inside"),
        ("alias", "inside"),
        ("alias/secrets", "inside"),
        ("work/to-secrets", "inside"),
        ("data/not-yet-made", "inside"),
        ("", "contains"),  # tmp_path holds the data dir: a build would read it
        ("work/to-root", "/ itself"),
    ],
)
async def test_local_paths_that_reach_the_daemon_are_refused(
    dep: Client, tmp_path: Path, relative: str, why: str
):
    admin = await _admin(dep)  # the first start made data/secrets
    await asyncio.to_thread(_make_tree, tmp_path)
    path = str(tmp_path / relative) if relative else str(tmp_path)
    status, body = await _post(dep, admin, **_local(path))
    assert status == 400, body
    assert body["error"]["details"]["field"] == "path"
    assert why in body["error"]["details"]["reason"]
    listing = await (await dep.get("/api/v1/deployments", headers=admin)).json()
    assert listing["total"] == 0


async def test_a_symlink_loop_is_a_400(dep: Client, tmp_path: Path):
    admin = await _admin(dep)

    def loop() -> None:
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")

    await asyncio.to_thread(loop)
    status, body = await _post(dep, admin, **_local(tmp_path / "a" / "app"))
    assert status == 400, body
    assert body["error"]["details"]["field"] == "path"


async def test_root_and_the_config_directory_are_refused(aiohttp_client: Any, tmp_path: Path):
    etc = tmp_path / "etc"
    await asyncio.to_thread(etc.mkdir)
    config = dataclasses.replace(_config(tmp_path), config_file=str(etc / "config.toml"))
    client: Client = await aiohttp_client(create_app(config))
    admin = await _admin(client)
    for path, field_reason in (("/", "/ itself"), (str(etc), "config"), (f"{etc}/x", "config")):
        status, body = await _post(client, admin, **_local(path))
        assert status == 400, (path, body)
        assert body["error"]["details"]["field"] == "path"
        assert field_reason in body["error"]["details"]["reason"], body


async def test_a_symlink_to_an_ordinary_directory_is_accepted(dep: Client, tmp_path: Path):
    admin = await _admin(dep)
    await asyncio.to_thread(_make_tree, tmp_path)
    status, body = await _post(dep, admin, **_local(tmp_path / "work" / "to-app"))
    assert status == 202, body
    assert body["path"] == str(tmp_path / "work" / "to-app")
    await _wait_finished(dep, admin, body["id"])


async def test_a_demoted_admin_cannot_change_or_roll_back_a_local_release(
    dep: Client, tmp_path: Path
):
    """PUT and rollback are local sources too: only an admin may make one run again."""
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    bob_id = (await (await dep.get("/api/v1/users/me", headers=bob)).json())["id"]
    await dep.patch(f"/api/v1/users/{bob_id}", json={"role": "admin"}, headers=admin)
    app = tmp_path / "app"
    await asyncio.to_thread(app.mkdir)
    status, created = await _post(dep, bob, **_local(app))
    assert status == 202, created
    await _wait_finished(dep, bob, created["id"])
    await dep.patch(f"/api/v1/users/{bob_id}", json={"role": "user"}, headers=admin)
    for change in ({"run_cmd": "true"}, {"path": str(app)}):
        resp = await dep.put(f"/api/v1/deployments/{created['id']}", json=change, headers=bob)
        body = await resp.json()
        assert resp.status == 403, body
        assert body["error"]["details"]["field"] == "source"
    resp = await dep.post(f"/api/v1/deployments/{created['id']}/rollback", headers=bob)
    assert resp.status == 403, await resp.text()
    # An admin's PUT of a path inside the data dir is refused like a POST.
    resp = await dep.put(
        f"/api/v1/deployments/{created['id']}",
        json={"path": str(tmp_path / "data")},
        headers=admin,
    )
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "path"


# -- item 5 and item 11: image references ------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "alpine@sha256:zz",
        "alpine@sha256:" + "a" * 63,
        "alpine@sha256:" + "A" * 64,
        "alpine@md5:" + "a" * 32,
        "alpine@",
        "alpine:",
        "alpine:" + "t" * 129,
        "a//b",
        "a__-b",
        "-alpine",
        "alpine.",
        "my_.app",
        "sha256:" + "a" * 64,  # an image ID, however it is written
        "a" * 64,
        "sha256:abc",  # the engine matches ID prefixes
        "abc123",
        "localhost:99999999999x/app",
    ],
)
async def test_image_references_follow_dockers_grammar(dep: Client, image: str):
    admin = await _admin(dep)
    status, body = await _post(dep, admin, name="img", source="image", image=image)
    assert status == 400, (image, body)
    assert body["error"]["details"]["field"] == "image", body


@pytest.mark.parametrize(
    "image",
    [
        "alpine",
        "alpine:3.19",
        "library/alpine:latest",
        "abc123:latest",
        "localhost:5000/team/app_x:v1.2-rc",
        "registry.example.com/a.b/c__d/e-f:1",
        "alpine@sha256:" + "0123456789abcdef" * 4,
        "alpine:3@sha512:" + "f" * 128,
    ],
)
async def test_valid_image_references_are_accepted(dep: Client, image: str):
    admin = await _admin(dep)
    status, body = await _post(dep, admin, name="img", source="image", image=image)
    assert status == 202, (image, body)
    await _wait_finished(dep, admin, body["id"])


async def test_another_owners_release_image_cannot_be_deployed(dep: Client):
    """`dployr/<service>:<n>` is a release this agent built: only its owner's services may run
    it, however the reference spells Docker Hub's default registry."""
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    status, mine = await _post(dep, admin, name="web", source="image", image="alpine:3")
    assert status == 202, mine
    await _wait_finished(dep, admin, mine["id"])
    release = f"dployr/{mine['service_id']}:1"
    for image in (
        release,
        f"docker.io/{release}",
        f"index.docker.io/{release}",
        f"dployr/{mine['service_id']}@sha256:" + "a" * 64,
        "dployr/svc_doesnotexist:1",
    ):
        status, body = await _post(dep, bob, name="copy", source="image", image=image)
        assert status == 400, (image, body)
        assert body["error"]["details"]["field"] == "image"
    # Through PUT of bob's own deployment too.
    status, own = await _post(dep, bob, name="bobs", source="image", image="alpine:3")
    assert status == 202
    await _wait_finished(dep, bob, own["id"])
    resp = await dep.put(f"/api/v1/deployments/{own['id']}", json={"image": release}, headers=bob)
    assert resp.status == 400, await resp.text()
    # The owner may run their own release under another of their services.
    status, body = await _post(dep, admin, name="worker", source="image", image=release)
    assert status == 202, body
    await _wait_finished(dep, admin, body["id"])
    # A local image that is not a dployr release is the operator's to share.
    status, body = await _post(dep, bob, name="other", source="image", image="dployrx/app:1")
    assert status == 202, body
    await _wait_finished(dep, bob, body["id"])


# -- item 11: targets ------------------------------------------------------------------------


async def test_a_process_default_runs_no_image_and_docker_is_the_way_round(
    aiohttp_client: Any, tmp_path: Path
):
    """Every target is built now: a default that cannot run a runtime says so (a 400 naming
    `runtime`), and naming the docker target in the request is the way round it."""
    client: Client = await aiohttp_client(create_app(_config(tmp_path, default_target="process")))
    admin = await _admin(client)
    status, body = await _post(client, admin, name="img", source="image", image="alpine:3")
    assert status == 400 and body["error"]["details"]["field"] == "runtime", body
    assert "the process target does not run image" in body["error"]["message"]
    status, body = await _post(
        client, admin, name="img", source="image", image="alpine:3", target="docker"
    )
    assert status == 202 and body["target"] == "docker", body
    await _wait_finished(client, admin, body["id"])


async def test_the_systemd_target_says_why_it_cannot_run_here(aiohttp_client: Any, tmp_path: Path):
    # systemd is not PID 1 on the test host (in the box it is: tests/box/test_systemd_target.py).
    client: Client = await aiohttp_client(create_app(_config(tmp_path, default_target="systemd")))
    admin = await _admin(client)
    status, body = await _post(client, admin, name="img", source="image", image="alpine:3")
    assert status == 400 and body["error"]["details"]["field"] == "runtime", body
    assert "the systemd target does not run image" in body["error"]["message"]
    status, body = await _post(
        client, admin, name="web", source="remote", remote="https://example.com/a/b.git",
        runtime="python",
    )  # fmt: skip
    assert status == 400 and body["error"]["details"]["field"] == "target", body
    assert "systemd is not PID 1" in body["error"]["message"]
    resp = await client.get("/api/v1/info")
    assert "systemd" not in (await resp.json())["targets"]


async def test_a_service_keeps_its_target_when_a_deployment_names_none(
    aiohttp_client: Any, tmp_path: Path
):
    # The default target is not docker (nor, here, one that can run anything): a service that
    # runs on docker stays there when a later deployment of it names no target.
    client: Client = await aiohttp_client(create_app(_config(tmp_path, default_target="systemd")))
    admin = await _admin(client)
    status, first = await _post(
        client, admin, name="img", source="image", image="alpine:3", target="docker"
    )
    assert status == 202, first
    await _wait_finished(client, admin, first["id"])
    status, again = await _post(client, admin, name="img", source="image", image="alpine:3")
    assert status == 202, again
    assert again["target"] == "docker"
    await _wait_finished(client, admin, again["id"])


async def test_auto_without_an_engine_picks_the_process_target(aiohttp_client: Any, tmp_path: Path):
    """No engine and no systemd: `auto` is the process target, which runs no image (a 400 that
    names what it runs) and takes a git source."""
    client: Client = await aiohttp_client(create_app(_config(tmp_path, default_target="auto")))
    admin = await _admin(client)
    status, body = await _post(client, admin, name="img", source="image", image="alpine:3")
    assert status == 400, body
    assert body["error"]["details"] == {
        "field": "runtime",
        "reason": "the process target does not run image "
        "(it runs: nodejs, python, go, rust, static)",
    }
    info = await (await client.get("/api/v1/info")).json()
    assert info["targets"] == ["process"] and info["default_target"] == "process"
    ready = await client.get("/health/ready")
    assert ready.status == 200, await ready.text()
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", {"app.py": "print(1)\n"})
    status, body = await _post(
        client, admin, name="py", source="local", path=str(repo), runtime="python"
    )
    assert status == 202 and body["target"] == "process", body
    await _wait_finished(client, admin, body["id"])


async def test_a_missing_interpreter_version_names_what_is_installed(dep: Client):
    admin = await _admin(dep)
    status, body = await _post(
        dep, admin, name="py", source="local", path="/srv/app", runtime="python",
        version="2.6", target="process",
    )  # fmt: skip
    assert status == 400, body
    reason = body["error"]["details"]["reason"]
    assert body["error"]["details"]["field"] == "version", body
    assert reason.startswith("python 2.6 is not installed on this host (installed: 3."), reason


async def test_ready_with_a_systemd_default_says_why(aiohttp_client: Any, tmp_path: Path):
    client: Client = await aiohttp_client(create_app(_config(tmp_path, default_target="systemd")))
    resp = await client.get("/health/ready")
    assert resp.status == 503
    assert "systemd is not PID 1" in (await resp.json())["error"]["details"]["runtime"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "web\n"}, "name"),
        ({"name": "web", "env": {"KEY\n": "v"}}, "env"),
        ({"name": "web", "image": "busybox:stable\n"}, "image"),
        ({"name": "web", "image": "busybox@sha256:" + "a" * 64 + "\n"}, "image"),
        ({"name": "web", "image": "busybox:stable", "domain": "web.example.com\n"}, "domain"),
    ],
)
async def test_a_final_newline_never_passes_a_pattern(dep: Client, body: dict[str, Any], field):
    """`$` in Python (and in a JSON Schema pattern read by Python) also matches before a final
    newline: every check reads it as the end of the string."""
    admin = await _admin(dep)
    request = {"source": "image", "runtime": "image", "image": "busybox:stable", **body}
    status, answer = await _post(dep, admin, **request)
    assert status == 400, (body, answer)
    assert answer["error"]["details"]["field"].startswith(field), answer


async def test_env_keys_with_a_final_newline_are_refused_on_the_env_endpoint(dep: Client):
    admin = await _admin(dep)
    status, created = await _post(
        dep, admin, name="web", source="image", runtime="image", image="busybox:stable"
    )
    assert status == 202, created
    resp = await dep.post(
        f"/api/v1/services/{created['service_id']}/env",
        json={"key": "KEY\n", "value": "v"},
        headers=admin,
    )
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["details"]["field"] == "key"


@pytest.mark.skipif(os.geteuid() != 0, reason="the process target is for admins when root")
async def test_a_root_daemon_keeps_the_process_target_for_admins(dep: Client, tmp_path: Path):
    # Its builds and apps would run as root: for an ordinary user that is root on the host.
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    body = {"name": "web", "source": "remote", "remote": "https://example.com/r.git",
            "runtime": "python", "target": "process", "build_cmd": "id > /tmp/pwned"}  # fmt: skip
    status, refused = await _post(dep, bob, **body)
    assert status == 403, refused
    assert refused["error"]["details"]["field"] == "target"
    assert "docker or systemd" in refused["error"]["message"]
