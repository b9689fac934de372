"""Page requests and pages of results, shared by every list in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    request: PageRequest

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.request.per_page)


@dataclass(frozen=True)
class JsonPage:
    """A page whose items SQLite already rendered as a JSON array."""

    items_json: str
    total: int
    request: PageRequest

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.request.per_page)


def like_escape(text: str) -> str:
    """Make a user's search text a literal LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
