"""JSON Schemas of managed databases, their links and backups (SPEC §14)."""

from __future__ import annotations

from dployr.api.deploy_schemas import ENV_KEY
from dployr.api.schemas import OPT_TIME, TIME, Schema, obj, page_of
from dployr.databases.engines import ENGINES

DATABASE_NAME = "^[a-z0-9][a-z0-9-]{0,62}$"
VERSION = "^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
STATUSES = ["creating", "running", "stopped", "failed", "restoring"]
_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 64}
ENGINE: Schema = {"enum": list(ENGINES)}
STATUS: Schema = {"enum": STATUSES}
BACKUP_STATUS: Schema = {"enum": ["running", "succeeded", "failed"]}
BACKUP_TRIGGER: Schema = {"enum": ["api", "schedule"]}

CREATE_DATABASE = obj(
    ["name", "engine"],
    {
        "name": {"type": "string", "pattern": DATABASE_NAME},
        "engine": ENGINE,
        "version": {"type": "string", "pattern": VERSION},
        "project_id": {"type": ["string", "null"], "maxLength": 64},
        "backup_schedule": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": r"^[\x20-\x7e]+$",
            "description": 'a cron expression, UTC ("0 3 * * *": daily at 03:00)',
        },
        "keep_backups": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
)
CREATE_LINK = obj(
    ["service_id"],
    {
        "service_id": _ID,
        "env": {"type": "string", "pattern": ENV_KEY, "description": "DATABASE_URL when absent"},
    },
)
RESTORE = obj(["backup_id"], {"backup_id": _ID})

BACKUP_FIELDS = [
    "id", "database_id", "status", "trigger", "size_bytes", "created_at", "finished_at", "error"
]  # fmt: skip
_DATABASE_PROPS: dict[str, Schema] = {
    "id": {"type": "string", "pattern": "^db_"},
    "owner_id": {"type": "string"},
    "project_id": {"type": "string"},
    "name": {"type": "string"},
    "engine": ENGINE,
    "version": {"type": "string"},
    "status": STATUS,
    "error": {"type": ["string", "null"]},
    "host_port": {"type": "integer"},
    "username": {"type": "string"},
    "database": {"type": "string"},
    "connection_url": {"type": "string", "description": "from this host; password masked"},
    "volume": {"type": "string"},
    "backup_schedule": {"type": "string"},
    "keep_backups": {"type": "integer"},
    "linked_service_ids": {"type": "array", "items": {"type": "string"}},
    "created_at": TIME,
    "updated_at": TIME,
}
_DATABASE_REQUIRED = list(_DATABASE_PROPS)

COMPONENTS: dict[str, Schema] = {
    "Database": obj(_DATABASE_REQUIRED, _DATABASE_PROPS),
    # The create response is the only place the password ever appears.
    "DatabaseWithPassword": obj(
        [*_DATABASE_REQUIRED, "password"], {**_DATABASE_PROPS, "password": {"type": "string"}}
    ),
    "DatabasePage": page_of("Database"),
    "DatabaseLink": obj(
        ["database_id", "service_id", "env", "created_at"],
        {
            "database_id": {"type": "string", "pattern": "^db_"},
            "service_id": {"type": "string", "pattern": "^svc_"},
            "env": {"type": "string"},
            "created_at": TIME,
        },
    ),
    "Backup": obj(
        BACKUP_FIELDS,
        {
            "id": {"type": "string", "pattern": "^bak_"},
            "database_id": {"type": "string", "pattern": "^db_"},
            "status": BACKUP_STATUS,
            "trigger": BACKUP_TRIGGER,
            "size_bytes": {"type": ["integer", "null"]},
            "created_at": TIME,
            "finished_at": OPT_TIME,
            "error": {"type": ["string", "null"]},
        },
    ),
    "BackupPage": page_of("Backup"),
    "DatabaseEngine": ENGINE,
    "DatabaseStatus": STATUS,
    "BackupStatus": BACKUP_STATUS,
    "BackupTrigger": BACKUP_TRIGGER,
    "CreateDatabase": CREATE_DATABASE,
    "CreateDatabaseLink": CREATE_LINK,
    "RestoreBackup": RESTORE,
}
