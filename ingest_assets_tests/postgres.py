"""A real PostgreSQL server for the tests, started on a free 127.0.0.1 port and stopped after.

The server binaries come from the ``pgserver`` wheel (a dev dependency), so a fresh machine with
only Python needs no system package. PostgreSQL refuses to run as root; when the tests run as root
the server runs as an unprivileged system user created for it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg

SERVER_USER = "ingest_assets_pg"


@dataclass(frozen=True)
class Postgres:
    """Where the test server listens and how to log in."""

    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"

    def url(self, *, password: str | None = None, scheme: str = "postgresql") -> str:
        """A connection URL, optionally with another password."""
        secret = self.password if password is None else password
        return f"{scheme}://{self.user}:{secret}@{self.host}:{self.port}/{self.database}"

    def fresh_database(self, name: str) -> Postgres:
        """Drop and create the database ``name`` on this server; the server as seen in it."""
        with pg.connect(self.url(), autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {name}")
        return Postgres(self.host, self.port, self.user, self.password, name)

    def execute(self, *statements: str) -> None:
        """Run statements as the superuser, committed."""
        with pg.connect(self.url()) as conn, conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            conn.commit()


def _binaries() -> Path:
    spec = find_spec("pgserver")
    assert spec and spec.submodule_search_locations, "the pgserver dev dependency is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _as_server_user(folder: Path) -> Callable[[], None] | None:
    """As root: give ``folder`` to the server user; return a hook that switches to that user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:  # another test process may create the user at the same moment
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVER_USER],
            check=False, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(SERVER_USER)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return demote


@contextmanager
def postgres_server(port: int, password: str) -> Iterator[Postgres]:
    """Start a throwaway PostgreSQL cluster on 127.0.0.1:``port`` with password authentication."""
    binaries = _binaries()
    root = Path(tempfile.mkdtemp(prefix="ingest-assets-pg-"))
    root.chmod(0o755)
    (root / "socket").mkdir()
    (root / "password").write_text(password)
    demote = _as_server_user(root)
    log = root / "server.log"
    try:
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-E", "UTF8",
             "--auth=scram-sha-256", f"--pwfile={root / 'password'}"],
            check=True, capture_output=True, preexec_fn=demote,
        )  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(root / "data"), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-k", str(root / "socket"),
                 "-c", "fsync=off", "-c", "synchronous_commit=off"],
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=demote,
            )  # fmt: skip
        server = Postgres("127.0.0.1", port, "postgres", password)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    server.execute("SELECT 1")
                    break
                except pg.Error:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "PostgreSQL did not start:\n" + log.read_text()
                        ) from None
                    time.sleep(0.2)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
