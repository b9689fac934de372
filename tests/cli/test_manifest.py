"""dployr.toml, `dployr init` and the upload archive: pure logic on temp dirs, no daemon."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dployr.cli import archive, deploy, main, manifest
from dployr.cli.errors import CommandError

DOWN = ("--url", "http://127.0.0.1:1", "--token", "x")  # nothing is sent before the checks

FULL = """
name = "web"
project_id = "prj_1"
source = "remote"
remote = "https://example.com/me/web.git"
branch = "main"
credential_id = "crd_1"
runtime = "nodejs"
version = 20
target = "docker"
port = 3000
build_cmd = "npm ci"
run_cmd = "npm start"
domain = "web.example.com"
secret_env = ["API_KEY"]
strategy = "stop-first"
auto_deploy = "poll"
replicas = 3
placement = ["node.labels.tier==web", "node.role!=manager"]
health_check = { path = "/health", timeout = 30 }
resources = { cpus = 0.5, memory = "512m" }

[env]
MODE = "production"

[[volumes]]
name = "data"
path = "/app/data"
"""


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit:
            code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_every_key_reaches_the_request_and_secrets_come_from_the_shell(tmp_path: Path) -> None:
    path = tmp_path / "dployr.toml"
    path.write_text(FULL)
    fields = manifest.load(path)
    body = manifest.request_body(fields, {"API_KEY": "s3cret"})
    assert body["version"] == "20" and body["port"] == 3000
    assert body["env"] == {"MODE": "production", "API_KEY": {"value": "s3cret", "secret": True}}
    assert body["volumes"] == [{"name": "data", "path": "/app/data"}]
    assert body["health_check"] == {"path": "/health", "timeout": 30}
    assert body["replicas"] == 3
    assert body["placement"] == ["node.labels.tier==web", "node.role!=manager"]
    assert "secret_env" not in body and "s3cret" not in path.read_text()
    with pytest.raises(CommandError, match="API_KEY is not set in this shell") as missing:
        manifest.request_body(fields, {})
    assert missing.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('name = "web"\ncolour = "blue"\n', "colour: unknown key"),
        ('name = "web"\nport = "80"\n', "port: must be a port 1-65535"),
        ('name = "web"\nversion = 3.10\n', 'version: must be a string: write version = "3.1"'),
        ('name = "web"\n[health_check]\ninterval = 5\n', "health_check.interval: unknown key"),
        ('name = "web"\n[env]\nMODE = 1\n', "env.MODE: must be a string"),
        ('name = "Web App"\n', "name: must be lower-case"),
        ('name = "web"\nsource = "ftp"\n', "source: must be one of remote, local, image, upload"),
        ('name = "web"\n[[volumes]]\nname = "data"\n', "volumes[0]: needs a path"),
        ('name = "web\n', "not valid TOML"),
        ('name = "web"\nreplicas = 0\n', "replicas: must be a number of tasks 1-100"),
        ('name = "web"\nreplicas = "2"\n', "replicas: must be an integer"),
        ('name = "web"\nplacement = "node.role==worker"\n', "placement: must be a list"),
        ('name = "web"\nplacement = ["node.role = worker"]\n', "is not a Swarm constraint"),
    ],
)
def test_a_bad_manifest_exits_2_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "dployr.toml"
    path.write_text(text)
    code, out, err = _run("deploy", "--manifest", str(path), *DOWN)
    assert code == 2, (out, err)
    assert err.startswith(f"dployr: {path}: ") and named in err, err
    assert "Traceback" not in err


def test_flags_win_over_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "dployr.toml"
    path.write_text(FULL)
    monkeypatch.chdir(tmp_path)
    args = main_parser().parse_args(
        ["deploy", "--port", "none", "--env", "MODE=dev", "--env", "X=1", "--memory", "1g",
         "--volume", "cache:/cache", "--version", "22", "--replicas", "2",
         "--placement", "node.role==worker", "--placement", "node.labels.zone!=b"]
    )  # fmt: skip
    directory, fields = deploy.gather(args)
    assert directory == tmp_path.resolve()
    assert fields["port"] is None  # a worker
    assert fields["env"] == {"MODE": "dev", "X": "1"}
    assert fields["resources"] == {"cpus": 0.5, "memory": "1g"}
    assert fields["volumes"] == [{"name": "cache", "path": "/cache"}]
    assert fields["version"] == "22" and fields["name"] == "web"
    assert fields["replicas"] == 2  # the flags' constraints replace the manifest's
    assert fields["placement"] == ["node.role==worker", "node.labels.zone!=b"]
    bad = main_parser().parse_args(["deploy", "--replicas", "101"])
    with pytest.raises(CommandError, match="replicas: must be a number of tasks 1-100"):
        deploy.gather(bad)


def main_parser() -> object:
    from dployr.cli import build_parser

    return build_parser()


def test_the_source_follows_what_the_directory_has(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    assert deploy.choose_source({"name": "a"}, bare) == "upload"
    (bare / "go.mod").write_text("module a\n")
    body: dict[str, object] = {"name": "a"}
    assert deploy.choose_source(body, bare) == "upload" and body["runtime"] == "go"  # detected
    body = {"name": "a", "remote": "https://x.test/other"}  # not this directory's code
    assert deploy.choose_source(body, bare) == "remote" and "runtime" not in body
    assert deploy.choose_source({"name": "a", "image": "nginx"}, bare) == "image"
    with pytest.raises(CommandError, match="has no git remote origin"):
        deploy.choose_source({"name": "a", "source": "remote"}, bare)
    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "trunk"], ["remote", "add", "origin", "https://x.test/r"]):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    body = {"name": "a"}
    assert deploy.choose_source(body, repo) == "remote"
    assert body["remote"] == "https://x.test/r" and body["branch"] == "trunk"
    assert deploy.choose_source({"name": "a", "source": "upload"}, repo) == "upload"
    (repo / "services" / "api").mkdir(parents=True)  # a monorepo's app: its own files only
    assert deploy.choose_source({"name": "a"}, repo / "services" / "api") == "upload"


@pytest.mark.parametrize(
    ("files", "runtime"),
    [
        (["package.json"], "nodejs"),
        (["pyproject.toml"], "python"),
        (["go.mod", "index.html"], "go"),
        (["Dockerfile", "package.json"], "dockerfile"),
        (["index.html"], "static"),
    ],
)
def test_init_detects_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str], runtime: str
) -> None:
    app = tmp_path / "My_App"
    app.mkdir()
    for name in files:
        (app / name).write_text("{}\n")
    monkeypatch.chdir(app)
    code, out, _ = _run("init")
    assert code == 0 and f"runtime {runtime}" in out
    fields = manifest.load(app / "dployr.toml")  # what init writes, deploy reads
    assert fields == {"name": "my-app", "source": "upload", "runtime": runtime, "env": {}}
    code, _, err = _run("init")
    assert code == 2 and "--force" in err
    assert _run("init", "--force", "--name", "other")[0] == 0
    assert manifest.load(app / "dployr.toml")["name"] == "other"


# -- the archive -----------------------------------------------------------------------------------

TREE = {
    ".gitignore": "*.log\n/build/\nnode_modules\n!keep.log\ndocs/*.tmp\n",
    ".dockerignore": "secrets\n**/*.bak\n",
    "app.py": "print()\n",
    "keep.log": "kept\n",
    "debug.log": "no\n",
    "build/out.bin": "no\n",
    "src/build/mod.py": "yes: /build/ is anchored to the root\n",
    "src/node_modules/x.js": "no\n",
    "src/.gitignore": "local.txt\n",
    "src/local.txt": "no\n",
    "local.txt": "yes: src/.gitignore is for src/ only\n",
    "docs/a.tmp": "no\n",
    "docs/deep/b.tmp": "yes: docs/*.tmp is one level\n",
    "secrets/key": "no: .dockerignore\n",
    "src/old.bak": "no: .dockerignore\n",
}
KEPT = {".dockerignore", ".gitignore", "app.py", "keep.log", "src/build/mod.py", "src/.gitignore",
        "local.txt", "docs/deep/b.tmp"}  # fmt: skip


def _tree(root: Path) -> Path:
    for name, text in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_archive_honours_gitignore_and_dockerignore_without_git(tmp_path: Path) -> None:
    root = _tree(tmp_path / "app")
    (root / ".git").mkdir()  # a stray .git that is no work tree: left out all the same
    (root / ".git" / "config").write_text("x")
    built = archive.build(root)
    try:
        with tarfile.open(built.path) as tar:
            files = {m.name for m in tar.getmembers() if m.isfile()}
            assert tar.extractfile("app.py").read() == b"print()\n"  # type: ignore[union-attr]
            assert all(m.uid == 0 and m.uname == "" for m in tar.getmembers())
        assert files == KEPT
        assert built.files == len(KEPT)
        assert built.bytes == sum(len(TREE[n]) for n in KEPT)
    finally:
        built.path.unlink()


def test_git_and_the_matcher_agree(tmp_path: Path) -> None:
    """In a work tree, git itself says what is ignored; the matcher must say the same."""
    root = _tree(tmp_path / "repo")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert archive._git_files(root) is not None
    assert set(archive.select_files(root)) == KEPT
    assert archive.walk_files(root) == archive._git_files(root)


def test_a_link_out_of_the_directory_stops_the_upload(tmp_path: Path) -> None:
    root = _tree(tmp_path / "app")
    (root / "inside").symlink_to("app.py")
    built = archive.build(root)
    built.path.unlink()
    (root / "outside").symlink_to("/etc/passwd")
    with pytest.raises(CommandError, match="outside is a link to /etc/passwd") as err:
        archive.build(root)
    assert err.value.exit_code == 2


def test_the_multipart_body_streams_both_parts(tmp_path: Path) -> None:
    data = tmp_path / "a.tar.gz"
    data.write_bytes(b"\x1f\x8b" + os.urandom(300_000))
    body = deploy.Multipart(b'{"name": "a"}', data)
    chunks = []
    while chunk := body.read(8192):
        chunks.append(chunk)
    raw = b"".join(chunks)
    assert len(raw) == body.length
    assert max(len(c) for c in chunks) <= 8192 + 200  # never the whole file at once
    assert b'name="deployment"' in raw and b'{"name": "a"}' in raw
    assert data.read_bytes() in raw and raw.endswith(b"--\r\n")


def test_deploy_help_and_a_manifest_error_import_no_daemon_library(tmp_path: Path) -> None:
    from tests.cli.test_startup import _loaded

    assert _loaded("deploy", "--help") == set()
    assert _loaded("deployments", "logs", "--help") == set()
    bad = tmp_path / "dployr.toml"
    bad.write_text("colour = 1\n")
    assert _loaded("deploy", "--manifest", str(bad), *DOWN) == set()
