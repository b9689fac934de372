"""Host-target fixtures: source archives of small apps, and a BuildOutput that keeps what it got."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest


class Collected:
    """A BuildOutput that keeps the lines and steps a build reported."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[tuple[int, int, str]] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def step(self, done: int, total: int, what: str) -> None:
        self.steps.append((done, total, what))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)


@pytest.fixture
def source_tar(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """A tar of a tree made of `files` (name → content), like the pipeline's git archive."""
    made = 0

    def make(files: dict[str, str]) -> Path:
        nonlocal made
        made += 1
        tree = tmp_path / f"tree{made}"
        write_tree(tree, files)
        archive = tmp_path / f"source{made}.tar"
        with tarfile.open(archive, "w") as tar:
            for path in sorted(tree.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(tree)), recursive=False)
        return archive

    return make
