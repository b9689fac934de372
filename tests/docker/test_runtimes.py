"""The catalog's templates for real: go and rust render on every run and build only where
their base images exist. A python app installing its requirements from PyPI and a nodejs app
running `npm install` from the npm registry (base images from scripts/provision) are the first
deploys of test_dependency_layers.py, which then proves the dependency layer's cache."""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.config import Config, RuntimeImage
from dployr.runtime.catalog import CATALOG, base_image, render_dockerfile
from dployr.runtime.docker import DOCKERFILE_NAME
from tests.conftest import login, register
from tests.docker.conftest import deploy_config, fetch_text, make_repo, wait_done

NODE_PACKAGE = {
    "name": "node-app",
    "version": "1.0.0",
    "private": True,
    "scripts": {"start": "node server.js"},
    "dependencies": {"is-number": "7.0.0"},
}


GO_APP = {
    "go.mod": "module example.com/app\n\ngo 1.22\n",
    "main.go": """\
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "go says hi")
	})
	panic(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
}
""",
}
RUST_APP = {
    "Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n',
    "src/main.rs": """\
use std::io::{Read, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::var("PORT").expect("PORT");
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(_) => continue,
        };
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let body = "rust says hi\\n";
        let head = format!("HTTP/1.1 200 OK\\r\\nContent-Length: {}\\r\\n", body.len());
        let _ = stream.write_all(format!("{head}Connection: close\\r\\n\\r\\n{body}").as_bytes());
    }
}
""",
}


async def deploy_and_fetch(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    body: dict[str, Any],
) -> tuple[dict[str, Any], str, str]:
    """Deploy, wait (builds that download packages take a while), and GET / on the service."""
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    done = await wait_done(client, auth, (await resp.json())["id"], limit=360)
    log = await (await client.get(f"/api/v1/deployments/{done['id']}/logs", headers=auth)).json()
    text = "\n".join(line["message"] for line in log["logs"])
    assert done["status"] == "live", (done["error"], text[-3000:])
    assert [s["status"] for s in done["stages"]] == ["succeeded"] * 5, done["stages"]
    service = await (
        await client.get(f"/api/v1/services/{done['service_id']}", headers=auth)
    ).json()
    assert service["status"] == "running" and service["current_deployment"]["id"] == done["id"]
    status, page = await fetch_text(service["host_port"])
    assert status == 200, page
    return done, page, text


# -- rendering: pure, on every run ---------------------------------------------------------

INSTRUCTIONS = {"FROM", "WORKDIR", "ENV", "COPY", "RUN", "CMD"}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(instruction, argument) per line, the way Docker's parser splits them: a line that
    does not start with a known instruction, or that continues onto the next, fails."""
    found = []
    for line in dockerfile.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        assert word in INSTRUCTIONS, f"unexpected line {line!r} in\n{dockerfile}"
        assert not line.endswith("\\"), f"line continuation in {line!r}"
        found.append((word, rest))
    return found


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), argument
    return value


@pytest.mark.parametrize(
    ("runtime", "version", "image", "build", "run"),
    [
        ("go", "1.23", "golang:1.23", "go build -o /app/server .", "/app/server"),
        ("rust", "1", "rust:1-slim", "cargo build --release", "cargo run --release"),
    ],
    ids=["go", "rust"],
)
def test_go_and_rust_render_their_defaults(
    runtime: str, version: str, image: str, build: str, run: str
) -> None:
    catalog = CATALOG[runtime]
    assert catalog.default_version == version
    assert base_image(Config(), catalog, version) == image
    text = render_dockerfile(catalog, image, None, None)
    found = instructions(text)
    assert found[0] == ("FROM", image)
    runs = [exec_form(arg) for word, arg in found if word == "RUN"]
    cmds = [exec_form(arg) for word, arg in found if word == "CMD"]
    assert runs == [["/bin/sh", "-c", catalog.install_cmd], ["/bin/sh", "-c", build]]
    assert cmds == [["/bin/sh", "-c", run]]
    assert found[-1] == ("RUN", json.dumps(["/bin/sh", "-c", build]))
    # Explicit commands replace the defaults, still exec-form JSON; the dependency step stays.
    text = render_dockerfile(catalog, image, "make app", "./app --serve")
    found = instructions(text)
    assert [exec_form(a) for w, a in found if w == "RUN"][1:] == [["/bin/sh", "-c", "make app"]]
    assert [exec_form(a) for w, a in found if w == "CMD"] == [["/bin/sh", "-c", "./app --serve"]]


# What each template copies before the code, after the always-present .dployr.Dockerfile
# (bracketed letters: a wildcard that may match nothing, which a plain name may not).
MANIFESTS = {
    "python": ["requirements*.txt", "pyproject.tom[l]", "uv.loc[k]"],
    "nodejs": [
        "package*.json",
        "npm-shrinkwrap.jso[n]",
        "yarn.loc[k]",
        "pnpm-lock.yam[l]",
        ".npmr[c]",
        ".yarnr[c]",
    ],
    "go": ["go.mo[d]", "go.su[m]"],
    "rust": ["Cargo.tom[l]", "Cargo.loc[k]"],
}


@pytest.mark.parametrize("runtime", list(MANIFESTS))
@pytest.mark.parametrize("build", [None, "make all", ""], ids=["default", "custom", "none"])
def test_dependencies_install_in_their_own_layer_before_the_code(
    runtime: str, build: str | None
) -> None:
    catalog = CATALOG[runtime]
    image = base_image(Config(), catalog, catalog.default_version or "1")
    found = instructions(render_dockerfile(catalog, image, build, "serve"))
    copies = [i for i, (word, _) in enumerate(found) if word == "COPY"]
    assert len(copies) == 2, found
    manifests, code = copies
    sources = found[manifests][1].split()
    assert sources[-1] == "./" and sources[1:-1] == MANIFESTS[runtime]
    assert fnmatch.fnmatchcase(DOCKERFILE_NAME, sources[0]), sources  # always there
    assert found[code] == ("COPY", ". /app")
    # Between the two copies: the catalog's own install (never the user's command) and CMD,
    # which is config, placed before the code so that it comes from the cache too.
    assert [(w, exec_form(a)) for w, a in found[manifests + 1 : code]] == [
        ("RUN", ["/bin/sh", "-c", catalog.install_cmd]),
        ("CMD", ["/bin/sh", "-c", "serve"]),
    ]
    # After the code: the catalog's finishing step (python, nodejs: a deferred install), then
    # the build command, the deployment's or the catalog's default.
    after = [exec_form(a) for w, a in found[code + 1 :] if w == "RUN"]
    assert len(after) == len(found) - code - 1
    command = catalog.build_cmd if build is None else build
    assert after == [["/bin/sh", "-c", c] for c in (catalog.finish_cmd, command) if c]
    assert (catalog.finish_cmd is not None) == (runtime in ("python", "nodejs"))
    before = [w for w, _ in found[:manifests]]
    assert before[:2] == ["FROM", "WORKDIR"] and set(before) <= {"FROM", "WORKDIR", "ENV", "RUN"}


def test_each_manifest_pattern_matches_its_manifests_and_no_code() -> None:
    names = {
        "python": ["requirements.txt", "requirements-prod.txt", "pyproject.toml", "uv.lock"],
        "nodejs": [
            "package.json",
            "package-lock.json",
            "npm-shrinkwrap.json",
            "yarn.lock",
            "pnpm-lock.yaml",
            ".npmrc",
            ".yarnrc",
        ],
        "go": ["go.mod", "go.sum"],
        "rust": ["Cargo.toml", "Cargo.lock"],
    }
    code = ["app.py", "main.go", "server.js", "index.js", "src", "requirements", "lib.rs"]
    for runtime, patterns in MANIFESTS.items():
        for name in names[runtime]:
            assert any(fnmatch.fnmatchcase(name, p) for p in patterns), (runtime, name)
        for name in code:
            assert not any(fnmatch.fnmatchcase(name, p) for p in patterns), (runtime, name)


HOSTILE = [
    'make "all"\nRUN touch /pwned',
    'echo "]"\nCMD ["/bin/sh"]\n',
    "x\r\nUSER root\rEXPOSE 1",
    "echo <b>&amp;'quoted' \\",
    '"] \nFROM scratch\n#',
]


@pytest.mark.parametrize("runtime", ["go", "rust", "python", "nodejs", "static"])
@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_commands_reach_the_dockerfile_only_as_json_strings(runtime: str, hostile: str) -> None:
    """The API already refuses multi-line commands; the template must not depend on that."""
    catalog = CATALOG[runtime]
    image = base_image(Config(), catalog, catalog.default_version or "1")
    plain = instructions(render_dockerfile(catalog, image, "true", "true"))
    found = instructions(render_dockerfile(catalog, image, hostile, hostile))
    # The same instructions in the same order: nothing was added, nothing was cut short.
    assert [w for w, _ in found] == [w for w, _ in plain]
    assert found[0] == ("FROM", image)
    assert [exec_form(a) for w, a in found if w == "CMD"] == [["/bin/sh", "-c", hostile]]
    assert ["/bin/sh", "-c", hostile] in [exec_form(a) for w, a in found if w == "RUN"]


def test_docker_parses_the_escaped_command_back_verbatim(
    docker_engine: None, tmp_path: Path
) -> None:
    """Docker's own parser (the legacy builder, as the daemon uses) reads a rendered RUN with
    quotes, `<&>` (jinja's tojson writes them as \\u escapes) and a newline as ONE command."""
    catalog = CATALOG["static"]
    build = 'printf "%s" "say \\"hi\\" <&>" > /app/out.txt\nRUN touch /pwned || touch /app/line2'
    dockerfile = render_dockerfile(catalog, "busybox:stable", build, None)
    tag = f"dployr-test/render:{uuid.uuid4().hex[:12]}"
    (tmp_path / "Dockerfile").write_text(dockerfile)
    try:
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        built = subprocess.run(
            ["docker", "build", "-q", "--label", "dployr.test=runtimes", "-t", tag, str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        check = "cat /app/out.txt; echo; ls /app/line2; test ! -e /pwned && echo clean"
        ran = subprocess.run(
            ["docker", "run", "--rm", tag, "/bin/sh", "-c", check],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ran.stdout == 'say "hi" <&>\n/app/line2\nclean\n', (ran.stdout, ran.stderr)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


# -- go and rust for real ------------------------------------------------------------------
# There is no registry here: scripts/provision builds go and rust from Debian's packages
# (Go 1.19, Rust 1.63), and these tests point the catalog's go and rust runtimes at them
# ([runtimes.<id>] image, as an operator would).
DEBIAN_IMAGES = {"go": "dployr-test/golang:bookworm", "rust": "dployr-test/rust:bookworm"}


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    ("runtime", "files", "page"),
    [("go", GO_APP, "go says hi\n"), ("rust", RUST_APP, "rust says hi\n")],
    ids=["go", "rust"],
)
async def test_go_and_rust_build_for_real(
    aiohttp_client: Any,
    docker_engine: None,
    data_dir: Path,
    tmp_path: Path,
    runtime: str,
    files: dict[str, str],
    page: str,
) -> None:
    config = deploy_config(data_dir)
    images = {**config.runtimes, runtime: RuntimeImage(DEBIAN_IMAGES[runtime])}
    client = await aiohttp_client(create_app(dataclasses.replace(config, runtimes=images)))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / runtime, files)
    body = {"name": f"{runtime}-app", "source": "local", "path": str(repo), "branch": "main",
            "runtime": runtime, "port": 8080,
            "health_check": {"path": "/", "timeout": 120}}  # fmt: skip
    live, served, _ = await deploy_and_fetch(client, auth, body)
    assert live["runtime"] == runtime
    assert served == page
