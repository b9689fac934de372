"""What a client command prints: the API's JSON with --json, else a table or fields via rich
(imported on first use: `dployr --help` must not pay for it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

# A column: its header and how to read it from an item (a key, or a function of the item).
Column = tuple[str, str | Callable[[dict[str, Any]], Any]]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def show_list(args: Any, page: Any, columns: Sequence[Column], empty: str) -> None:
    """A page of the API (`{items, total, …}`) or a plain list, as a table fitted to the
    terminal; the JSON as it came with --json."""
    if args.json:
        print_json(page)
        return
    items = page["items"] if isinstance(page, dict) else page
    if not items:
        print(empty)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for item in items:
        table.add_row(*(text(cell(item, read)) for _, read in columns))
    console().print(table)
    if isinstance(page, dict) and page.get("total", 0) > len(items):
        print(f"({len(items)} of {page['total']}; --page/--per-page for more)", file=sys.stderr)


def show_object(args: Any, data: Any, fields: Sequence[Column] | None = None) -> None:
    """One object as `field  value` lines (all its scalar fields when none are named)."""
    if args.json:
        print_json(data)
        return
    if fields is None:
        fields = [(key, key) for key, value in data.items() if not isinstance(value, dict | list)]
    width = max(len(header) for header, _ in fields)
    for header, read in fields:
        print(f"{header:<{width}}  {text(cell(data, read))}")


def cell(item: dict[str, Any], read: str | Callable[[dict[str, Any]], Any]) -> Any:
    if callable(read):
        return read(item)
    value: Any = item
    for key in read.split("."):  # "current_deployment.number"
        value = value.get(key) if isinstance(value, dict) else None
    return value


def text(value: Any) -> str:
    """A cell: '-' for nothing, ages for timestamps, JSON for the rest."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return ago(value) if _is_timestamp(value) else value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _is_timestamp(value: str) -> bool:
    return len(value) == 20 and value.endswith("Z") and value[10] == "T"


def ago(stamp: str, now: datetime | None = None) -> str:
    """`2026-01-01T00:00:00Z` → `5m ago` (the exact time is in --json)."""
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return stamp
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return stamp
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
