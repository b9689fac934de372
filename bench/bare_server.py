"""The baseline for bench/api.py: a bare aiohttp handler returning a JSON document from memory."""

import json
import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    body = json.loads(Path(sys.argv[1]).read_text())
    port = int(sys.argv[2])

    async def projects(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/projects", projects)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
