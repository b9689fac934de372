"""`dployr instances ls|metrics` and `dployr services metrics NAME`: the host and a service's
usage over the last hour (or --since) as sparklines, with now/min/max in human units."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dployr.cli import charts
from dployr.cli.commands import api, command, group, page_flags, service_id
from dployr.cli.output import Column, print_json, show_list

DEFAULT_SPAN = 3600  # what the API answers without from/to (SPEC §13)


@dataclass(frozen=True)
class Row:
    """One chart: its label, the sample field drawn, how a value reads, and a percent field
    shown beside the current value (memory: `1.2 GiB (35.0%)`)."""

    label: str
    key: str
    show: Callable[[float | None], str]
    percent_of: str | None = None


NETWORK_ROWS = (
    Row("net rx", "net_rx_bps", charts.human_rate),
    Row("net tx", "net_tx_bps", charts.human_rate),
)
HOST_ROWS = (
    Row("CPU", "cpu_percent", charts.percent),
    Row("load", "load_1", lambda v: "-" if v is None else f"{v:.2f}"),
    Row("memory", "memory_used", charts.human_bytes, "memory_percent"),
    Row("disk", "disk_used", charts.human_bytes, "disk_percent"),
    *NETWORK_ROWS,
)
SERVICE_ROWS = (
    Row("CPU", "cpu_percent", charts.percent),  # of one core: over 100% on several
    Row("memory", "memory_bytes", charts.human_bytes),
    *NETWORK_ROWS,  # containers only: "-" for a systemd or process service
)


def add_commands(commands: Any) -> None:
    instances = group(commands, "instances", "the host the daemon runs on, and its usage")
    listing = command(
        instances,
        "ls",
        run_instances_ls,
        "the instances (this host): OS, CPUs, memory, disk, uptime, versions",
        "dployr instances ls\ndployr instances ls --json",
    )
    page_flags(listing)
    metrics = command(
        instances,
        "metrics",
        run_instance_metrics,
        "the host's CPU, load, memory, disk and network over the last hour, as sparklines",
        "dployr instances metrics\ndployr instances metrics --since 6h\n"
        "dployr instances metrics agt_… --since 30m --step 60 --json",
    )
    metrics.add_argument("id", nargs="?", help="the instance's id (default: the only one)")
    window_flags(metrics)


def add_service_commands(services: Any) -> None:
    """`dployr services metrics`, registered by cli/services.py in its group."""
    metrics = command(
        services,
        "metrics",
        run_service_metrics,
        "a service's CPU, memory (RSS) and network over the last hour, as sparklines",
        "dployr services metrics web\ndployr services metrics web --since 1d --json",
    )
    metrics.add_argument("service", help="the service's name or id")
    window_flags(metrics)


def window_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=span,
        default=None,
        metavar="SPAN",
        help="how far back: 30m, 1h, 6h, 1d, 7d (default 1h)",
    )
    parser.add_argument(
        "--step", type=int, default=None, help="seconds a point (default: the finest stored)"
    )


def span(text: str) -> int:
    try:
        return charts.parse_span(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def window(args: argparse.Namespace) -> dict[str, Any]:
    """The query: nothing for the default hour (the daemon's clock decides); --since counts
    back from this machine's clock."""
    params: dict[str, Any] = {"step": args.step}
    if args.since is not None:
        now = int(time.time())
        params.update({"from": now - args.since, "to": now})
    return params


def run_instances_ls(args: argparse.Namespace) -> int:
    page = api(args).get("/instances", page=args.page, per_page=args.per_page)
    columns: list[Column] = [
        ("ID", "id"), ("HOSTNAME", "hostname"), ("OS", "os"), ("CPUS", "cpu_count"),
        ("MEMORY", lambda i: charts.human_bytes(i.get("memory_total"))),
        ("DISK", lambda i: charts.human_bytes(i.get("disk_total"))),
        ("UP", lambda i: charts.human_seconds(i.get("uptime"))),
        ("AGENT", "agent_version"), ("DOCKER", "docker_version"), ("PROXY", "proxy"),
        ("STATUS", "status"),
    ]  # fmt: skip
    show_list(args, page, columns, "no instances")
    return 0


def run_instance_metrics(args: argparse.Namespace) -> int:
    client = api(args)
    if args.id:
        instance = client.get(f"/instances/{args.id}")
    else:
        instance = client.get("/instances")["items"][0]
    data = client.get(f"/instances/{instance['id']}/metrics", **window(args))
    if args.json:
        print_json(data)
        return 0
    draw(f"{instance['hostname']} ({instance['id']})", data, HOST_ROWS)
    return 0


def run_service_metrics(args: argparse.Namespace) -> int:
    client = api(args)
    ident = service_id(client, args.service)
    data = client.get(f"/services/{ident}/metrics", **window(args))
    if args.json:
        print_json(data)
        return 0
    title = args.service if args.service == ident else f"{args.service} ({ident})"
    draw(title, data, SERVICE_ROWS)
    current = data.get("current") or {}
    print(f"{'restarts':<8}  {current.get('restarts', '-')}")
    return 0


def draw(title: str, data: dict[str, Any], rows: tuple[Row, ...]) -> None:
    """A header, one sparkline per row with now/min/max, and a time axis below them."""
    start, end, step = _stamp(data["from"]), _stamp(data["to"]), int(data["step"])
    series = data.get("series") or []
    current = data.get("current")
    print(f"{title} · {_clock(start, end)} UTC · {step} s a point · {len(series)} points")
    if not series:
        print("no samples yet in this window (the daemon samples every metrics.interval)")
        if current:
            print("now: " + ", ".join(f"{r.label} {_now(r, current)}" for r in rows))
        return
    stamps = [_stamp(item["timestamp"]) for item in series]
    grids = {r.key: charts.on_grid([(t, s.get(r.key)) for t, s in zip(stamps, series, strict=True)],
                                   start, end, step) for r in rows}  # fmt: skip
    cells = [_stats(r, grids[r.key], current) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    stats = {
        r.key: "  ".join(f"{name} {value:>{w}}" for name, value, w in
                         zip(("now", "min", "max"), cell, widths, strict=True))
        for r, cell in zip(rows, cells, strict=True)
    }  # fmt: skip
    label_width = max(len(r.label) for r in rows)
    stats_width = max(len(text) for text in stats.values())
    columns = shutil.get_terminal_size((100, 24)).columns
    width = max(10, min(240, columns - label_width - stats_width - 4))
    lines = [(r.label, charts.sparkline(grids[r.key], width), stats[r.key]) for r in rows]
    axis_left, axis_right = _axis(start, end)
    axis = axis_left + axis_right.rjust(width - len(axis_left))
    if sys.stdout.isatty():
        _print_rich(lines, label_width, axis)
        return
    for label, line, stat in lines:
        print(f"{label:<{label_width}}  {line}  {stat}")
    print(f"{'':<{label_width}}  {axis}")


def _print_rich(lines: list[tuple[str, str, str]], label_width: int, axis: str) -> None:
    from rich.console import Console
    from rich.text import Text

    out = Console(highlight=False, soft_wrap=True)
    for label, line, stat in lines:
        row = Text()
        row.append(f"{label:<{label_width}}  ", style="bold")
        row.append(line, style="cyan")
        row.append(f"  {stat}")
        out.print(row)
    out.print(Text(f"{'':<{label_width}}  {axis}", style="dim"))


def _stats(
    row: Row, grid: list[float | None], current: dict[str, Any] | None
) -> tuple[str, str, str]:
    """Now (the newest sample), and the lowest and highest point of the window."""
    present = [v for v in grid if v is not None]
    low = row.show(min(present)) if present else "-"
    high = row.show(max(present)) if present else "-"
    return _now(row, current), low, high


def _now(row: Row, current: dict[str, Any] | None) -> str:
    if not current:
        return "-"
    text = row.show(current.get(row.key))
    if row.percent_of and current.get(row.percent_of) is not None:
        text += f" ({charts.percent(current[row.percent_of])})"
    return text


def _stamp(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _when(ts: int, with_date: bool) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def _clock(start: int, end: int) -> str:
    with_date = end - start >= 86400
    return f"{_when(start, with_date)} to {_when(end, with_date)}"


def _axis(start: int, end: int) -> tuple[str, str]:
    with_date = end - start >= 86400
    return _when(start, with_date), _when(end, with_date)
