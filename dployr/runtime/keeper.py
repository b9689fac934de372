"""The keeper: a small sh that runs a command as the leader of its own process group and takes
the whole group down when the daemon dies, so no app or build outlives the process target."""

from __future__ import annotations

import shutil

# Run as `sh -c KEEPER keeper ARGV...` in a new session. On TERM (the daemon's stop, or the
# parent-death signal setpriv asked for) it sends TERM to its group, and KILL once the command
# ended or KEEPER_GRACE seconds passed. It exits with the command's status otherwise.
# No user string is in it: the command comes as its arguments.
KEEPER_GRACE = 10
SETPRIV = shutil.which("setpriv")  # once, at import: not a file lookup on the event loop
KEEPER = (
    'trap \'trap "" TERM INT HUP; kill -TERM 0; '
    f'(sleep {KEEPER_GRACE}; kill -KILL 0) & wait "$child"; kill -KILL 0\' TERM INT HUP\n'
    '"$@" &\n'
    "child=$!\n"
    'wait "$child"\n'
)


def kept(argv: list[str]) -> list[str]:
    """`argv` under the keeper, with the parent-death signal set when util-linux's setpriv is
    there (else the keeper still stops with the daemon's stop, and a restart finds leftovers)."""
    prefix = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
    return [*prefix, "sh", "-c", KEEPER, "keeper", *argv]
