"""Every command's --help names every flag with a line of help and ends with an example (the
commands other modules add included: the test walks the whole parser)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from dployr.cli import build_parser


def commands(
    parser: argparse.ArgumentParser, path: str = "dployr"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something (the leaves of the tree), depth first."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from commands(sub, f"{path} {name}")


def test_every_command_has_an_example_and_help_for_every_flag() -> None:
    missing = []
    leaves = list(commands(build_parser()))
    assert len(leaves) > 15
    for path, parser in leaves:
        epilog = parser.epilog or ""
        if not epilog.startswith("example:\n  ") or "dployr " not in epilog:
            missing.append(f"{path}: no `example:` in its epilog")
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{path}: {name} has no help")
    assert missing == []


@pytest.mark.parametrize("path", ["dployr status", "dployr instances metrics"])
def test_the_help_shows_the_example(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*path.split()[1:], "--help"])
    out = capsys.readouterr().out
    assert "example:\n  dployr " in out and "--json" in out
