"""`dployr init`: a dployr.toml from what the directory holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dployr.cli import manifest
from dployr.cli.commands import command
from dployr.cli.deploy import default_name, detect_runtime, origin
from dployr.cli.errors import USAGE, CommandError


def add_commands(commands: Any) -> None:
    init = command(
        commands,
        "init",
        run_init,
        "write a dployr.toml for this directory from what it finds there",
        "dployr init\ndployr init --name web --force",
    )
    init.add_argument("--name", help="the service (default: the directory's name)")
    init.add_argument("--force", action="store_true", help="overwrite an existing dployr.toml")


def init_text(directory: Path, name: str | None = None) -> str:
    """A dployr.toml for `directory`: what was detected, and the other keys commented out."""
    name = name or default_name(directory)
    runtime = detect_runtime(directory)
    url, branch = origin(directory)
    lines = ["# dployr.toml: `dployr deploy` reads it (README: the manifest)", f'name = "{name}"']
    if url:
        lines += ['source = "remote"', f"remote = {json.dumps(url)}"]
        lines += [f"branch = {json.dumps(branch)}"] if branch else []
    else:
        lines += ['source = "upload"  # this directory, less .gitignore and .dockerignore']
    lines += [f'runtime = "{runtime}"'] if runtime else ['# runtime = "…"  # none detected']
    lines += [
        "# port = 8080            # what the app listens on ($PORT is set to it)",
        '# domain = "app.example.com"',
        '# health_check = { path = "/", timeout = 60 }',
        '# resources = { cpus = 0.5, memory = "512m" }',
        '# secret_env = ["API_KEY"]  # values from your shell, never from this file',
        "",
        "[env]",
        '# MODE = "production"',
        "",
    ]
    return "\n".join(lines)


def run_init(args: argparse.Namespace) -> int:
    path = Path(manifest.FILENAME)
    if path.exists() and not args.force:
        raise CommandError(f"{path.resolve()} exists: --force to overwrite it", USAGE)
    if args.name:
        manifest.check({"name": args.name})
    text = init_text(Path.cwd(), args.name)
    path.write_text(text)
    runtime = detect_runtime(Path.cwd())
    print(f"wrote {path.resolve()} (runtime {runtime or 'not detected'}); "
          "edit it, then `dployr deploy`")  # fmt: skip
    return 0
