"""Managed databases' figures (issue 15), at the engine layer (dployr.databases.containers)
on the real Docker engine with the images scripts/provision builds:

- create → ready for each engine (a first start: the data directory is initialised);
- backup and restore of a 100 MB Postgres database (pg_dump custom format, pg_restore in one
  transaction), with the dump's size.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dployr.config import Config  # noqa: E402
from dployr.databases.containers import DatabaseContainers  # noqa: E402
from dployr.databases.dumps import run  # noqa: E402
from dployr.databases.engines import ENGINE, DatabaseSpec, Exec  # noqa: E402
from dployr.ids import new_id  # noqa: E402
from dployr.runtime.docker import DockerTarget  # noqa: E402
from dployr.runtime.ports import free_loopback_port  # noqa: E402

IMAGES = {"postgres": "postgres:15", "redis": "redis:7", "mariadb": "mariadb:10.11"}


def spec_for(agent: str, engine: str) -> DatabaseSpec:
    name = f"bench-{engine}"
    username, database = ENGINE[engine].names(name)
    return DatabaseSpec(
        new_id("db"), f"bench-{agent[-6:]}", name, engine, IMAGES[engine], username,
        secrets.token_urlsafe(24), database, free_loopback_port(), f"dployr-bench-{agent}-{name}",
    )  # fmt: skip


async def sql(target: DockerTarget, container: str, spec: DatabaseSpec, text: str) -> str:
    command = Exec(
        ["psql", "-h", "127.0.0.1", "-U", spec.username, "-d", spec.database, "-v",
         "ON_ERROR_STOP=1", "-At", "-c", text],
        {"PGPASSWORD": spec.password},
    )  # fmt: skip
    code, output = await target.call(run, container, command)
    if code:
        raise SystemExit(f"psql failed: {output}")
    return output


async def main(megabytes: int) -> None:
    agent = new_id("agt")
    target = DockerTarget(Config(), agent)
    dbs = DatabaseContainers(target, agent)
    made: list[tuple[str, DatabaseSpec]] = []
    try:
        for engine in IMAGES:
            spec = spec_for(agent, engine)
            started = time.monotonic()
            container = await dbs.create(spec)
            made.append((container, spec))
            problem = await dbs.wait_ready(container, spec, 300)
            if problem:
                raise SystemExit(f"{engine} did not become ready: {problem}")
            print(f"{engine}: create → ready {time.monotonic() - started:.1f} s")
        container, spec = made[0]
        rows = megabytes * 780  # about 1.3 KB a row on disk, with its index
        await sql(target, container, spec, "CREATE TABLE t (id int PRIMARY KEY, body text)")
        await sql(
            target, container, spec,
            # 1 KiB of distinct hex per row: the server's TOAST compression cannot shrink it.
            "INSERT INTO t SELECT g, (SELECT string_agg(md5(g::text || '.' || i), '') "  # noqa: S608
            f"FROM generate_series(1, 32) i) FROM generate_series(1, {rows}) g",
        )  # fmt: skip
        size = await sql(target, container, spec, "SELECT pg_database_size(current_database())")
        print(f"postgres: database size {int(size) / 1e6:.0f} MB")
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "bench.dump"
            started = time.monotonic()
            dumped = await dbs.backup(container, spec, dest)
            print(
                f"postgres: backup {time.monotonic() - started:.1f} s ({dumped / 1e6:.1f} MB dump)"
            )
            await sql(target, container, spec, "DELETE FROM t WHERE id % 2 = 0")
            started = time.monotonic()
            await dbs.restore(container, spec, dest)
            print(f"postgres: restore {time.monotonic() - started:.1f} s")
            count = await sql(target, container, spec, "SELECT count(*) FROM t")
            assert int(count) == rows, count
    finally:
        for container, spec in made:
            await dbs.remove(container, spec, keep_data=False)
        await target.close()
        subprocess.run(
            ["docker", "network", "rm", f"dployr-bench-{agent[-6:]}"], capture_output=True
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    asyncio.run(main(parser.parse_args().megabytes))
