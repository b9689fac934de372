"""The baselines for bench/api.py: bare aiohttp handlers serving one JSON document from memory,
serialised on every request by `json_response` (/json_response), or once at start (/bytes)."""

import json
import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    raw = Path(sys.argv[1]).read_bytes()
    body = json.loads(raw)
    port = int(sys.argv[2])

    async def with_json_response(request: web.Request) -> web.Response:
        return web.json_response(body)

    async def with_bytes(request: web.Request) -> web.Response:
        return web.Response(body=raw, content_type="application/json")

    app = web.Application()
    app.router.add_get("/json_response", with_json_response)
    app.router.add_get("/bytes", with_bytes)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
