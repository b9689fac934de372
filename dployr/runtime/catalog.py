"""The runtime catalog (GET /templates): versions, default ports and commands, and the docker
target's Dockerfiles."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dployr.config import Config
from dployr.render import render

if TYPE_CHECKING:
    from dployr.runtime.protocol import Target


@dataclass(frozen=True)
class Runtime:
    id: str
    name: str
    versions: tuple[str, ...]
    default_version: str | None
    default_port: int
    build_cmd: str | None  # what the Dockerfile runs when a deployment gives none
    run_cmd: str | None
    install_cmd: str | None = None  # the dependency layer: ours, before the code is copied
    finish_cmd: str | None = None  # ours, right after the code is copied, before build_cmd
    templated: bool = True  # built from templates/Dockerfile.<id>.j2
    needs_source: bool = True  # git or local; False for `image`

    def public(self, config: Config, targets: Iterable[Target]) -> dict[str, Any]:
        image = config.runtimes.get(self.id)
        return {
            "id": self.id,
            "name": self.name,
            "versions": list(self.versions),
            "default_version": self.default_version,
            "default_port": self.default_port,
            "build_cmd": self.build_cmd,
            "run_cmd": self.run_cmd,
            "image": image.image if image else None,
            "targets": [t.name for t in targets if self.id in t.runtimes()],
        }


# The dependency layer (templates/Dockerfile.<id>.j2): the manifests alone are copied, then
# `install_cmd` runs, then the code is copied, so a code change reuses the installed
# dependencies from the build cache. An install that fails on the manifests alone (a
# requirement such as `-e .` needs the code) is not fatal there: it leaves its command in
# DEFERRED, and `finish_cmd` runs it again once the code is in /app (whatever build_cmd is,
# so an install that failed for a passing reason is never left out of the image).
DEFERRED = "/opt/dployr/deps-deferred"
_DEFER = (
    '"$@" || { echo "dployr: the dependencies need more than their manifests; installing them'
    f' again after the code is copied"; echo "$*" > {DEFERRED}; }}'
)
# Runs the deferred install, if any: the catalog's own command words (no user input).
RETRY_DEFERRED = f"if [ -f {DEFERRED} ]; then $(cat {DEFERRED}); fi"
_PYPROJECT_DEPS = (
    'python3 -c \'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"));'
    ' print("\\n".join(p.get("project", {}).get("dependencies", [])))\''
)
_UV_EXPORT = (
    "python3 -m venv /opt/dployr/uv && /opt/dployr/uv/bin/pip install -q --no-cache-dir uv"
    " && /opt/dployr/uv/bin/uv export -q --frozen --no-dev --no-emit-workspace --no-hashes"
    " -o /opt/dployr/requirements.txt"
)
PYTHON_INSTALL = (
    "mkdir -p /opt/dployr; "
    "if [ -f requirements.txt ]; then set -- pip install --no-cache-dir -r requirements.txt; "
    f"elif [ -f pyproject.toml ] && [ -f uv.lock ]; then {_UV_EXPORT} || exit 1; "
    "set -- pip install --no-cache-dir -r /opt/dployr/requirements.txt; "
    f"elif [ -f pyproject.toml ]; then {_PYPROJECT_DEPS} > /opt/dployr/requirements.txt"
    " || exit 1; set -- pip install --no-cache-dir -r /opt/dployr/requirements.txt; "
    f"else exit 0; fi; {_DEFER}"
)
NODEJS_INSTALL = (
    "[ -f package.json ] || exit 0; mkdir -p /opt/dployr; "
    "set -- npm install --omit=dev --no-audit --no-fund; "
    "if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then :; "
    "elif [ -f yarn.lock ]; then set -- npx --yes yarn@1 install --production --non-interactive; "
    "elif [ -f pnpm-lock.yaml ]; then set -- npx --yes pnpm@9 install --prod; fi; "
    f"{_DEFER}"
)
# go and rust need no retry: `go build` and `cargo build` fetch whatever is still missing.
GO_INSTALL = (
    "if [ -f go.mod ]; then go mod download || echo 'dployr: go mod download needs more than"
    " go.mod and go.sum; the build fetches the modules instead'; fi"
)
# cargo reads no manifest without a target: a stand-in main.rs, removed before the code comes.
RUST_INSTALL = (
    "if [ -f Cargo.toml ]; then mkdir src && echo 'fn main() {}' > src/main.rs"
    " && { cargo fetch || echo 'dployr: cargo fetch needs more than Cargo.toml and Cargo.lock;"
    " the build fetches the crates instead'; }; rm -rf src; fi"
)

CATALOG: dict[str, Runtime] = {
    r.id: r
    for r in (
        Runtime(
            "nodejs",
            "Node.js",
            ("18", "20", "22"),
            "20",
            3000,
            None,
            "npm start",
            install_cmd=NODEJS_INSTALL,
            finish_cmd=RETRY_DEFERRED,
        ),
        Runtime(
            "python",
            "Python",
            ("3.11", "3.12", "3.13"),
            "3.12",
            8000,
            None,
            "python3 app.py",
            install_cmd=PYTHON_INSTALL,
            finish_cmd=RETRY_DEFERRED,
        ),
        Runtime(
            "go",
            "Go",
            ("1.22", "1.23"),
            "1.23",
            8080,
            "go build -o /app/server .",
            "/app/server",
            install_cmd=GO_INSTALL,
        ),
        Runtime(
            "rust",
            "Rust",
            ("1.80", "1"),
            "1",
            8080,
            "cargo build --release",
            "cargo run --release",
            install_cmd=RUST_INSTALL,
        ),
        Runtime(
            "static",
            "Static files (busybox httpd)",
            ("stable",),
            "stable",
            8080,
            None,
            'httpd -f -p "$PORT" -h /app',
        ),
        Runtime(
            "dockerfile",
            "The repository's own Dockerfile",
            (),
            None,
            8080,
            None,
            None,
            templated=False,
        ),
        Runtime(
            "image",
            "An existing image",
            (),
            None,
            8080,
            None,
            None,
            templated=False,
            needs_source=False,
        ),
    )
}


def base_image(config: Config, runtime: Runtime, version: str) -> str:
    return config.runtimes[runtime.id].image.format(version=version)


def render_dockerfile(
    runtime: Runtime, image: str, build_cmd: str | None, run_cmd: str | None
) -> str:
    """The Dockerfile for a templated runtime. Commands are validated single lines and reach
    the file only as JSON strings of exec-form instructions, so they cannot add instructions."""
    return render(
        f"Dockerfile.{runtime.id}.j2",
        image=image,
        install_cmd=runtime.install_cmd,
        finish_cmd=runtime.finish_cmd,
        build_cmd=build_cmd if build_cmd is not None else runtime.build_cmd,
        run_cmd=run_cmd or runtime.run_cmd,
    )
