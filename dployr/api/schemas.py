"""JSON Schemas: request bodies (validated at the edge) and responses (documented in OpenAPI).

A schema listed in a module's COMPONENTS is named: the OpenAPI document lists it once under
components/schemas and refers to it with $ref wherever the same dict is used (openapi.py), while
request validation keeps using the dicts themselves.
"""

from __future__ import annotations

from typing import Any

from dployr.runtime.protocol import TARGET_NAMES

Schema = dict[str, Any]

TEXT_LINE = r"^[^\x00-\x1f\x7f]+$"  # one line of printable text
TIME: Schema = {"type": "string", "format": "date-time"}
OPT_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def page_of(item: str) -> Schema:
    return obj(
        ["items", "page", "per_page", "total", "total_pages"],
        {
            "items": {"type": "array", "items": ref(item)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
            "total_pages": {"type": "integer", "minimum": 0},
        },
    )


def line(max_length: int, min_length: int = 1) -> Schema:
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "pattern": TEXT_LINE,
    }


NAME = line(100)
EMAIL: Schema = {
    "type": "string",
    "maxLength": 254,
    "pattern": r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+$",
}
USERNAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"}
PASSWORD: Schema = {
    "type": "string",
    "minLength": 8,
    "maxLength": 72,
    "pattern": r"^[^\x00]*$",
    "description": "8 characters to 72 bytes in UTF-8, no NUL",
}

# --- request bodies ---------------------------------------------------------------------------

REGISTER = obj(
    ["name", "email", "password"],
    {"name": NAME, "email": EMAIL, "password": PASSWORD, "username": USERNAME},
)
LOGIN = obj(
    ["email", "password"],
    {
        "email": {"type": "string", "maxLength": 254},
        "password": {"type": "string", "maxLength": 1024},
    },
)
REFRESH = obj(["refresh_token"], {"refresh_token": {"type": "string", "maxLength": 512}})
UPDATE_ME = obj(
    [],
    {
        "name": NAME,
        "email": EMAIL,
        "username": {"anyOf": [USERNAME, {"type": "null"}]},
        "password": PASSWORD,
        "current_password": {"type": "string", "maxLength": 1024},
    },
)
ROLE: Schema = {"enum": ["admin", "user"]}
PROJECT_STATUS: Schema = {"enum": ["active", "archived"]}
PATCH_USER = obj([], {"role": ROLE, "is_active": {"type": "boolean"}})
CREATE_TOKEN = obj(
    ["name"],
    {
        "name": NAME,
        "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
    },
)
SETTINGS: Schema = {"type": "object", "maxProperties": 100}
CREATE_PROJECT = obj(
    ["name"],
    {"name": NAME, "description": line(2000, 0) | {"pattern": r"^[^\x00]*$"}, "settings": SETTINGS},
)
UPDATE_PROJECT = obj(
    [],
    {
        "name": NAME,
        "description": line(2000, 0) | {"pattern": r"^[^\x00]*$"},
        "settings": SETTINGS,
        "status": PROJECT_STATUS,
    },
)
ROUTE_TLS: Schema = {
    "enum": ["auto", "off"],
    "description": "auto: HTTPS (default); off: plain HTTP (the default under .localhost)",
}
ROUTE_PORT: Schema = {
    "type": ["integer", "null"],
    "minimum": 1,
    "maximum": 65535,
    "description": "the service's port (its latest deployment's); null or absent: that one",
}
CREATE_ROUTE = obj(
    ["domain", "service_id"],
    {
        "domain": {
            "type": "string",
            "maxLength": 253,
            "description": "a host name (RFC 1123 labels, optional leading '*.'); stored "
            "lower-cased, non-ASCII labels as punycode",
        },
        "service_id": {"type": "string", "maxLength": 100},
        "port": ROUTE_PORT,
        "path_prefix": {
            "type": "string",
            "maxLength": 256,
            "description": "'/' (default) or '/prefix': no spaces, braces, quotes, '..', "
            "'%' or '*'",
        },
        "tls": ROUTE_TLS,
    },
)

# --- responses --------------------------------------------------------------------------------

COMPONENTS: dict[str, Schema] = {
    "Error": obj(
        ["error"],
        {
            "error": obj(
                ["code", "message"],
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            )
        },
    ),
    "User": obj(
        ["id", "name", "username", "email", "role", "is_active", "created_at", "last_login"],
        {
            "id": {"type": "string", "pattern": "^usr_"},
            "name": {"type": "string"},
            "username": {"type": ["string", "null"]},
            "email": {"type": "string"},
            "role": ROLE,
            "is_active": {"type": "boolean"},
            "created_at": TIME,
            "updated_at": TIME,
            "last_login": OPT_TIME,
        },
    ),
    "TokenPair": obj(
        ["access_token", "refresh_token", "token_type", "expires_in", "user"],
        {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer"},
            "user": ref("User"),
        },
    ),
    "ApiToken": obj(
        ["id", "name", "prefix", "created_at", "expires_at", "last_used_at"],
        {
            "id": {"type": "string", "pattern": "^tok_"},
            "user_id": {"type": "string"},
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "created_at": TIME,
            "expires_at": OPT_TIME,
            "last_used_at": OPT_TIME,
            "token": {
                "type": "string",
                "pattern": "^dpl_",
                "description": "only in the create response",
            },
        },
    ),
    "Project": obj(
        ["id", "name", "description", "status", "settings", "created_at", "updated_at"],
        {
            "id": {"type": "string", "pattern": "^prj_"},
            "owner_id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "status": PROJECT_STATUS,
            "settings": {"type": "object"},
            "created_at": TIME,
            "updated_at": TIME,
        },
    ),
    "Health": obj(
        ["status", "version", "uptime"],
        {
            "status": {"const": "ok"},
            "version": {"type": "string"},
            "uptime": {"type": "number", "minimum": 0},
        },
    ),
    "Ready": obj(
        ["status", "checks"],
        {
            "status": {"const": "ok"},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    ),
    "Info": obj(
        ["name", "version", "targets", "default_target", "proxy", "proxy_https", "docs_url"],
        {
            "name": {"const": "dployr"},
            "version": {"type": "string"},
            "targets": {"type": "array", "items": {"enum": list(TARGET_NAMES)}},
            "default_target": {"type": ["string", "null"]},
            "proxy": {
                "enum": ["caddy", "nginx", "none", None],
                "description": "the backend the daemon drives; null while it starts",
            },
            "proxy_https": {
                "enum": ["automatic", "internal", "certificates", "off", None],
                "description": "how tls: auto routes are served: automatic (Caddy, ACME), "
                "internal (Caddy's local CA), certificates (nginx: HTTPS where a certificate "
                "is present, else plain HTTP), off (no proxy); null while the daemon starts",
            },
            "proxy_https_means": {"type": "string"},
            "docs_url": {"type": "string"},
            "registration": {"type": "string"},
        },
    ),
    "Route": obj(
        ["id", "domain", "service_id", "port", "path_prefix", "tls", "created_at"],
        {
            "id": {"type": "string", "pattern": "^rte_"},
            "domain": {"type": "string"},
            "service_id": {"type": "string", "pattern": "^svc_"},
            "port": ROUTE_PORT,
            "path_prefix": {"type": "string", "pattern": "^/"},
            "tls": ROUTE_TLS,
            "created_at": TIME,
        },
    ),
    "ServiceRoute": obj(
        ["id", "domain", "path_prefix", "tls", "port"],
        {
            "id": {"type": "string", "pattern": "^rte_"},
            "domain": {"type": "string"},
            "path_prefix": {"type": "string", "pattern": "^/"},
            "tls": ROUTE_TLS,
            "port": ROUTE_PORT,
        },
    ),
    "OpenAPI": {"type": "object"},
    "UserPage": page_of("User"),
    "ApiTokenPage": page_of("ApiToken"),
    "ProjectPage": page_of("Project"),
    "RoutePage": page_of("Route"),
    "Role": ROLE,
    "ProjectStatus": PROJECT_STATUS,
    "RouteTls": ROUTE_TLS,
    "Register": REGISTER,
    "Login": LOGIN,
    "Refresh": REFRESH,
    "UpdateMe": UPDATE_ME,
    "PatchUser": PATCH_USER,
    "CreateToken": CREATE_TOKEN,
    "CreateProject": CREATE_PROJECT,
    "UpdateProject": UPDATE_PROJECT,
    "CreateRoute": CREATE_ROUTE,
}
