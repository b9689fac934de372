"""WebSocket fan-out: N clients subscribed on /api/v1/ws of a real `dployr serve`, one event,
time until the last client has it (goal < 100 ms for 100 clients).

The event is a `route.created` made through the API (a service from a deployment against an
engine socket where nothing listens: no container is made). Times are from just before the
POST that commits the event, so they include that request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.api import PASSWORD, free_port, wait_http  # noqa: E402


async def run(clients: int, rounds: int, url: str) -> None:
    api = f"{url}/api/v1"
    # No connection limit: the default (100) would hold the POST behind 100 open sockets.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        user = {"name": "Bench", "email": "bench@example.com", "password": PASSWORD}
        await (await http.post(f"{api}/auth/register", json=user)).read()
        creds = {"email": user["email"], "password": PASSWORD}
        login = await (await http.post(f"{api}/auth/login", json=creds)).json()
        token = login["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        body = {"name": "web", "source": "image", "image": "alpine:3", "port": 8080}
        service = (await (await http.post(f"{api}/deployments", json=body, headers=auth)).json())[
            "service_id"
        ]
        sockets = [await http.ws_connect(f"{api}/ws?token={token}") for _ in range(clients)]
        for ws in sockets:
            await ws.send_json({"type": "subscribe", "events": ["route.created"]})
            while (await ws.receive_json())["type"] != "subscribed":
                pass  # the deployment's own events, streamed before the subscribe
        lasts, spreads = [], []
        for n in range(rounds):
            started = time.perf_counter()
            route = {"domain": f"r{n}.example.com", "service_id": service}
            resp = await http.post(f"{api}/proxy/routes", json=route, headers=auth)
            assert resp.status == 201, await resp.text()

            async def arrival(ws: aiohttp.ClientWebSocketResponse) -> float:
                await ws.receive_json(timeout=30)
                return time.perf_counter()

            times = await asyncio.gather(*(arrival(ws) for ws in sockets))
            lasts.append((max(times) - started) * 1000)
            spreads.append((max(times) - min(times)) * 1000)
        for ws in sockets:
            await ws.close()
    print(f"WebSocket fan-out, {clients} clients, {rounds} events (one at a time):")
    print(
        f"  POST to the last client: median {statistics.median(lasts):.1f} ms, "
        f"max {max(lasts):.1f} ms (goal < 100 ms)"
    )
    print(
        f"  first to last client:    median {statistics.median(spreads):.1f} ms, "
        f"max {max(spreads):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DPLOYR_")}
        env.update(
            DPLOYR_SERVER_DATA_DIR=f"{tmp}/data",
            DPLOYR_SERVER_WS_PER_USER=str(args.clients + 1),
            DPLOYR_AUTH_BCRYPT_ROUNDS="4",
            DPLOYR_RATE_LIMIT_ENABLED="false",
            DPLOYR_PROXY_BACKEND="none",
            DPLOYR_RUNTIME_DEFAULT_TARGET="docker",
            DPLOYR_RUNTIME_DOCKER_HOST=f"unix://{tmp}/no.sock",
        )
        config = Path(tmp) / "config.toml"
        config.write_text("")
        log = (Path(tmp) / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dployr", "serve", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health")
            asyncio.run(run(args.clients, args.rounds, url))
        finally:
            daemon.terminate()
            daemon.wait(30)
            log.close()


if __name__ == "__main__":
    main()
