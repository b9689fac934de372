"""Moving a host: a backup of a running daemon, a fresh data dir on an engine that has none of
the old host's containers or images, a restore, and a secret env value that still decrypts and
reaches the app."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import pytest

from tests.docker.conftest import agent_containers, cleanup_agent, make_repo
from tests.integration.conftest import Daemon, deploy_live, page, run_dployr

pytestmark = pytest.mark.integration

# The app answers with the variable it was given: what the browser sees is what the env held.
SERVE = 'mkdir -p /www && echo "key=$API_KEY" > /www/index.html && exec httpd -f -p "$PORT" -h /www'


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_restored_host_decrypts_the_secret_and_the_app_gets_it(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    old = deploy_daemon
    old.start()
    token = old.admin_token()
    secret = "s3cr3t-" + secrets.token_hex(8)
    repo = make_repo(tmp_path / "app", {"README": "served from the env\n"})
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static",
            "run_cmd": SERVE, "health_check": {"path": "/", "timeout": 20}}  # fmt: skip
    live = deploy_live(old, token, {**body, "env": {"API_KEY": {"value": secret, "secret": True}}})
    assert page(live["host_port"]) == f"key={secret}\n"
    status, service = old.request("GET", f"/api/v1/services/{live['service_id']}", token=token)
    assert status == 200, service
    hook_secret = service["hook_secret"]  # encrypted at rest, shown to its owner

    # The backup is taken while the daemon runs, into a directory: one file appears there.
    backups = tmp_path / "backups"
    backups.mkdir()
    made = run_dployr("backup", "--config", str(old.config), str(backups), env=old.env)
    assert made.returncode == 0, made.stderr
    [archive] = list(backups.iterdir())
    assert archive.name.startswith("dployr-backup-") and archive.name.endswith(".tar.gz")
    assert str(archive) in made.stdout
    assert mode(archive) == 0o600

    # The old host dies, and its engine's containers and images with it.
    assert old.stop(signal.SIGTERM) == 0
    old_keys = {p.name: p.read_bytes() for p in (old.data_dir / "secrets").iterdir()}
    old_agent = (old.data_dir / "agent_id").read_text()
    cleanup_agent(old.data_dir)
    assert agent_containers(old.data_dir) == []

    new_data = tmp_path / "new-host" / "data"
    new_env = {**old.env, "DPLOYR_SERVER_DATA_DIR": str(new_data)}
    done = run_dployr("restore", "--config", str(old.config), str(archive), env=new_env)
    assert done.returncode == 0, done.stderr
    assert mode(new_data) == 0o700 and mode(new_data / "secrets") == 0o700
    restored_keys = {p.name: p.read_bytes() for p in (new_data / "secrets").iterdir()}
    assert restored_keys == old_keys and {"secrets.key", "jwt.key"} <= set(restored_keys)
    assert all(mode(new_data / "secrets" / name) == 0o600 for name in restored_keys)
    assert (new_data / "agent_id").read_text() == old_agent  # a move keeps the host's identity

    new = Daemon(new_data, old.config, new_env)
    try:
        new.start()
        # The owner's access token from the old host still works (jwt.key came along) and the
        # hook secret decrypts (secrets.key came along).
        status, service = new.request("GET", f"/api/v1/services/{live['service_id']}", token=token)
        assert status == 200, service
        assert service["hook_secret"] == hook_secret
        status, env = new.request("GET", f"/api/v1/services/{live['service_id']}/env", token=token)
        assert status == 200, env
        assert secret not in str(env)  # still a secret: masked in every answer
        # This engine has no image of the service: its next deployment (with no env in the
        # request) builds it, and the app answers with the value the restored host decrypted.
        again = deploy_live(new, token, body)
        assert again["service_id"] == live["service_id"]
        assert page(again["host_port"]) == f"key={secret}\n"
    finally:
        new.kill()
        cleanup_agent(new_data)


def test_a_data_dir_whose_key_is_lost_still_starts_and_says_why(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    """A database restored without its secrets/ (an archive from before the keys came along, a
    key file lost): the daemon makes a new key and starts anyway; a live service whose env does
    not decrypt is not brought back, and the log says why (it used to crash the start: a loop
    under systemd, no API to fix anything with)."""
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    repo = make_repo(tmp_path / "app", {"README": "served from the env\n"})
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static",
            "run_cmd": SERVE, "env": {"API_KEY": {"value": "lost", "secret": True}},
            "health_check": {"path": "/", "timeout": 20}}  # fmt: skip
    live = deploy_live(daemon, token, body)
    assert daemon.stop(signal.SIGTERM) == 0
    cleanup_agent(daemon.data_dir)  # a new engine: the instance must be started again
    (daemon.data_dir / "secrets" / "secrets.key").unlink()

    daemon.start()
    status, ready = daemon.request("GET", "/health/ready")
    assert status == 200, ready
    assert daemon.log is not None
    said = daemon.log.read_text()
    assert "could not bring web back" in said and "does not decrypt" in said, said
    # The old token still works (jwt.key is there); what needs the lost key answers a 503 that
    # says what to restore, not a 500.
    status, service = daemon.request("GET", f"/api/v1/services/{live['service_id']}", token=token)
    assert status == 503, service
    assert service["error"]["code"] == "unavailable"
    assert "restore secrets/" in service["error"]["message"], service
