"""The targets registry: every target this version has, which of them this host can run now,
and the one an omitted `target` picks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from dployr.config import Config
from dployr.errors import Forbidden, Unavailable, ValidationError
from dployr.runtime.docker import DockerTarget
from dployr.runtime.process import ProcessTarget
from dployr.runtime.protocol import TARGET_NAMES, Target
from dployr.runtime.swarm import SwarmTarget
from dployr.runtime.systemd import SystemdTarget


class Targets:
    def __init__(self, config: Config, targets: list[Target]) -> None:
        self._config = config
        self._targets = {t.name: t for t in targets}

    def __iter__(self) -> Iterator[Target]:
        return iter(self._targets.values())

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> Target:
        """The target of a recorded deployment (it was checked when the deployment was made)."""
        return self._targets[name]

    async def problems(self) -> dict[str, str | None]:
        """Each target's problem now (None: available), probed together."""
        found = await asyncio.gather(*(t.problem() for t in self))
        return dict(zip(self._targets, found, strict=True))

    async def available(self) -> list[str]:
        """The targets that can run releases now, in the order `auto` prefers them."""
        problems = await self.problems()
        return sorted(
            (name for name, problem in problems.items() if problem is None),
            key=TARGET_NAMES.index,
        )

    async def default(self) -> str | None:
        """The configured target, or for `auto` the first available one (None: none is)."""
        configured = self._config.runtime.default_target
        if configured != "auto":
            return configured if configured in self._targets else None
        available = await self.available()
        return available[0] if available else None

    async def readiness_problem(self) -> str | None:
        """None when the default target can run releases (for /health/ready), else why not."""
        configured = self._config.runtime.default_target
        if configured == "auto":
            if await self.available():
                return None
            problems = await self.problems()
            return "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        if configured not in self._targets:
            return f"the {configured} target is not available in this version of dployr"
        return await self._targets[configured].problem()

    async def default_for_request(self) -> str:
        """The target of a first deployment that names none (a 503 that says what to do)."""
        configured = self._config.runtime.default_target
        if configured != "auto" and configured not in self._targets:
            raise Unavailable(
                f"runtime.default_target is {configured!r}, a target this version of dployr "
                f"does not have (it has: {', '.join(self._targets)}). Set "
                'runtime.default_target to auto or one of those, or send "target".'
            )
        target = await self.default()
        if target is None:
            problems = await self.problems()
            said = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
            raise Unavailable(
                f"Nothing can run releases on this host ({said}). Start dockerd (or set "
                "runtime.docker_host) and try again."
            )
        return target

    async def check(
        self, name: str, runtime: str, version: str | None, *, admin: bool
    ) -> str | None:
        """A deployment's target and runtime, checked on this host: the version it gets.
        A target that can come up later (an engine that is still starting) takes it queued."""
        target = self._targets.get(name)
        if target is None:
            raise ValidationError(
                "target",
                f"{name} is not available in this version of dployr "
                f"(it has: {', '.join(self._targets)})",
            )
        check_admin(target, admin)
        if runtime not in target.runtimes():
            raise ValidationError(
                "runtime",
                f"the {name} target does not run {runtime} "
                f"(it runs: {', '.join(target.runtimes())})",
            )
        if not target.late:
            problem = await target.problem()
            if problem is not None:
                raise ValidationError("target", f"{name} cannot run releases here: {problem}")
        return await target.check_version(runtime, version)

    async def close(self) -> None:
        for target in self:
            await target.close()


def check_admin(target: Target, admin: bool) -> None:
    """A target whose builds and apps run as the daemon's own user (root) is for admins."""
    why = target.admins_only()
    if why is not None and not admin:
        raise Forbidden(
            f"Only an admin may deploy to the {target.name} target here: {why}. "
            'Use the docker or systemd target (send "target").',
            details={"field": "target", "reason": why},
        )


def make_targets(config: Config, agent_id: str) -> Targets:
    """Every target this version has; whether each can run releases is asked when needed."""
    return Targets(
        config,
        [
            DockerTarget(config, agent_id),
            SystemdTarget(config, agent_id),
            ProcessTarget(config, agent_id),
            SwarmTarget(config, agent_id),
        ],
    )
