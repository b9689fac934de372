"""/webhooks/{id}/deliveries, redeliver and ping: the delivery log of one webhook."""

from __future__ import annotations

from aiohttp import web

from dployr.api import schemas
from dployr.api.openapi import PAGING, operation
from dployr.api.validation import page_json, page_request
from dployr.api.webhooks import webhook_of
from dployr.errors import NotFound
from dployr.ids import new_id, now_iso
from dployr.keys import DB, WEBHOOKS
from dployr.store import deliveries
from dployr.store.deliveries import event_body

routes = web.RouteTableDef()
DELIVERY = schemas.ref("Delivery")


@routes.get("/api/v1/webhooks/{id}/deliveries", allow_head=False)
@operation(
    "The webhook's deliveries, newest first, each with its last attempt",
    tag="webhooks",
    responses={200: schemas.ref("DeliveryPage")},
    query=PAGING,
)
async def list_deliveries(request: web.Request) -> web.Response:
    webhook = await webhook_of(request)
    page = await deliveries.list_deliveries(request.app[DB], webhook.id, page_request(request))
    return web.json_response(page_json(page, [d.public() for d in page.items]))


@routes.post("/api/v1/webhooks/{id}/deliveries/{dlv}/redeliver")
@operation(
    "Send a delivery's event again, as a new delivery (a new dlv_ id), now",
    tag="webhooks",
    responses={202: DELIVERY},
)
async def redeliver(request: web.Request) -> web.Response:
    webhook = await webhook_of(request)
    old = await deliveries.get_delivery(request.app[DB], webhook.id, request.match_info["dlv"])
    if old is None:
        raise NotFound("No such delivery")
    new = await deliveries.create_delivery(
        request.app[DB], webhook.id, old.event_id, old.event_type, old.body
    )
    request.app[WEBHOOKS].kick()
    return web.json_response(new.public(), status=202)


@routes.post("/api/v1/webhooks/{id}/ping")
@operation(
    "Send a `ping` event to the webhook now (a delivery like any other)",
    tag="webhooks",
    responses={202: DELIVERY},
)
async def ping(request: web.Request) -> web.Response:
    webhook = await webhook_of(request)
    event_id = new_id("evt")
    body = event_body(event_id, "ping", now_iso(), {"webhook_id": webhook.id})
    delivery = await deliveries.create_delivery(request.app[DB], webhook.id, event_id, "ping", body)
    request.app[WEBHOOKS].kick()
    return web.json_response(delivery.public(), status=202)
