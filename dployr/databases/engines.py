"""The database engines (SPEC §14) and how the daemon drives their official images: only through
each image's documented environment and command, and each engine's own client tools (run
inside the container with `docker exec`). Nothing here is specific to the stand-in images the
tests build: the daemon cannot tell them apart from the official ones."""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("postgres", "redis", "mariadb")
# Users and databases the engines keep for themselves: a database of that name would fail at
# its first start, so it is refused up front.
POSTGRES_OWN = frozenset({"template0", "template1"})
MARIADB_OWN = frozenset({"root", "mysql", "sys", "information_schema", "performance_schema"})


@dataclass(frozen=True)
class DatabaseSpec:
    """What the container of one managed database is made from."""

    id: str
    owner_id: str
    name: str
    engine: str
    image: str  # the configured image with the version filled in
    username: str
    password: str
    database: str
    host_port: int  # published on 127.0.0.1 only
    volume: str  # the docker volume with its data


@dataclass(frozen=True)
class Exec:
    """A command run inside the database's container, with the environment it needs (the
    password goes in the environment, never on a command line `ps` shows)."""

    cmd: list[str]
    env: dict[str, str]
    output: str | None = None  # a dump's file inside the container; None: its stdout


@dataclass(frozen=True)
class Engine:
    name: str
    default_version: str
    port: int  # the engine's port inside the container
    data_path: str  # where the image keeps its data: the volume is mounted here
    scheme: str  # of the connection URL
    backup_suffix: str

    def refuses(self, database_name: str) -> str | None:
        """Why the engine's image cannot make a database of this name (its user or database
        would be one the engine keeps for itself), or None."""
        ident = database_name.replace("-", "_")
        if self.name == "postgres" and (ident.startswith("pg_") or ident in POSTGRES_OWN):
            return f"PostgreSQL keeps {ident!r} (and every pg_ name) for itself"
        if self.name == "mariadb" and ident in MARIADB_OWN:
            return f"MariaDB keeps {ident!r} for itself"
        return None

    def names(self, database_name: str) -> tuple[str, str]:
        """(username, database) of a new database called `database_name`."""
        if self.name == "redis":
            return "default", "0"
        ident = database_name.replace("-", "_")
        return ident, ident

    def environment(self, spec: DatabaseSpec) -> dict[str, str]:
        """The official image's documented variables."""
        if self.name == "postgres":
            return {
                "POSTGRES_USER": spec.username,
                "POSTGRES_PASSWORD": spec.password,
                "POSTGRES_DB": spec.database,
            }
        if self.name == "mariadb":
            return {
                "MARIADB_ROOT_PASSWORD": spec.password,
                "MARIADB_DATABASE": spec.database,
                "MARIADB_USER": spec.username,
                "MARIADB_PASSWORD": spec.password,
            }
        return {}

    def command(self, spec: DatabaseSpec) -> list[str] | None:
        """The container's command; None: the image's own."""
        if self.name == "redis":
            return ["redis-server", "--requirepass", spec.password, "--appendonly", "yes"]
        return None

    def ready(self, spec: DatabaseSpec) -> Exec:
        """Exits 0 once the engine answers its own client over TCP inside the container (the
        official images' first-start setup listens on a socket only, so a TCP answer is the
        real server)."""
        if self.name == "postgres":
            return Exec(
                ["pg_isready", "-h", "127.0.0.1", "-U", spec.username, "-d", spec.database],
                {"PGPASSWORD": spec.password},
            )
        if self.name == "mariadb":
            return Exec(
                ["mariadb-admin", "ping", "-h", "127.0.0.1", "-u", "root"],
                {"MYSQL_PWD": spec.password},
            )
        # -e: an error reply (NOAUTH, LOADING while the data loads) exits non-zero.
        return Exec(
            ["redis-cli", "-e", "-h", "127.0.0.1", "ping"], {"REDISCLI_AUTH": spec.password}
        )

    @staticmethod
    def _psql_args(tool: str, spec: DatabaseSpec) -> list[str]:
        return [tool, "-h", "127.0.0.1", "-U", spec.username, "-d", spec.database]

    def backup(self, spec: DatabaseSpec, scratch: str) -> Exec:
        """A logical dump with the engine's own tool. `scratch` is a free path inside the
        container, for redis: `redis-cli --rdb -` appends the replication stream's end mark
        to its output (Redis 7.0), a file it writes is a clean RDB."""
        if self.name == "postgres":
            return Exec(
                [*self._psql_args("pg_dump", spec), "--format=custom", "--no-password"],
                {"PGPASSWORD": spec.password},
            )
        if self.name == "mariadb":
            return Exec(
                [
                    *("mariadb-dump", "-h", "127.0.0.1", "-u", "root", "--single-transaction"),
                    *("--routines", "--databases", spec.database),
                ],
                {"MYSQL_PWD": spec.password},
            )
        return Exec(
            ["redis-cli", "-h", "127.0.0.1", "--rdb", scratch],
            {"REDISCLI_AUTH": spec.password},
            output=scratch,
        )

    def restore(self, spec: DatabaseSpec) -> Exec | None:
        """Reads a dump of `backup` on its stdin and puts the database back to it; None for
        redis, whose RDB replaces the data files while the server is stopped
        (dployr.databases.dumps)."""
        if self.name == "postgres":
            # One transaction: a restore that fails leaves the database as it was.
            return Exec(
                [
                    *self._psql_args("pg_restore", spec),
                    *("--clean", "--if-exists", "--single-transaction", "--no-password"),
                ],
                {"PGPASSWORD": spec.password},
            )
        if self.name == "mariadb":
            return Exec(
                ["mariadb", "-h", "127.0.0.1", "-u", "root", "--binary-mode"],
                {"MYSQL_PWD": spec.password},
            )
        return None

    def url(self, spec: DatabaseSpec, host: str, port: int) -> str:
        """The connection URL (SPEC §14); the password is URL-safe (token_urlsafe)."""
        if self.name == "redis":
            return f"redis://:{spec.password}@{host}:{port}/0"
        return f"{self.scheme}://{spec.username}:{spec.password}@{host}:{port}/{spec.database}"


ENGINE = {
    "postgres": Engine("postgres", "15", 5432, "/var/lib/postgresql/data", "postgresql", ".dump"),
    "redis": Engine("redis", "7", 6379, "/data", "redis", ".rdb"),
    "mariadb": Engine("mariadb", "10.11", 3306, "/var/lib/mysql", "mysql", ".sql"),
}
