"""The crash watch: each running service's live instance read through its target, once a round;
a crash episode's beginning becomes a `service.crashed` event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from dployr.errors import DployrError
from dployr.ids import now_iso
from dployr.metrics.alerts import CrashEpisodes
from dployr.pipeline import control
from dployr.pipeline.deployer import Deployer
from dployr.runtime.protocol import InstanceStatus
from dployr.store import events, services
from dployr.store.services import Service

_LOGGER = logging.getLogger(__name__)


class CrashWatch:
    def __init__(self, healthy_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.episodes = CrashEpisodes(healthy_seconds)
        self._clock = clock

    async def check(self, deployer: Deployer) -> None:
        """The job run every `metrics.interval` seconds."""
        watched = [
            s
            for s in await services.all_services(deployer.db)
            if s.desired_state == "running" and s.current_deployment_id
        ]
        statuses = await asyncio.gather(
            *(control.service_status(deployer, s) for s in watched), return_exceptions=True
        )
        self.episodes.forget_others({s.id for s in watched})
        for service, answer in zip(watched, statuses, strict=True):
            if isinstance(answer, DployrError):
                continue  # the target is down: no news about the service (next round)
            if isinstance(answer, BaseException):
                raise answer
            status, _port = answer
            if status.ref is None:
                continue  # its live release has no instance (mid-deploy, or stopped)
            if self.episodes.observe(service.id, status, self._clock()):
                _LOGGER.warning("service %s is crashing: %s", service.name, status.health)
                await events.append_event(
                    deployer.db, "service.crashed", service.owner_id, crash_data(service, status)
                )


def crash_data(service: Service, status: InstanceStatus) -> dict[str, Any]:
    return {
        "service_id": service.id,
        "service_name": service.name,
        "project_id": service.project_id,
        "deployment_id": service.current_deployment_id,
        "status": status.status,
        "restarts": status.restarts,
        "health": status.health,
        "at": now_iso(),
    }
