"""JSON Schemas of services, deployments and env (SPEC §4)."""

from __future__ import annotations

from dployr.api.schemas import OPT_TIME, TIME, Schema, line, obj, page_of, ref
from dployr.runtime.catalog import CATALOG
from dployr.runtime.protocol import TARGET_NAMES
from dployr.store.deployments import STATUSES

SERVICE_NAME: Schema = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
ENV_KEY = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
ENV_VALUE: Schema = {"type": "string", "maxLength": 32768, "pattern": r"^[^\x00]*$"}
COMMAND = line(2048)
NULLABLE_COMMAND: Schema = {"anyOf": [COMMAND, {"type": "null"}]}
VERSION: Schema = {"type": ["string", "null"], "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
# null: a worker (SPEC §13), with no PORT, no published port, no route and no HTTP or TCP check.
APP_PORT: Schema = {"type": ["integer", "null"], "minimum": 1, "maximum": 65535}
TARGETS = list(TARGET_NAMES)
HEALTH_CHECK = obj(
    [],
    {
        "path": {"type": ["string", "null"], "maxLength": 1024, "pattern": r"^/[\x21-\x7e]*$"},
        "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
    },
)
RESOURCES = obj(
    [],
    {
        "cpus": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 256},
        "memory": {"type": ["string", "null"], "pattern": "^[1-9][0-9]{0,9}[kmgKMG]?$"},
    },
)
# SPEC §14: a volume's name, and the absolute path it is mounted at (normalised and checked
# against the system directories by pipeline.spec.check_volumes). Only plain characters: the
# path goes into a container's mount and a systemd unit.
VOLUME_NAME = "^[a-z0-9][a-z0-9-]{0,39}$"
VOLUME_MOUNT_INPUT = obj(
    ["name", "path"],
    {
        "name": {"type": "string", "pattern": VOLUME_NAME},
        "path": {"type": "string", "maxLength": 255, "pattern": "^/[A-Za-z0-9._/-]*$"},
    },
)
VOLUMES: Schema = {"type": "array", "maxItems": 16, "items": VOLUME_MOUNT_INPUT}
# SPEC §15, the swarm target only (pipeline.spec.check_spec refuses them on the others): how many
# tasks (null: the service's current scale, 1 at first) and Swarm constraints on their nodes.
REPLICA_COUNT: Schema = {"type": "integer", "minimum": 1, "maximum": 100}
REPLICAS: Schema = {"type": ["integer", "null"], "minimum": 1, "maximum": 100}
PLACEMENT_CONSTRAINT = "^[a-z][a-z0-9._-]*(==|!=)[A-Za-z0-9._-]+$"
PLACEMENT: Schema = {
    "type": "array",
    "maxItems": 20,
    "items": {"type": "string", "maxLength": 255, "pattern": PLACEMENT_CONSTRAINT},
}
STRATEGIES = ["start-first", "stop-first"]
STRATEGY: Schema = {"enum": STRATEGIES}
AUTO_DEPLOY: Schema = {"enum": ["off", "webhook", "poll"]}
SECRET_ENV_VALUE = obj(["value"], {"value": ENV_VALUE, "secret": {"type": "boolean"}})
# A deployment's env: `"KEY": "value"` keeps the key's secret flag on the service (a new key
# is plain); `"KEY": {"value": "…", "secret": true}` marks it secret (false: plain again).
ENV_MAP: Schema = {
    "type": "object",
    "maxProperties": 500,
    "propertyNames": {"pattern": ENV_KEY},
    "additionalProperties": {"anyOf": [ENV_VALUE, SECRET_ENV_VALUE]},
}

# Where a release's source comes from: the create body names three; an upload's `deployment`
# part only `upload`; a Deployment any of the four. Each list is named apart (two enums named
# alike make openapi-python-client drop both).
DEPLOYMENT_SOURCE: Schema = {"enum": ["remote", "local", "image"]}
UPLOAD_SOURCE: Schema = {"enum": ["upload"]}  # the `deployment` part of an upload
RELEASE_SOURCE: Schema = {"enum": ["remote", "local", "image", "upload"]}  # a Deployment's
RUNTIME: Schema = {"enum": list(CATALOG)}
TARGET: Schema = {"enum": [*TARGETS, None]}

# The fields of a release's config: shared by create (POST) and change (PUT).
_CONFIG: dict[str, Schema] = {
    "remote": {"type": ["string", "null"], "maxLength": 2048},
    "branch": {"type": ["string", "null"], "maxLength": 255},
    "credential_id": {"type": ["string", "null"], "maxLength": 64},
    "path": {"type": ["string", "null"], "maxLength": 4096},
    "image": {"type": ["string", "null"], "pattern": r"^[a-z0-9][a-z0-9._/:@-]{0,254}$"},
    "runtime": RUNTIME,
    "version": VERSION,
    "target": TARGET,
    "build_cmd": NULLABLE_COMMAND,
    "run_cmd": NULLABLE_COMMAND,
    "port": APP_PORT,
    "env": ENV_MAP,
    "health_check": HEALTH_CHECK,
    "resources": RESOURCES,
    "domain": {"type": ["string", "null"], "maxLength": 253},
    "auto_deploy": AUTO_DEPLOY,
    "volumes": VOLUMES,
    "strategy": STRATEGY,
    "replicas": REPLICAS,
    "placement": PLACEMENT,
}
CREATE_DEPLOYMENT = obj(
    ["name", "source"],
    {
        "name": SERVICE_NAME,
        "project_id": {"type": ["string", "null"], "maxLength": 64},
        "source": DEPLOYMENT_SOURCE,
        **_CONFIG,
    },
)
UPDATE_DEPLOYMENT = obj([], _CONFIG)
# POST /deployments/upload: its `deployment` part (the create fields; source absent or upload),
# and the two parts of its multipart/form-data body.
UPLOAD_DEPLOYMENT = obj(["name"], {**CREATE_DEPLOYMENT["properties"], "source": UPLOAD_SOURCE})
UPLOAD_BODY = obj(
    ["deployment", "archive"],
    {
        "deployment": UPLOAD_DEPLOYMENT,
        "archive": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "application/gzip",
            "description": "a .tar.gz of the app's directory, up to runtime.max_upload_bytes",
        },
    },
)
UPLOAD_ENCODING = {
    "deployment": {"contentType": "application/json"},
    "archive": {"contentType": "application/gzip, application/octet-stream"},
}
SCALE_SERVICE = obj(["replicas"], {"replicas": REPLICA_COUNT})
SET_ENV = obj(
    ["key", "value"],
    {
        "key": {"type": "string", "pattern": ENV_KEY},
        "value": ENV_VALUE,
        "secret": {"type": "boolean"},
    },
)

_ID = {"type": "string"}
_OPT = {"type": ["string", "null"]}
STAGE_NAME: Schema = {"enum": ["fetching", "building", "starting", "health_checking", "switching"]}
STAGE_STATUS: Schema = {"enum": ["pending", "running", "succeeded", "failed", "skipped"]}
STAGE = obj(
    ["name", "status", "started_at", "finished_at", "message"],
    {
        "name": STAGE_NAME,
        "status": STAGE_STATUS,
        "started_at": OPT_TIME,
        "finished_at": OPT_TIME,
        "message": _OPT,
    },
)
DEPLOYMENT_STATUS: Schema = {"enum": list(STATUSES)}
TRIGGER: Schema = {"enum": ["api", "webhook", "poll", "rollback"]}
SERVICE_STATUS: Schema = {"enum": ["running", "stopped", "starting", "crashed", "unknown"]}
DESIRED_STATE: Schema = {"enum": ["running", "stopped"]}
VOLUME_MOUNT = obj(["name", "path"], {"name": _ID, "path": _ID})
LOG_STREAM: Schema = {"enum": ["stdout", "stderr"]}
DEPLOYMENT_LOG_LINE = obj(
    ["seq", "timestamp", "message"],
    {"seq": {"type": "integer"}, "timestamp": _ID, "message": _ID},
)
TASK_COUNTS = obj(
    ["running", "desired"],
    {"running": {"type": "integer", "minimum": 0}, "desired": {"type": "integer", "minimum": 0}},
)
# The live deployment, as a service shows it.
DEPLOYMENT_SUMMARY = obj(
    ["id", "number", "commit_sha", "status"],
    {
        "id": {"type": "string", "pattern": "^dep_"},
        "number": {"type": "integer", "minimum": 1},
        "commit_sha": _OPT,
        "status": DEPLOYMENT_STATUS,
    },
)
DEPLOYMENT_FIELDS = [
    "id", "service_id", "project_id", "number", "status", "progress", "source", "remote", "branch",
    "path", "image", "credential_id", "runtime", "version", "target", "build_cmd", "run_cmd",
    "port", "env", "health_check", "resources", "domain", "volumes", "strategy", "replicas",
    "placement", "commit_sha", "artifact", "triggered_by", "rollback_of", "error", "stages",
    "created_at", "started_at", "finished_at",
]  # fmt: skip
PUSH_STATUS: Schema = {"enum": ["queued", "ignored", "pong"]}
COMPONENTS: dict[str, Schema] = {
    "Deployment": obj(
        DEPLOYMENT_FIELDS,
        {
            "id": {"type": "string", "pattern": "^dep_"},
            "service_id": _ID,
            "service_name": _ID,
            "project_id": _ID,
            "number": {"type": "integer", "minimum": 1},
            "status": DEPLOYMENT_STATUS,
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "source": RELEASE_SOURCE,
            "remote": _OPT,
            "branch": _OPT,
            "path": _OPT,
            "image": _OPT,
            "credential_id": _OPT,
            "runtime": {"type": "string"},
            "version": _OPT,
            "target": {"type": "string"},
            "build_cmd": _OPT,
            "run_cmd": _OPT,
            "port": APP_PORT,
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "health_check": {"type": "object"},
            "resources": {"type": "object"},
            "domain": _OPT,
            "volumes": {"type": "array", "items": VOLUME_MOUNT},
            "strategy": STRATEGY,
            "replicas": REPLICAS,
            "placement": PLACEMENT,
            "commit_sha": _OPT,
            "artifact": _OPT,
            "triggered_by": TRIGGER,
            "rollback_of": _OPT,
            "error": _OPT,
            "stages": {"type": "array", "items": STAGE},
            "host_port": {"type": ["integer", "null"]},
            "created_at": TIME,
            "started_at": OPT_TIME,
            "finished_at": OPT_TIME,
        },
    ),
    # The live instance, read from the runtime (GET /services/{id}/status); `replicas`: a swarm
    # service's tasks (running, desired), null on the other targets.
    "ServiceRuntimeStatus": obj(
        ["status", "host_port", "container_id", "started_at", "restarts", "health", "replicas"],
        {
            "status": SERVICE_STATUS,
            "host_port": {"type": ["integer", "null"]},
            "container_id": _OPT,
            "started_at": OPT_TIME,
            "restarts": {"type": "integer", "minimum": 0},
            "health": _OPT,
            "replicas": {"anyOf": [{"type": "null"}, TASK_COUNTS]},
        },
    ),
    "Service": obj(
        [
            "id",
            "project_id",
            "name",
            "runtime",
            "target",
            "status",
            "desired_state",
            "current_deployment_id",
            "current_deployment",
            "host_port",
            "container_id",
            "routes",
            "volumes",
            "hook_url",
            "hook_secret",
            "auto_deploy",
            "replicas",
            "created_at",
            "updated_at",
        ],
        {
            "id": {"type": "string", "pattern": "^svc_"},
            "owner_id": _ID,
            "project_id": _ID,
            "name": _ID,
            "runtime": _ID,
            "target": _ID,
            "status": SERVICE_STATUS,
            "desired_state": DESIRED_STATE,
            "auto_deploy": AUTO_DEPLOY,
            "current_deployment_id": _OPT,
            "current_deployment": {"anyOf": [{"type": "null"}, DEPLOYMENT_SUMMARY]},
            "host_port": {"type": ["integer", "null"]},
            "container_id": _OPT,
            "routes": {"type": "array", "items": ref("ServiceRoute")},
            "volumes": {"type": "array", "items": VOLUME_MOUNT},
            # swarm: the tasks it is scaled to (SPEC §15); null on the other targets
            "replicas": REPLICAS,
            "hook_url": _ID,
            "hook_secret": _ID,
            "created_at": TIME,
            "updated_at": TIME,
        },
    ),
    # A service's volume (SPEC §14): size_bytes is null while its storage does not exist yet
    # (made at the first start) or cannot be measured.
    "Volume": obj(
        ["name", "path", "size_bytes", "created_at"],
        {
            "name": _ID,
            "path": _ID,
            "size_bytes": {"type": ["integer", "null"], "minimum": 0},
            "created_at": TIME,
        },
    ),
    "VolumeList": obj(["items"], {"items": {"type": "array", "items": ref("Volume")}}),
    "ServiceLogs": obj(
        ["service_id", "logs", "has_more", "truncated"],
        {
            "service_id": _ID,
            "logs": {"type": "array", "items": ref("LogLine")},
            "has_more": {"type": "boolean"},
            # The answer stopped at its byte cap: `logs` holds the oldest of the lines asked
            # for; continue with `since` = the last line's timestamp.
            "truncated": {"type": "boolean"},
        },
    ),
    "LogLine": obj(
        ["timestamp", "stream", "message"],
        {"timestamp": _ID, "stream": LOG_STREAM, "message": _ID},
    ),
    "DeploymentLogs": obj(
        ["deployment_id", "status", "logs", "next_after", "has_more"],
        {
            "deployment_id": _ID,
            "status": DEPLOYMENT_STATUS,
            "logs": {"type": "array", "items": DEPLOYMENT_LOG_LINE},
            # The seq of the last line sent (`after` when none): the next page's `after`.
            "next_after": {"type": "integer", "minimum": 0},
            # Lines after next_after exist now (a running build adds more later).
            "has_more": {"type": "boolean"},
        },
    ),
    "EnvVar": obj(
        ["key", "value", "secret", "updated_at"],
        {"key": _ID, "value": _ID, "secret": {"type": "boolean"}, "updated_at": TIME},
    ),
    "EnvList": obj(
        ["service_id", "env"], {"service_id": _ID, "env": {"type": "array", "items": ref("EnvVar")}}
    ),
    # A push hook's answer: queued (with the deployment; `coalesced`: a queued one was pointed
    # at this newer commit), ignored (with the reason), or pong (GitHub's ping).
    "PushResult": obj(
        ["status"],
        {
            "status": PUSH_STATUS,
            "reason": _ID,
            "coalesced": {"type": "boolean"},
            "deployment": ref("Deployment"),
            "service_id": _ID,
        },
    ),
    "DeploymentPage": page_of("Deployment"),
    "ServicePage": page_of("Service"),
    "ServiceStatus": SERVICE_STATUS,
    "DesiredState": DESIRED_STATE,
    "AutoDeploy": AUTO_DEPLOY,
    "DeploymentStatus": DEPLOYMENT_STATUS,
    "DeploymentSummary": DEPLOYMENT_SUMMARY,
    "DeploymentSource": DEPLOYMENT_SOURCE,
    "UploadSource": UPLOAD_SOURCE,
    "ReleaseSource": RELEASE_SOURCE,
    "DeploymentTrigger": TRIGGER,
    "Strategy": STRATEGY,
    "Replicas": REPLICAS,
    "Placement": PLACEMENT,
    "Runtime": RUNTIME,
    "Target": TARGET,
    "Stage": STAGE,
    "StageName": STAGE_NAME,
    "StageStatus": STAGE_STATUS,
    "VolumeMount": VOLUME_MOUNT,
    "LogStream": LOG_STREAM,
    "DeploymentLogLine": DEPLOYMENT_LOG_LINE,
    "PushStatus": PUSH_STATUS,
    "HealthCheck": HEALTH_CHECK,
    "Resources": RESOURCES,
    "VolumeMountInput": VOLUME_MOUNT_INPUT,
    "EnvInput": ENV_MAP,
    "SecretEnvValue": SECRET_ENV_VALUE,
    "CreateDeployment": CREATE_DEPLOYMENT,
    "UpdateDeployment": UPDATE_DEPLOYMENT,
    "UploadDeployment": UPLOAD_DEPLOYMENT,
    "UploadDeploymentForm": UPLOAD_BODY,
    "SetEnv": SET_ENV,
    "ScaleService": SCALE_SERVICE,
    "TaskCounts": TASK_COUNTS,
}
