"""The runtime catalog (GET /templates): versions, default ports and commands, Dockerfiles."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.config import Config

if TYPE_CHECKING:
    import jinja2


@dataclass(frozen=True)
class Runtime:
    id: str
    name: str
    versions: tuple[str, ...]
    default_version: str | None
    default_port: int
    build_cmd: str | None  # what the Dockerfile runs when a deployment gives none
    run_cmd: str | None
    templated: bool = True  # built from templates/Dockerfile.<id>.j2
    needs_source: bool = True  # git or local; False for `image`

    def public(self, config: Config) -> dict[str, Any]:
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
            "targets": ["docker"],
        }


CATALOG: dict[str, Runtime] = {
    r.id: r
    for r in (
        Runtime(
            "nodejs",
            "Node.js",
            ("18", "20", "22"),
            "20",
            3000,
            "if [ -f package.json ]; then npm install --omit=dev; fi",
            "npm start",
        ),
        Runtime(
            "python",
            "Python",
            ("3.11", "3.12", "3.13"),
            "3.12",
            8000,
            "if [ -f requirements.txt ]; then pip install --no-cache-dir -r requirements.txt; fi",
            "python3 app.py",
        ),
        Runtime(
            "go", "Go", ("1.22", "1.23"), "1.23", 8080, "go build -o /app/server .", "/app/server"
        ),
        Runtime(
            "rust", "Rust", ("1.80", "1"), "1", 8080, "cargo build --release", "cargo run --release"
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
        Runtime("dockerfile", "The repository's own Dockerfile", (), None, 8080, None, None, False),
        Runtime("image", "An existing image", (), None, 8080, None, None, False, False),
    )
}


def base_image(config: Config, runtime: Runtime, version: str) -> str:
    return config.runtimes[runtime.id].image.format(version=version)


@cache
def _templates() -> jinja2.Environment:
    """Made by the first render, in the build's worker thread: an idle daemon holds no jinja2."""
    import jinja2

    folder = resources.files("dployr") / "templates"
    if not folder.is_dir():  # a source checkout: templates/ beside the package
        folder = Path(__file__).resolve().parents[2] / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=False,  # noqa: S701 - Dockerfiles, not HTML; values go through |tojson
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_dockerfile(
    runtime: Runtime, image: str, build_cmd: str | None, run_cmd: str | None
) -> str:
    """The Dockerfile for a templated runtime. Commands are validated single lines and reach
    the file only as JSON strings of exec-form instructions, so they cannot add instructions."""
    template = _templates().get_template(f"Dockerfile.{runtime.id}.j2")
    return template.render(
        image=image,
        build_cmd=build_cmd if build_cmd is not None else runtime.build_cmd,
        run_cmd=run_cmd or runtime.run_cmd,
    )
