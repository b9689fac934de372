"""JSON Schemas of outbound webhooks and their deliveries (SPEC §7)."""

from __future__ import annotations

from dployr.api.schemas import OPT_TIME, TIME, Schema, obj, page_of

EVENT_TYPES = [
    "deployment.created",
    "deployment.progress",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.cancelled",
    "deployment.rolled_back",
    "service.started",
    "service.stopped",
    "service.crashed",
    "route.created",
    "route.deleted",
    "instance.alert",
    "database.created",
    "database.failed",
    "backup.succeeded",
    "backup.failed",
]
URL: Schema = {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": r"^[\x21-\x7e]+$"}
EVENT_FILTER: Schema = {"enum": ["*", *EVENT_TYPES], "description": "an event type; * all"}
EVENTS: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": len(EVENT_TYPES) + 1,
    "uniqueItems": True,
    "items": EVENT_FILTER,
}
SECRET: Schema = {"type": "string", "maxLength": 512, "pattern": r"^[\x21-\x7e]+$"}
CREATE_WEBHOOK = obj(
    ["url"], {"url": URL, "events": EVENTS, "secret": SECRET, "active": {"type": "boolean"}}
)
UPDATE_WEBHOOK = obj(
    [], {"url": URL, "events": EVENTS, "secret": SECRET, "active": {"type": "boolean"}}
)
_WEBHOOK_PROPS: dict[str, Schema] = {
    "id": {"type": "string", "pattern": "^whk_"},
    "owner_id": {"type": "string"},
    "url": {"type": "string"},
    "events": {"type": "array", "items": {"type": "string"}},
    "active": {"type": "boolean"},
    "created_at": TIME,
    "updated_at": TIME,
}
_WEBHOOK_REQUIRED = ["id", "owner_id", "url", "events", "active", "created_at", "updated_at"]

DELIVERY_STATUS: Schema = {"enum": ["pending", "delivered", "failed"]}

COMPONENTS: dict[str, Schema] = {
    "Webhook": obj(_WEBHOOK_REQUIRED, _WEBHOOK_PROPS),
    # The create response is the only place the secret ever appears.
    "WebhookWithSecret": obj(
        [*_WEBHOOK_REQUIRED, "secret"], {**_WEBHOOK_PROPS, "secret": {"type": "string"}}
    ),
    "WebhookPage": page_of("Webhook"),
    "Delivery": obj(
        [
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
        ],
        {
            "id": {"type": "string", "pattern": "^dlv_"},
            "webhook_id": {"type": "string", "pattern": "^whk_"},
            "event_id": {"type": "string", "pattern": "^evt_"},
            "event_type": {"type": "string"},
            "status": DELIVERY_STATUS,
            "attempts": {"type": "integer", "minimum": 0},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "last_response": {"type": ["string", "null"]},  # the first 1 KiB
            "last_latency_ms": {"type": ["integer", "null"]},
            "next_attempt_at": OPT_TIME,
            "created_at": TIME,
            "delivered_at": OPT_TIME,
        },
    ),
    "DeliveryPage": page_of("Delivery"),
    "EventFilter": EVENT_FILTER,
    "DeliveryStatus": DELIVERY_STATUS,
    "CreateWebhook": CREATE_WEBHOOK,
    "UpdateWebhook": UPDATE_WEBHOOK,
}
