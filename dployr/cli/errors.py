"""What a `dployr` command can end with: the exit codes (README "Exit codes") and CommandError."""

from __future__ import annotations

OK = 0
FAILED = 1  # the API refused, or a deployment did not go live
USAGE = 2  # bad flags or arguments (argparse uses 2 too), a bad manifest or config file
UNREACHABLE = 3  # no daemon answered at the URL
AUTH = 4  # not logged in, or the token is wrong, expired or revoked
INTERRUPTED = 130  # Ctrl-C


class CommandError(Exception):
    """One clear line for the terminal (no traceback) and the exit code to end with."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
