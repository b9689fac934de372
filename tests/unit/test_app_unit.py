"""The systemd target's files: units pass `systemd-analyze verify`, and no value (a name, a
command, an env value) adds a line or a directive to a unit or an env file."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from dployr.runtime import systemctl
from dployr.runtime.protocol import RuntimeFailure
from dployr.runtime.units import (
    Unit,
    UnsafeValue,
    install_unit,
    is_unit_name,
    memory_bytes,
    our_units,
    read_markers,
    render_env_file,
    render_unit,
    uninstall_unit,
    unit_arg,
    unit_name,
    user_name,
    write_private,
)
from tests.conftest import require_tool

HOSTILE = [
    "a\nExecStartPre=/bin/rm -rf /",
    "a\r\nUser=root",
    "line\\",  # a trailing backslash continues a line in unit files
    "quote \" and \\\" and 'single'",
    "%n %h %% specifiers",
    "$HOME ${PATH} $$ dollars",
    "`backticks` $(subshell)",
    "# comment ; semicolon",
    "[Service]",
    "\x1b[31m escape \t tab",
]


def verify(path: Path) -> str:
    """`systemd-analyze verify`'s findings (empty: none), offline, as the target runs it."""
    require_tool("systemd-analyze", "scripts/provision installs systemd")
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")


def a_unit(tmp_path: Path, **changes: object) -> Unit:
    workdir = tmp_path / "releases" / "svc_abc" / "3" / "app"
    unit = Unit(
        name=unit_name("web", 3, "0a1b2c"),
        service_name="web",
        number=3,
        agent_id="agt_1",
        service_id="svc_abc",
        deployment_id="dep_1",
        host_port=41234,
        user="dployr-abc",
        workdir=str(workdir),
        env_file=str(tmp_path / "units" / "dployr-web-3-0a1b2c.service.env"),
        command=["/bin/sh", "-c", 'exec python3 -m http.server "$PORT"'],
        cpus=0.5,
        memory="256m",
        writable=[str(workdir.parent)],
    )
    return replace(unit, **changes)  # type: ignore[arg-type]


def directives(text: str) -> list[str]:
    """The unit's non-comment lines, each `Key=` or `[Section]` (what systemd would read)."""
    return [
        line.split("=", 1)[0] + ("=" if "=" in line else "")
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_a_rendered_unit_verifies_clean_and_says_what_the_issue_asks(tmp_path: Path) -> None:
    unit = a_unit(tmp_path)
    text = render_unit(unit)
    path = tmp_path / unit.name
    path.write_text(text)
    assert verify(path) == ""
    lines = set(text.splitlines())
    for wanted in (
        "Type=exec",
        "User=dployr-abc",
        "Restart=on-failure",
        f"EnvironmentFile={unit.env_file}",
        "CPUQuota=50%",
        f"MemoryMax={256 * 1024 * 1024}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={unit.workdir} {Path(unit.workdir).parent}",
        f"WorkingDirectory={unit.workdir}",
        "WantedBy=multi-user.target",
    ):
        assert wanted in lines, wanted
    # $PORT reaches the shell, not systemd's own expansion.
    assert 'ExecStart="/bin/sh" "-c" "exec python3 -m http.server \\"$$PORT\\""' in lines
    assert read_markers(text) == {
        "agent": "agt_1",
        "service": "svc_abc",
        "deployment": "dep_1",
        "port": "41234",
    }


def test_a_volume_is_writable_and_bound_at_its_path(tmp_path: Path) -> None:
    """SPEC §14: the volume's directory in ReadWritePaths=, bound where the app expects it."""
    volume = tmp_path / "volumes" / "svc_abc" / "data"
    workdir = Path(a_unit(tmp_path).workdir)
    unit = a_unit(
        tmp_path, writable=[str(workdir.parent), str(volume)], binds=[(str(volume), "/app/data")]
    )
    text = render_unit(unit)
    path = tmp_path / unit.name
    path.write_text(text)
    assert verify(path) == ""
    lines = set(text.splitlines())
    assert f"ReadWritePaths={workdir} {workdir.parent} {volume}" in lines
    assert f"BindPaths={volume}:/app/data" in lines
    assert "BindPaths=" not in render_unit(a_unit(tmp_path))  # no volume, no bind


def test_verify_is_not_blind(tmp_path: Path) -> None:
    text = render_unit(a_unit(tmp_path)).replace("Restart=on-failure", "Restart=sometimes")
    path = tmp_path / "dployr-web-3-0a1b2c.service"
    path.write_text(text)
    assert "sometimes" in verify(path)


def test_a_tiny_cpu_limit_is_still_a_limit(tmp_path: Path) -> None:
    # 0.004 of a core rounds to 0 %: an absent CPUQuota would leave the app unlimited.
    assert "CPUQuota=1%" in render_unit(a_unit(tmp_path, cpus=0.004))


def test_no_limits_no_limit_lines(tmp_path: Path) -> None:
    text = render_unit(a_unit(tmp_path, cpus=None, memory=None, host_port=None))
    assert "CPUQuota" not in text
    assert "MemoryMax" not in text
    assert "X-Dployr-Port=\n" in text


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_command_stays_one_argument(tmp_path: Path, hostile: str) -> None:
    safe = directives(render_unit(a_unit(tmp_path)))
    if any(c in hostile for c in "\r\n\x1b"):
        with pytest.raises(UnsafeValue):
            render_unit(a_unit(tmp_path, command=["/bin/sh", "-c", hostile]))
        return
    unit = a_unit(tmp_path, command=["/bin/sh", "-c", hostile])
    text = render_unit(unit)
    assert directives(text) == safe
    path = tmp_path / unit.name
    path.write_text(text)
    assert verify(path) == ""


@pytest.mark.parametrize(
    ("word", "written"),
    [
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\dir\\", '"C:\\\\dir\\\\"'),
        ("50% of $PORT", '"50%% of $$PORT"'),
        (";", '";"'),
    ],
)
def test_exec_words_are_quoted_for_systemd(word: str, written: str) -> None:
    assert unit_arg(word) == written


@pytest.mark.parametrize(
    "changes",
    [
        {"workdir": "relative/dir"},
        {"workdir": "/srv/a dir"},
        {"workdir": "/srv/%n"},
        {"workdir": "/srv/../etc"},
        {"env_file": "/srv/x\nUser=root"},
        {"writable": ["/srv/a /etc"]},
        {"binds": [("/srv/vol:/etc", "/data")]},  # `:` separates BindPaths=' two sides
        {"binds": [("/srv/vol", "/data /etc")]},
        {"binds": [("/srv/vol", "relative")]},
        {"command": ["sh", "-c", "true"]},  # not absolute
        {"command": ["-/bin/sh", "-c", "true"]},  # a prefix that changes systemd's reading
        {"command": []},
        {"user": "root\nUser=root"},
        {"service_name": "web\nUser=root"},
        {"deployment_id": "dep\n[Service]"},
    ],
)
def test_unsafe_values_are_refused(tmp_path: Path, changes: dict[str, object]) -> None:
    with pytest.raises(UnsafeValue):
        render_unit(a_unit(tmp_path, **changes))


def test_unit_and_user_names() -> None:
    assert unit_name("web-api", 12, "a0b1c2") == "dployr-web-api-12-a0b1c2.service"
    assert is_unit_name("dployr-web-api-12-a0b1c2.service")
    for bad in ("dployr.service", "dployr-web-1.service", "dployr-Web-1-a0b1c2.service", "x"):
        assert not is_unit_name(bad)
    with pytest.raises(UnsafeValue):
        unit_name("web\n", 1, "a0b1c2")
    with pytest.raises(UnsafeValue):
        unit_name("web", 1, "../x")
    assert user_name("svc_0123456789abcdef") == "dployr-0123456789abcdef"
    with pytest.raises(UnsafeValue):
        user_name("svc_ROOT;rm")


def test_memory_sizes() -> None:
    assert memory_bytes(None) is None
    assert memory_bytes("1048576") == 1048576
    assert memory_bytes("512k") == 512 * 1024
    assert memory_bytes("2M") == 2 * 1024**2
    assert memory_bytes("1g") == 1024**3


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's reading of an EnvironmentFile= (load_env_file, for the double-quoted values
    dployr writes): `\\` escapes `" \\ $` and backtick, `\\` + newline joins lines, a newline
    inside quotes is kept, `#` lines are comments."""
    found: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == "#":
            i = text.index("\n", i) + 1
            continue
        eq = text.index("=", i)
        key = text[i:eq]
        assert "\n" not in key, key
        i = eq + 1
        assert text[i] == '"', text[i:]
        i += 1
        value = []
        while text[i] != '"':
            if text[i] == "\\":
                following = text[i + 1]
                if following in '"\\$`':
                    value.append(following)
                elif following != "\n":
                    value.append("\\" + following)
                i += 2
                continue
            value.append(text[i])
            i += 1
        found[key] = "".join(value)
        assert text[i + 1] == "\n"
        i += 2
    return found


def test_env_values_come_back_exactly_and_add_no_variable() -> None:
    env = {f"V{n}": value for n, value in enumerate(HOSTILE)}
    env["PEM"] = "-----BEGIN KEY-----\nabc\\\ndef\n-----END KEY-----\n"
    env["INJECT"] = 'x"\nEVIL=1\n#"'
    env["EMPTY"] = ""
    text = render_env_file(env)
    assert parse_env_file(text) == env
    # Every line that starts a variable starts one the app was given.
    starts = [
        line.split("=", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#") and line.split("=", 1)[0] in env
    ]
    assert starts == list(env)
    with pytest.raises(UnsafeValue):
        render_env_file({"BAD KEY": "x"})
    with pytest.raises(UnsafeValue):
        render_env_file({"K": "nul\x00byte"})


async def test_the_targets_verify_call_refuses_a_bad_unit(tmp_path: Path) -> None:
    # Skips (or fails, in CI) where systemd-analyze is missing.
    await asyncio.to_thread(verify, tmp_path / "x.service")
    unit = a_unit(tmp_path)
    text = await asyncio.to_thread(render_unit, unit)
    good = tmp_path / unit.name
    await asyncio.to_thread(good.write_text, text)
    await systemctl.verify(good)
    bad = tmp_path / "dployr-web-3-ffffff.service"
    text = text.replace("ProtectSystem=strict", "ProtectSystem=sometimes")
    await asyncio.to_thread(bad.write_text, text)
    with pytest.raises(RuntimeFailure, match="sometimes"):
        await systemctl.verify(bad)


def test_unit_files_on_disk(tmp_path: Path) -> None:
    unit_dir, env_dir = tmp_path / "system", tmp_path / "units"
    unit_dir.mkdir()
    mine = a_unit(tmp_path)
    theirs = replace(a_unit(tmp_path), name=unit_name("web", 3, "ffffff"), agent_id="agt_2")
    for unit in (mine, theirs):
        staged = tmp_path / unit.name
        write_private(staged, render_unit(unit))
        install_unit(staged, unit_dir, unit.name)
        write_private(env_dir / f"{unit.name}.env", render_env_file({"K": "v"}))
    (unit_dir / "dployr-notes.service").write_text("X-Dployr-Agent=agt_1\n")  # not our name
    assert oct((env_dir / f"{mine.name}.env").stat().st_mode & 0o777) == "0o600"
    assert oct((unit_dir / mine.name).stat().st_mode & 0o777) == "0o644"
    link = unit_dir / "multi-user.target.wants" / mine.name
    assert link.resolve() == unit_dir / mine.name  # enabled, as `systemctl enable` does
    assert [name for name, _ in our_units(unit_dir, "agt_1")] == [mine.name]
    assert our_units(unit_dir, "agt_1")[0][1]["deployment"] == "dep_1"
    uninstall_unit(unit_dir, env_dir, mine.name)
    assert not link.exists() and not (unit_dir / mine.name).exists()
    assert not (env_dir / f"{mine.name}.env").exists()
    assert [name for name, _ in our_units(unit_dir, "agt_2")] == [theirs.name]
    uninstall_unit(unit_dir, env_dir, mine.name)  # a second time: nothing to do, no error
