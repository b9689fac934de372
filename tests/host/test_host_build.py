"""The host build, for real: a venv from PyPI with a per-service cache, build_cmd, limits."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from dployr.runtime.host_build import ChildRunner, HostBuilder, manifest_path, read_manifest
from dployr.runtime.interpreters import Interpreters
from dployr.runtime.protocol import BuildRequest, RuntimeFailure
from tests.host.conftest import Collected

APP = "import six\nprint('version one', six.__version__)\n"


@pytest.fixture
def pypi(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip as on a fresh VPS: PyPI only, not this machine's local wheel mirrors."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


def _request(source: Path, number: int, **changes: object) -> BuildRequest:
    values: dict[str, object] = {
        "service_id": "svc_build",
        "service_name": "build",
        "deployment_id": f"dep_{number}",
        "number": number,
        "runtime": "python",
        "version": None,
        "build_cmd": None,
        "run_cmd": None,
        "source": source,
        "timeout": 300.0,
    }
    values.update(changes)
    return BuildRequest(**values)  # type: ignore[arg-type]


def _builder(tmp_path: Path) -> HostBuilder:
    return HostBuilder(tmp_path / "data", Interpreters(), ChildRunner())


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.mark.usefixtures("pypi")
async def test_a_python_app_installs_and_a_one_line_change_downloads_nothing(
    tmp_path: Path, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    builder = _builder(tmp_path)
    first = Collected()
    files = {"requirements.txt": "six==1.16.0\n", "app.py": APP}
    release = await builder.build(_request(await asyncio.to_thread(source_tar, files), 1), first)
    assert release == str(tmp_path / "data" / "releases" / "svc_build" / "1")
    assert "Downloading six-1.16.0" in first.text, first.text
    manifest = await asyncio.to_thread(read_manifest, Path(release))
    python = Path(manifest.path[0]) / "python"
    said = await asyncio.to_thread(_run, [str(python), str(Path(release) / "app" / "app.py")])
    assert said == "version one 1.16.0\n"
    assert manifest.run_cmd == "python3 app.py" and manifest.env["VIRTUAL_ENV"].endswith("venv")
    assert [s[0] for s in first.steps] == [1, 2, 3]

    second = Collected()
    changed = {**files, "app.py": APP.replace("version one", "version two")}
    again = await builder.build(_request(await asyncio.to_thread(source_tar, changed), 2), second)
    wheel = tmp_path / "data" / "cache" / "svc_build" / "wheels" / "six-1.16.0-py2.py3-none-any.whl"
    assert f"Processing {wheel}" in second.text, second.text
    assert "Downloading" not in second.text, second.text
    assert await builder.has_artifact(again) and await builder.has_artifact(release)


async def test_build_cmd_runs_in_the_app_dir_and_a_failure_says_so(
    tmp_path: Path, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    builder = _builder(tmp_path)
    out = Collected()
    source = await asyncio.to_thread(source_tar, {"app.py": "print(1)\n"})
    release = await builder.build(
        _request(source, 1, build_cmd="echo built > built.txt; echo from-build"), out
    )
    assert await asyncio.to_thread((Path(release) / "app" / "built.txt").read_text) == "built\n"
    assert "from-build" in out.lines
    failing = Collected()
    with pytest.raises(RuntimeFailure, match=r"build_cmd failed \(exit status 3\)"):
        await builder.build(_request(source, 2, build_cmd="echo oops >&2; exit 3"), failing)
    assert "oops" in failing.lines
    assert not await builder.has_artifact(builder.artifact_name("svc_build", 2))


def _marked(token: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(token in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


async def test_the_time_limit_kills_the_whole_build(
    tmp_path: Path, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    """A build past its limit fails, and nothing it started (a background job) runs on."""
    builder = _builder(tmp_path)
    token = f"sleep 3{os.getpid() % 1000:03d}"
    request = _request(
        await asyncio.to_thread(source_tar, {"app.py": ""}),
        1,
        build_cmd=f"{token}1 & {token}2",
        timeout=3.0,
    )
    with pytest.raises(RuntimeFailure, match="ran past its limit of 3 s"):
        await builder.build(request, Collected())
    left = await asyncio.to_thread(_marked, token)
    assert left == [], [p.cmdline() for p in left]


async def test_artifacts_are_release_dirs_of_the_service(tmp_path: Path) -> None:
    builder = _builder(tmp_path)
    name = builder.artifact_name("svc_a", 7)
    assert name == str(tmp_path / "data" / "releases" / "svc_a" / "7")
    assert builder.owns(name, "svc_a")
    assert not builder.owns(name, "svc_b")
    assert not builder.owns("dployr/svc_a:7", "svc_a")
    assert not builder.owns(None, "svc_a")
    outside = tmp_path / "keep"
    await asyncio.to_thread(outside.mkdir)
    await builder.remove_artifact(str(outside))  # not a release dir: left alone
    assert await asyncio.to_thread(outside.is_dir)
    await asyncio.to_thread((Path(name) / "app").mkdir, parents=True)
    await asyncio.to_thread(manifest_path(Path(name)).write_text, "{}")
    partial = manifest_path(Path(name)).with_name(f"{Path(name).name}.json.partial")
    await asyncio.to_thread(partial.write_text, "{")  # a build killed while writing it
    await builder.remove_artifact(name)
    assert not await asyncio.to_thread(partial.exists)
    assert not await asyncio.to_thread(Path(name).exists)
    assert not await asyncio.to_thread(manifest_path(Path(name)).exists)


async def test_a_node_app_installs_and_a_one_line_change_needs_no_registry(
    tmp_path: Path,
    source_tar: Callable[[dict[str, str]], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second build of a node app whose manifest did not change is served by the service's
    npm cache: with the registry unreachable it still installs."""
    builder = _builder(tmp_path)
    package = '{"name": "n", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}'
    files = {"package.json": package, "index.js": "console.log(require('is-number')(1))\n"}
    node = {"runtime": "nodejs", "version": None}
    first = await builder.build(
        _request(await asyncio.to_thread(source_tar, files), 1, **node), Collected()
    )
    assert await asyncio.to_thread(
        (Path(first) / "app" / "node_modules" / "is-number" / "package.json").is_file
    )
    for proxy in ("npm_config_proxy", "npm_config_https_proxy"):  # nothing listens there
        monkeypatch.setenv(proxy, "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    changed = {**files, "index.js": "console.log(require('is-number')(2))\n"}
    second = await builder.build(
        _request(await asyncio.to_thread(source_tar, changed), 2, **node), Collected()
    )
    said = await asyncio.to_thread(_run, ["node", str(Path(second) / "app" / "index.js")])
    assert said == "true\n"


class NobodyRunner(ChildRunner):
    """The systemd target's arrangement without systemd: the release dir and the caches are
    an unprivileged user's (nobody), releases/<service> is root's, commands run as that user."""

    async def prepare(self, paths: Sequence[Path]) -> None:
        release, cache = paths

        def give() -> None:
            os.chown(release.parent, 0, NOBODY)
            release.parent.chmod(0o750)
            cache.mkdir(parents=True, exist_ok=True)
            for folder in (release.parent.parent.parent, release.parent.parent, cache.parent):
                folder.chmod(0o711)
            for path in (cache, release):
                subprocess.run(["chown", "-hR", f"{NOBODY}:{NOBODY}", str(path)], check=True)

        await asyncio.to_thread(give)

    async def run(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> int:
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return await super().run([*drop, *argv], cwd, env, on_line)


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="the user's side needs root to set up")
@pytest.mark.usefixtures("pypi")
async def test_what_the_daemon_writes_is_out_of_the_build_users_reach(
    source_tar: Callable[[dict[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # Debian's python3, which nobody may run
    # A data dir nobody can traverse to (pytest's tmp dirs are root's 0700).
    top = Path(await asyncio.to_thread(tempfile.mkdtemp, dir="/var/tmp"))
    try:
        await asyncio.to_thread(top.chmod, 0o711)
        victim = top / "victim"
        await asyncio.to_thread(victim.write_text, "precious\n")
        # The build (as the service's user) plants links where a root write would follow them.
        plant = f"ln -s {victim} ../release.json.partial; ln -s {victim} ../../1.json.partial; true"
        files = {
            "pyproject.toml": (
                '[project]\nname = "app"\nversion = "1"\ndependencies = ["six==1.16.0"]\n'
            ),
            "app.py": APP,
        }
        builder = HostBuilder(top / "data", Interpreters(), NobodyRunner())
        source = await asyncio.to_thread(source_tar, files)
        before = os.umask(0o077)  # as under the daemon's unit (UMask=0077)
        try:
            release = await builder.build(_request(source, 1, build_cmd=plant), Collected())
        finally:
            os.umask(before)
        assert await asyncio.to_thread(victim.read_text) == "precious\n"
        manifest = await asyncio.to_thread(read_manifest, Path(release))
        assert manifest.run_cmd == "python3 app.py"
    finally:
        await asyncio.to_thread(shutil.rmtree, top, True)
