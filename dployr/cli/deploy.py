"""`dployr deploy`: flags and dployr.toml → a deployment (sent or uploaded), followed through."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, cast

from dployr.cli import manifest
from dployr.cli.client import Api
from dployr.cli.commands import api, command
from dployr.cli.errors import USAGE, CommandError
from dployr.cli.finish import finish, follow_flags

EXAMPLE = """dployr init && dployr deploy          # this directory, as dployr.toml says
dployr deploy --name web --source remote --remote https://github.com/me/web --branch main
dployr deploy --name api --image nginx:1.27 --port 80 --domain api.example.com
API_KEY=… dployr deploy --secret-env API_KEY --env MODE=prod --no-follow
dployr deploy --target swarm --replicas 3 --placement node.labels.tier==web"""


def add_commands(commands: Any) -> None:
    deploy = command(
        commands,
        "deploy",
        run_deploy,
        "deploy this directory (dployr.toml, flags win) and follow it until it is live",
        EXAMPLE,
    )
    deploy.add_argument("--manifest", type=Path, help="the manifest (default: ./dployr.toml)")
    body = deploy.add_argument_group("the deployment (each also a dployr.toml key)")
    body.add_argument("--name", help="the service (default: the directory's name)")
    body.add_argument("--project", dest="project_id", help="a project id (prj_…)")
    body.add_argument("--source", choices=manifest.SOURCES, help="default: see README")
    body.add_argument("--remote", help="a git URL (source remote)")
    body.add_argument("--branch", help="the branch to build (default: the remote's HEAD)")
    body.add_argument("--credential", dest="credential_id", help="for a private repo (crd_…)")
    body.add_argument("--path", help="a directory on the daemon's host (source local, admin)")
    body.add_argument("--image", help="an existing image (source image)")
    body.add_argument("--runtime", help="nodejs, python, go, rust, static, dockerfile, image")
    body.add_argument("--version", dest="runtime_version", help="the runtime's version")
    body.add_argument("--target", help="docker, systemd, process or swarm")
    body.add_argument("--port", type=_port, help="the port the app listens on; none: a worker")
    body.add_argument("--build-cmd", help="the build command")
    body.add_argument("--run-cmd", help="the start command")
    body.add_argument("--env", action="append", metavar="KEY=VALUE", help="repeatable")
    body.add_argument(
        "--secret-env",
        action="append",
        metavar="KEY",
        help="a secret variable whose value is read from this shell's environment (repeatable)",
    )
    body.add_argument("--domain", help="route this domain to the service when it is live")
    body.add_argument("--health-path", help="the health check's path (e.g. /health)")
    body.add_argument("--health-timeout", type=int, help="seconds to become healthy")
    body.add_argument("--cpus", type=float, help="CPU limit (e.g. 0.5)")
    body.add_argument("--memory", help="memory limit (e.g. 512m)")
    body.add_argument("--volume", action="append", metavar="NAME:PATH", help="repeatable")
    body.add_argument(
        "--strategy",
        choices=("start-first", "stop-first"),
        help="start-first (default: no downtime) or stop-first (one instance on a volume)",
    )
    body.add_argument(
        "--replicas", type=int, help="swarm target: how many tasks run the release (1-100)"
    )
    body.add_argument(
        "--placement",
        action="append",
        metavar="EXPR",
        help="swarm target: a constraint on the nodes, like node.labels.tier==web (repeatable)",
    )
    body.add_argument(
        "--auto-deploy",
        choices=("off", "webhook", "poll"),
        help="redeploy on a git push hook (webhook, the default), by polling, or never",
    )
    follow_flags(deploy)


def _port(value: str) -> int | bool:
    if value.lower() in ("none", "worker"):
        return False
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a port 1-65535, or none for a worker") from None


UPLOAD_ANSWER_SECONDS = 600


def run_deploy(args: argparse.Namespace) -> int:
    directory, fields = gather(args)
    body = manifest.request_body(fields)
    out = sys.stderr if args.json else sys.stdout
    if names := fields.get("secret_env"):
        # A manifest came with the code: say which of the shell's variables it sends.
        print(f"sending as secrets, from this shell: {', '.join(names)}", file=out)
    source = choose_source(body, directory)
    client = api(args)
    if source == "upload":
        deployment = upload(client, body, directory, out)
    else:
        deployment = client.post("/deployments", body)
    print(f"deployment {deployment['id']}: {body['name']} release {deployment['number']} "
          f"(source {source}, runtime {deployment['runtime']})", file=out, flush=True)  # fmt: skip
    return finish(args, client, deployment)


def gather(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The manifest's fields with the flags' over them, all checked; and the directory."""
    path = args.manifest or Path(manifest.FILENAME)
    fields = manifest.load(path) if args.manifest or path.is_file() else {}
    directory = path.resolve().parent
    flags = manifest.check(_flag_fields(args))
    for key in ("health_check", "resources"):
        if key in flags:
            flags[key] = {**fields.get(key, {}), **flags[key]}
    if "env" in flags:
        flags["env"] = {**fields.get("env", {}), **flags["env"]}
    if "secret_env" in flags:
        flags["secret_env"] = [*fields.get("secret_env", []), *flags["secret_env"]]
    fields.update(flags)
    if "name" not in fields:
        fields["name"] = manifest.check({"name": default_name(directory)})["name"]
    return directory, fields


def _flag_fields(args: argparse.Namespace) -> dict[str, Any]:
    plain = ("name", "project_id", "source", "remote", "branch", "credential_id", "path", "image",
             "runtime", "target", "port", "build_cmd", "run_cmd", "domain", "strategy",
             "auto_deploy", "replicas", "placement")  # fmt: skip
    out: dict[str, Any] = {k: getattr(args, k) for k in plain if getattr(args, k) is not None}
    if args.runtime_version is not None:
        out["version"] = args.runtime_version
    if args.env:
        out["env"] = dict(_pair(item, "=", "--env", "KEY=VALUE") for item in args.env)
    if args.secret_env:
        out["secret_env"] = args.secret_env
    health = {"path": args.health_path, "timeout": args.health_timeout}
    if any(v is not None for v in health.values()):
        out["health_check"] = {k: v for k, v in health.items() if v is not None}
    resources = {"cpus": args.cpus, "memory": args.memory}
    if any(v is not None for v in resources.values()):
        out["resources"] = {k: v for k, v in resources.items() if v is not None}
    if args.volume:
        out["volumes"] = [
            dict(zip(("name", "path"), _pair(v, ":", "--volume", "NAME:PATH"), strict=True))
            for v in args.volume
        ]
    return out


def _pair(item: str, sep: str, flag: str, shape: str) -> tuple[str, str]:
    key, found, value = item.partition(sep)
    if not found or not key:
        raise CommandError(f"{flag} {item!r}: give {shape}", USAGE)
    return key, value


def default_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.name.lower()).strip("-")[:63]
    return name or "app"


def git(directory: Path, *argv: str) -> str | None:
    """A git answer about `directory`, or None (no git, not a work tree, no such remote)."""
    import subprocess

    try:
        done = subprocess.run(["git", *argv], cwd=directory, capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def origin(directory: Path) -> tuple[str | None, str | None]:
    """The directory's git remote `origin` and current branch, when it has them and is the
    top of its work tree (a subdirectory of a monorepo is uploaded: the remote would build
    the whole repository)."""
    top = git(directory, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != directory.resolve():
        return None, None
    url = git(directory, "remote", "get-url", "origin")
    branch = git(directory, "symbolic-ref", "--short", "-q", "HEAD") if url else None
    return url, branch


# What a directory holds → its runtime; the first match wins (its own Dockerfile says the most).
DETECT = (
    ("Dockerfile", "dockerfile"),
    ("package.json", "nodejs"),
    ("requirements.txt", "python"),
    ("pyproject.toml", "python"),
    ("go.mod", "go"),
    ("Cargo.toml", "rust"),
    ("index.html", "static"),
)


def detect_runtime(directory: Path) -> str | None:
    return next((rt for name, rt in DETECT if (directory / name).is_file()), None)


def choose_source(body: dict[str, Any], directory: Path) -> str:
    """The source the request names, or else what it gives (image, remote, path), or else
    the directory's git remote `origin`, or else an upload of the directory. Sets body's."""
    source = body.get("source")
    url, branch = (None, None) if body.get("remote") or source not in (None, "remote") else (
        origin(directory))  # fmt: skip
    if source is None:
        if body.get("image"):
            source = "image"
        elif body.get("remote") or url:
            source = "remote"
        elif body.get("path"):
            source = "local"
        else:
            source = "upload"
    if source == "remote" and not body.get("remote"):
        if not url:
            raise CommandError(
                f"source remote: give remote (or --remote); {directory} has no git remote origin",
                USAGE,
            )
        body["remote"] = url
        body.setdefault("branch", branch)
    body["source"] = source
    # The code is this directory's (uploaded, or its origin): its files say the runtime.
    ours = source == "upload" or (url is not None and body.get("remote") == url)
    detected = detect_runtime(directory) if ours and not body.get("runtime") else None
    if detected:
        body["runtime"] = detected
    return str(source)


def upload(client: Api, body: dict[str, Any], directory: Path, out: Any) -> dict[str, Any]:
    """POST /deployments/upload: the `deployment` JSON part and the `archive` part, streamed
    from a temp file with its length computed up front."""
    from dployr.cli import archive

    client.get("/auth/me")  # renews an expired access token now: a stream cannot be re-sent
    built = archive.build(directory)
    try:
        for name in built.skipped:
            print(f"not sent (not a file or a link): {name}", file=out)
        print(f"uploading {directory}: {built.files} files, {_size(built.bytes)} "
              f"({_size(built.size)} compressed)", file=out, flush=True)  # fmt: skip
        stream = Multipart(json.dumps(body).encode(), built.path)
        # The daemon checks the whole archive before it answers: a big one takes a while, and
        # a client that gave up early would not know its deployment was made.
        with client.open(
            "POST", "/deployments/upload", None, cast(Any, stream), stream.content_type, True,
            timeout=UPLOAD_ANSWER_SECONDS, headers={"Content-Length": str(stream.length)},
        ) as response:  # fmt: skip
            result: dict[str, Any] = client.decode(response.read(), "/deployments/upload")
        return result
    finally:
        built.path.unlink(missing_ok=True)


class Multipart:
    """A multipart/form-data body read from memory (the JSON) and the archive file, in turn."""

    def __init__(self, deployment: bytes, archive: Path) -> None:
        import uuid

        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="deployment"\r\n'
            "Content-Type: application/json\r\n\r\n".encode()
            + deployment
            + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="archive"; '
            'filename="app.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n'.encode()
        )
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self._head) + archive.stat().st_size + len(self._tail)
        self._parts: list[bytes | Path] = [self._head, archive, self._tail]
        self._file: Any = None

    def read(self, size: int = -1) -> bytes:
        while self._parts or self._file:
            if self._file is not None:
                chunk = self._file.read(size if size > 0 else 1 << 20)
                if chunk:
                    return bytes(chunk)
                self._file.close()
                self._file = None
                continue
            part = self._parts.pop(0)
            if isinstance(part, Path):
                self._file = part.open("rb")
                continue
            return part
        return b""


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
