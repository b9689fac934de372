"""The `dployr` command: server-side commands (serve, migrate, backup, restore, admin)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dployr import __version__
from dployr.cli import backup, server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dployr", description="A small self-hosted deploy agent.")
    parser.add_argument("--version", action="version", version=f"dployr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server.add_commands(commands)
    backup.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except server.CommandError as err:
        print(f"dployr: {err}", file=sys.stderr)
        return err.exit_code
