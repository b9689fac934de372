"""The host's interpreters: version mapping (pure) and the versions found on this host."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dployr.errors import ValidationError
from dployr.runtime.interpreters import (
    Interpreters,
    matches,
    python_version_of_name,
    static_server,
    version_of_output,
)


def test_python_names_map_to_versions() -> None:
    assert python_version_of_name("python3.11") == "3.11"
    assert python_version_of_name("python3.13") == "3.13"
    for other in ("python3", "python3.11-config", "python3.11m", "python2.7", "xpython3.11"):
        assert python_version_of_name(other) is None


def test_version_outputs_map_to_catalog_versions() -> None:
    assert version_of_output("python", "Python 3.12.4\n") == "3.12"
    assert version_of_output("nodejs", "v20.20.2\n") == "20"
    assert version_of_output("go", "go version go1.22.3 linux/amd64") == "1.22"
    assert version_of_output("rust", "cargo 1.80.1 (376290515 2024-07-16)") == "1.80"
    assert version_of_output("nodejs", "command not found") is None


def test_rust_major_matches_any_minor() -> None:
    assert matches("rust", "1", "1.95")
    assert matches("rust", "1.95", "1.95")
    assert not matches("rust", "1.80", "1.95")
    assert not matches("python", "3.1", "3.11")


def test_static_server_prefers_busybox() -> None:
    assert static_server({"busybox": "/bin/busybox", "python3": "/usr/bin/python3"}) == (
        '/bin/busybox httpd -f -p "$PORT" -h .'
    )
    assert (
        static_server({"python3": "/usr/bin/python3"}) == '/usr/bin/python3 -m http.server "$PORT"'
    )
    assert static_server({}) is None


def _fake_python(directory: Path, name: str, version: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho 'Python {version}.0'\n")
    script.chmod(0o755)


@pytest.fixture
def fake_pythons(tmp_path: Path) -> Path:
    _fake_python(tmp_path, "python3.9", "3.9")
    _fake_python(tmp_path, "python3.14", "3.14")
    _fake_python(tmp_path, "python3", "3.14")
    return tmp_path


async def test_versions_come_from_the_path(fake_pythons: Path) -> None:
    """python3.X on PATH are the versions; python3 is the default; a missing one names them."""
    tmp_path = fake_pythons
    host = Interpreters(str(tmp_path))
    found = await host.installed("python")
    assert [t.version for t in found] == ["3.14", "3.9"]
    assert (await host.resolve("python", None)).executable == str(tmp_path / "python3")
    assert (await host.resolve("python", "3.9")).executable == str(tmp_path / "python3.9")
    assert await host.check_version("python", None) is None
    with pytest.raises(ValidationError) as refused:
        await host.check_version("python", "3.12")
    assert refused.value.details == {
        "field": "version",
        "reason": "python 3.12 is not installed on this host (installed: 3.14, 3.9)",
    }


async def test_missing_toolchain_and_docker_only_runtimes(tmp_path: Path) -> None:
    host = Interpreters(str(tmp_path))  # an empty PATH: nothing installed
    with pytest.raises(ValidationError) as nothing:
        await host.check_version("nodejs", None)
    assert nothing.value.details == {
        "field": "runtime",
        "reason": "no nodejs toolchain is installed on this host",
    }
    with pytest.raises(ValidationError) as docker_only:
        await host.check_version("dockerfile", None)
    assert docker_only.value.details is not None
    assert docker_only.value.details["field"] == "runtime"


async def test_this_hosts_python_is_found() -> None:
    host = Interpreters(os.environ["PATH"])
    default = await host.resolve("python", None)
    assert default.version.startswith("3.")
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert mine in {t.version for t in await host.installed("python")}
