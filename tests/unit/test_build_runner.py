"""The systemd target's build commands: their environment is in a root-only file, never on
systemd-run's command line (which every user may read), and the file goes when they end."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dployr.config import Config, ServerConfig
from dployr.runtime import systemd
from dployr.runtime.systemd import SystemdTarget, UserRunner


class Finished:
    """Stands in for systemd-run: no output, exit status 0."""

    returncode = 0

    def __init__(self) -> None:
        self.stdout = asyncio.StreamReader()
        self.stdout.feed_eof()

    async def wait(self) -> int:
        return 0


async def test_a_build_commands_environment_is_never_on_a_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = dataclasses.replace(Config(), server=ServerConfig(data_dir=str(tmp_path)))
    target = SystemdTarget(config, "agt_test", unit_dir=tmp_path / "units.d")
    runner = UserRunner(target, "dployr-test")
    seen: dict[str, Any] = {}

    async def exec_(*argv: str, **_: Any) -> Finished:
        seen["argv"] = argv
        env_file = next(a for a in argv if a.startswith("--property=EnvironmentFile="))
        path = Path(env_file.partition("EnvironmentFile=")[2])
        seen["mode"] = (await asyncio.to_thread(path.stat)).st_mode & 0o777
        seen["text"] = await asyncio.to_thread(path.read_text)
        seen["path"] = path
        return Finished()

    monkeypatch.setattr(systemd.asyncio, "create_subprocess_exec", exec_)
    secret = "https://user:s3cret@pypi.example/simple"
    env = {"PATH": "/usr/bin", "PIP_INDEX_URL": secret}
    assert await runner.run(["pip", "--version"], tmp_path, env, lambda line: None) == 0
    assert not any(secret in arg for arg in seen["argv"])
    assert not any(arg.startswith("--setenv") for arg in seen["argv"])
    assert seen["mode"] == 0o600 and f'PIP_INDEX_URL="{secret}"' in seen["text"]
    assert not await asyncio.to_thread(seen["path"].exists)  # removed once the command ended
