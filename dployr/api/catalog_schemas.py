"""JSON Schemas of git credentials and the runtime catalog (SPEC §4)."""

from __future__ import annotations

from dployr.api.deploy_schemas import PORT
from dployr.api.schemas import TIME, Schema, line, obj, page_of, ref

_ID: Schema = {"type": "string"}
_OPT: Schema = {"type": ["string", "null"]}
# deploy_key and token: git sources; registry: image pushes of the swarm target (SPEC §15).
CREDENTIAL_TYPE: Schema = {"enum": ["deploy_key", "token", "registry"]}
# The fields of `data` each type takes (all required, nothing else).
CREDENTIAL_FIELDS = {
    "deploy_key": ("key",),
    "token": ("token",),
    "registry": ("username", "password"),
}
CREATE_CREDENTIAL = obj(
    ["type", "name", "data"],
    {
        "type": CREDENTIAL_TYPE,
        "name": line(100),
        "data": obj(
            [],
            {
                "key": {"type": "string", "minLength": 1, "maxLength": 16384},
                "token": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 4096,
                    "pattern": r"^[\x21-\x7e]+$",
                },
                "username": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": r"^[\x21-\x7e]+$",
                },
                "password": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 4096,
                    "pattern": r"^[^\x00-\x1f\x7f]+$",
                },
            },
        ),
    },
)

COMPONENTS: dict[str, Schema] = {
    "Credential": obj(
        ["id", "type", "name", "created_at"],
        {
            "id": {"type": "string", "pattern": "^crd_"},
            "owner_id": _ID,
            "type": CREDENTIAL_TYPE,
            "name": _ID,
            "created_at": TIME,
        },
    ),
    "Template": obj(
        [
            "id",
            "name",
            "versions",
            "default_version",
            "default_port",
            "build_cmd",
            "run_cmd",
            "image",
            "targets",
        ],
        {
            "id": _ID,
            "name": _ID,
            "versions": {"type": "array", "items": _ID},
            "default_version": _OPT,
            "default_port": PORT,
            "build_cmd": _OPT,
            "run_cmd": _OPT,
            "image": _OPT,
            "targets": {"type": "array", "items": _ID},
        },
    ),
    "TemplateList": obj(["items"], {"items": {"type": "array", "items": ref("Template")}}),
    "CredentialPage": page_of("Credential"),
    "CredentialType": CREDENTIAL_TYPE,
    "CreateCredential": CREATE_CREDENTIAL,
}
