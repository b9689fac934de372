"""A deployment's end is counted in /metrics: its result and its duration."""

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.docker.conftest import STATIC_APP, make_repo, wait_done


async def test_a_deployment_result_and_duration_are_counted(dclient, auth, tmp_path):
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body: dict[str, Any] = {"name": "web", "source": "local", "path": str(repo),
                            "runtime": "static", "port": 8080}  # fmt: skip
    resp = await dclient.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    done = await wait_done(dclient, auth, (await resp.json())["id"])
    assert done["status"] == "live", done
    families = {
        f.name: f
        for f in text_string_to_metric_families(await (await dclient.get("/metrics")).text())
    }
    ends = {
        s.labels["result"]: s.value
        for s in families["dployr_deployments"].samples
        if s.name.endswith("_total")
    }
    assert ends == {"succeeded": 1}
    durations = {
        s.name: s.value
        for s in families["dployr_deployment_duration_seconds"].samples
        if s.labels.get("result") == "succeeded" and s.labels.get("le") in (None, "+Inf")
    }
    assert durations["dployr_deployment_duration_seconds_count"] == 1
    assert durations["dployr_deployment_duration_seconds_bucket"] == 1
    assert durations["dployr_deployment_duration_seconds_sum"] > 0
