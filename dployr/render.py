"""One jinja2 environment for every file dployr renders from `templates/`: Dockerfiles,
Caddy and nginx configs, systemd units. Values reach a template only after validation;
templates put them in through filters that quote them for the file's own syntax (|tojson,
|unit_value, |unit_arg)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@cache
def environment() -> jinja2.Environment:
    """Made by the first render (in a worker thread): an idle daemon holds no jinja2."""
    import jinja2

    folder = resources.files("dployr") / "templates"
    if not folder.is_dir():  # a source checkout: templates/ beside the package
        folder = Path(__file__).resolve().parents[1] / "templates"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=False,  # noqa: S701 - Dockerfiles and proxy configs, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    from dployr.runtime.units import unit_arg, unit_value

    env.filters["unit_value"] = unit_value  # systemd units: one line, specifiers escaped
    env.filters["unit_arg"] = unit_arg  # one quoted ExecStart= word
    return env


def render(name: str, **values: Any) -> str:
    """Render templates/<name>; blocking (file reads): call it from a worker thread."""
    return environment().get_template(name).render(**values)
