"""Server-side commands: serve, migrate, admin create-user (backup and restore: cli/backup.py)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.cli.errors import USAGE, CommandError

if TYPE_CHECKING:
    from dployr.config import Config

# The daemon's modules are imported by the commands that run them: `dployr --help` and the
# client commands never pay for aiohttp, aiosqlite or the Docker SDK.
_LOGGER = logging.getLogger(__name__)


def add_commands(commands: Any) -> None:
    serve = server_command(
        commands,
        "serve",
        "run the daemon in the foreground",
        "dployr serve\ndployr serve --config /etc/dployr/config.toml --port 7870 --log-format json",
    )
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument("--log-format", choices=("text", "json"), help="log line format")
    serve.set_defaults(run=run_serve)

    migrate = server_command(
        commands, "migrate", "apply pending database migrations", "dployr migrate"
    )
    migrate.set_defaults(run=run_migrate)

    admin = commands.add_parser("admin", help="administration on this host")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    create = server_command(
        admin_commands,
        "create-user",
        "create a user (admin by default)",
        "dployr admin create-user --email me@example.com --name Me   # asks for the password\n"
        'echo "$PASSWORD" | dployr admin create-user --email ci@example.com --name CI '
        "--role user --password-stdin",
    )
    create.add_argument("--email", required=True, help="their email, to log in with")
    create.add_argument("--name", required=True, help="their display name")
    create.add_argument("--username", help="an optional username (default: none)")
    create.add_argument(
        "--role", choices=("admin", "user"), default="admin", help="admin (default) or user"
    )
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.set_defaults(run=run_create_user)


def server_command(commands: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A command run on the daemon's host (reads its config): `help` is its one line,
    `example` one or more lines shown at the end of its --help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=help,
        epilog="example:\n  " + "\n  ".join(example.splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arg(parser)
    return parser


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config (default /etc/dployr/config.toml)")


def load(args: argparse.Namespace) -> Config:
    from dployr.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as err:
        raise CommandError(f"configuration error: {err}", exit_code=USAGE) from None


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from aiohttp import web

    from dployr.app import create_app
    from dployr.datadir import DataDirBusy
    from dployr.logs import configure_logging
    from dployr.sd_notify import notify
    from dployr.store.db import MigrationError

    # What the daemon writes (its database, logs, keys) is its own, however it was started
    # (the unit says UMask=0077 too): apps' users reach the data dir (0711 for the systemd
    # target), never its files. Files others must read are given their mode explicitly.
    os.umask(0o077)
    config = load(args)
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("log_format", args.log_format))
        if v is not None
    }
    if overrides:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
    configure_logging(config.server.log_level, config.server.log_format)

    def listening(message: str) -> None:
        # run_app calls its `print` once every socket listens: that is when systemd (the unit's
        # Type=notify) may call the daemon started.
        notify("READY=1\nSTATUS=" + message.splitlines()[0].strip("= "))

    try:
        web.run_app(
            create_app(config),
            host=config.server.host,
            port=config.server.port,
            print=listening,
            access_log=None,
            shutdown_timeout=config.server.shutdown_timeout,
        )
    except MigrationError as err:
        raise CommandError(f"database migration failed, not starting: {err}") from None
    except DataDirBusy as err:
        raise CommandError(f"cannot start: {err}") from None
    except OSError as err:  # the port is taken, or the data dir is not writable
        raise CommandError(f"cannot start: {err}") from None
    _LOGGER.info("stopped")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    import asyncio

    from dployr.store.db import Database, MigrationError

    config = load(args)

    async def migrate() -> None:
        config.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = await Database.open(config.db_path)
        await db.close()

    try:
        asyncio.run(migrate())
    except MigrationError as err:
        raise CommandError(str(err)) from None
    print(f"database {config.db_path} is up to date")
    return 0


def run_create_user(args: argparse.Namespace) -> int:
    import asyncio

    from dployr.auth.passwords import PasswordHasher, check_password_rules
    from dployr.errors import DployrError
    from dployr.store import users
    from dployr.store.db import Database, MigrationError

    config = load(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the passwords differ")

    async def create() -> users.User:
        check_password_rules(password)
        config.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = await Database.open(config.db_path)
        try:
            hashed = await PasswordHasher(config.auth.bcrypt_rounds).hash(password)
            return await users.create_user(
                db,
                name=args.name,
                email=args.email.strip().lower(),
                password_hash=hashed,
                username=args.username,
                role=args.role,
            )
        finally:
            await db.close()

    try:
        user = asyncio.run(create())
    except DployrError as err:
        raise CommandError(err.message) from None
    except MigrationError as err:
        raise CommandError(str(err)) from None
    print(f"created {user.role} {user.email} ({user.id})")
    return 0
