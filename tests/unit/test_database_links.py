"""The URL a link writes, for each target (pure logic: no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dployr.crypto import SecretBox
from dployr.databases.links import url_for
from dployr.databases.manager import Databases
from dployr.store.databases import ManagedDatabase
from tests.conftest import make_config


def record(box: SecretBox, engine: str, **changes: Any) -> ManagedDatabase:
    fields: dict[str, Any] = {
        "id": "db_1", "owner_id": "usr_1", "project_id": "prj_1", "name": "main-db",
        "engine": engine, "version": "15", "image": f"{engine}:15", "status": "running",
        "error": None, "host_port": 40123, "username": "main_db", "database": "main_db",
        "password_enc": box.encrypt("s3cret-_x"), "volume": "dployr-db_1", "container_id": None,
        "backup_schedule": "0 3 * * *", "keep_backups": 7, "created_at": "", "updated_at": "",
    }  # fmt: skip
    fields.update(changes)
    return ManagedDatabase(**fields)


def test_each_target_gets_the_address_it_reaches(tmp_path: Path) -> None:
    box = SecretBox(b"k" * 32)
    databases = Databases(None, make_config(tmp_path), box, None, None)  # type: ignore[arg-type]
    pg = record(box, "postgres")
    assert url_for(databases, pg, "docker") == "postgresql://main_db:s3cret-_x@main-db:5432/main_db"
    for target in ("systemd", "process"):
        assert url_for(databases, pg, target) == (
            "postgresql://main_db:s3cret-_x@127.0.0.1:40123/main_db"
        )
    redis = record(box, "redis", username="default", database="0")
    assert url_for(databases, redis, "docker") == "redis://:s3cret-_x@main-db:6379/0"
    assert url_for(databases, redis, "process") == "redis://:s3cret-_x@127.0.0.1:40123/0"
    maria = record(box, "mariadb")
    assert url_for(databases, maria, "docker") == "mysql://main_db:s3cret-_x@main-db:3306/main_db"
    assert databases.masked_url(maria) == "mysql://main_db:********@127.0.0.1:40123/main_db"
