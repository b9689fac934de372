"""`dployr completion bash`: run the generated script in a real bash and complete with it."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from dployr.cli import build_parser
from dployr.cli.completion import walk
from tests.conftest import require_tool
from tests.integration.conftest import dployr_command

MARK = "--- done ---"


def complete(*lines: str) -> list[list[str]]:
    """What bash offers after each command line (the last word is the one being completed;
    a line ending in a space completes an empty word), with the script `dployr completion
    bash` prints, sourced as `eval "$(dployr completion bash)"` does."""
    require_tool("bash", "apt-get install bash")
    generated = subprocess.run(
        dployr_command("completion", "bash"), capture_output=True, text=True, check=True
    ).stdout
    calls = []
    for line in lines:
        words = line.split(" ")
        calls.append(
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
            f"COMP_CWORD={len(words) - 1}; COMPREPLY=(); _dployr; "
            f'printf "%s\\n" "${{COMPREPLY[@]}}" "{MARK}"'
        )
    program = generated + "\n" + "\n".join(calls) + "\n"
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    answers = done.stdout.split(MARK + "\n")
    assert len(answers) == len(lines) + 1, done.stdout
    return [sorted(filter(None, answer.splitlines())) for answer in answers[:-1]]


def test_commands_subcommands_and_flags_complete() -> None:
    services = walk(build_parser())["dployr services"].subcommands
    ser, servi, services_l, ls_flags, root = complete(
        "dployr ser", "dployr servi", "dployr services l", "dployr services ls --p", "dployr "
    )
    assert ser == ["serve", "services"] and servi == ["services"]
    assert services_l == ["logs", "ls"]
    assert services_l == sorted(name for name in services if name.startswith("l"))
    assert ls_flags == ["--page", "--per-page"]
    assert {"status", "instances", "completion", "login"} <= set(root)


def test_flag_values_and_choices() -> None:
    after_url, shell, after_json = complete(
        "dployr --url http://x services l",  # the flag's value is skipped, not a command
        "dployr completion ",
        "dployr --json st",
    )
    assert "ls" in after_url
    assert shell == ["bash", "zsh"]
    assert after_json == ["status"]


def test_every_command_of_the_parser_completes() -> None:
    """From the tree itself: every command path offers all its subcommands and flags."""
    levels = walk(build_parser())
    lines = [f"{path} " for path in levels] + [f"{path} -" for path in levels]
    answers = complete(*lines)
    offered = dict(zip(lines, answers, strict=True))
    assert len(levels) > 20
    for path, level in levels.items():
        assert offered[f"{path} "] == sorted(level.subcommands + level.choices) or (
            not level.subcommands and not level.choices and offered[f"{path} "] == []
        ), path
        assert offered[f"{path} -"] == sorted(level.flags), path
        assert "-h" in level.flags and "--help" in level.flags


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_scripts_parse_and_name_every_command(shell: str) -> None:
    out = subprocess.run(
        dployr_command("completion", shell), capture_output=True, text=True, check=True
    ).stdout
    for path in walk(build_parser()):
        assert f"{shlex.quote(path)})" in out
    if shell == "bash":
        subprocess.run(["bash", "-n", "-c", out], check=True, timeout=30)
    done = subprocess.run(dployr_command("completion", "fish"), capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'fish'" in done.stderr


def test_zsh_loads_the_script_and_offers_the_same_words(tmp_path: Path) -> None:
    """In a real zsh: the script loads compinit itself, registers `_dployr` for `dployr`, and
    finds the same command path. `compadd` (which zsh's widgets filter by the typed prefix)
    is replaced by a function printing what it is given: this checks what the script
    offers, outside a terminal."""
    require_tool("zsh", "scripts/provision installs it")
    generated = subprocess.run(
        dployr_command("completion", "zsh"), capture_output=True, text=True, check=True
    ).stdout
    program = generated + "\n".join([
        "print -r -- \"registered: $_comps[dployr]\"",
        "compadd() { shift; print -r -- \"offer: $*\" }",
        "_files() { print -r -- files }",
        "t() { words=(\"$@\"); CURRENT=$#words; _dployr }",
        "t dployr servi", "t dployr services l", "t dployr --url http://x services ls --p",
        "t dployr completion ''", "t dployr backup ''",
    ])  # fmt: skip
    done = subprocess.run(
        ["zsh", "-f", "-c", program],
        env={**os.environ, "ZDOTDIR": str(tmp_path)},  # compinit's .zcompdump goes there
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    levels = walk(build_parser())
    assert lines == [
        "registered: _dployr",
        "offer: " + " ".join(levels["dployr"].subcommands),
        "offer: " + " ".join(levels["dployr services"].subcommands),
        "offer: " + " ".join(levels["dployr services ls"].flags),
        "offer: bash zsh",
        "files",
    ]
