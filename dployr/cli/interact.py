"""What a client command asks of the person at the terminal: a yes before removing data, a
secret read from standard input (never from argv), and a wait on background work."""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dployr.cli.errors import FAILED, USAGE, CommandError

POLL_SECONDS = 0.5


def yes_flag(parser: Any) -> None:
    parser.add_argument(
        "-y", "--yes", action="store_true", help="do not ask (needed without a terminal)"
    )


def confirm(args: Any, question: str) -> None:
    """Go on with --yes, or when the person at the terminal answers y. Without a terminal and
    without --yes, refuse (exit 2): a script must say it means it."""
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{question}: refusing without --yes (stdin is not a terminal)", USAGE)
    # The question on stderr: stdout may be piped into another program.
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CommandError("nothing done", FAILED)


def read_secret(what: str, path: str | None = None) -> str:
    """A secret from a file, else standard input: all of it, less one trailing newline (what
    `echo` and a file's last line add). On a terminal it is asked for without echo."""
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"cannot read the {what} from {path}: {err}", USAGE) from None
    elif sys.stdin.isatty():
        value = getpass.getpass(f"{what.capitalize()}: ")
    else:
        value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    if not value:
        raise CommandError(f"no {what} given (pipe it on standard input)", USAGE)
    return value


def human_bytes(size: Any) -> str | None:
    if not isinstance(size, int):
        return None
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return None  # not reached


def wait_for(
    read: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    describe: Callable[[dict[str, Any]], str],
    timeout: float,
) -> dict[str, Any]:
    """Read `read()` until `done` (then its last value), showing `describe` of it on stderr: a
    spinner on a terminal, one line per change otherwise. Ctrl-C stops the waiting only (the
    daemon's work goes on): main() turns it into exit 130."""
    started = time.monotonic()
    current = read()
    if done(current):
        return current
    if sys.stderr.isatty():
        from dployr.cli.output import console

        with console(stderr=True).status(describe(current)) as spinner:
            while not done(current):
                current = _next(read, started, timeout, current)
                spinner.update(f"{describe(current)} ({time.monotonic() - started:.0f}s)")
        return current
    shown = describe(current)
    print(shown, file=sys.stderr, flush=True)
    while not done(current):
        current = _next(read, started, timeout, current)
        if (line := describe(current)) != shown:
            shown = line
            print(line, file=sys.stderr, flush=True)
    return current


def _next(
    read: Callable[[], dict[str, Any]], started: float, timeout: float, last: dict[str, Any]
) -> dict[str, Any]:
    if time.monotonic() - started > timeout:
        raise CommandError(
            f"still {last.get('status')} after {timeout:.0f}s: it goes on in the daemon "
            "(look again later, or pass a longer --timeout)"
        )
    time.sleep(POLL_SECONDS)
    return read()
