"""A throw-away PostgreSQL cluster for the tests, from the machine's own PostgreSQL (Debian's `postgresql`).

initdb and the server refuse to run as root, and the tests run as root in CI: the cluster then belongs to the
`postgres` system account (made by the package) and is run through `runuser`. It listens on a free port of
127.0.0.1 only, with its socket in its own folder, and asks for a password over TCP (so a wrong one is refused,
as a real server would). fsync is off: nothing here must survive a crash of the machine.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER, PASSWORD = "rag", "pg-SENTINEL-password"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, newest PostgreSQL first, or None when none is installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        # Under /tmp, not TMPDIR or pytest's folders: the postgres account must reach it, and a socket's path
        # must stay under about 100 characters.
        self.root = Path(tempfile.mkdtemp(prefix="rag-pg-", dir="/tmp"))
        self.data, self.port = self.root / "data", _free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        self._count = 0

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        (self.root / "pw").write_text(PASSWORD + "\n")
        if self.owner:
            try:
                account = pwd.getpwnam(self.owner)
            except KeyError:
                raise RuntimeError("no postgres account to run the test cluster as root: apt-get install "
                                   "postgresql makes it") from None
            for path in (self.root, self.root / "pw"):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={self.root / 'pw'}", "-E", "UTF8",
                  "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60",
                  "start")

    def stop(self) -> None:
        """As a restart does: every session is cut off (fast: nothing committed is lost, unlike immediate)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database's name (`name`: make that one again, as after a lost database)."""
        if name is None:
            self._count += 1
            name = f"t{self._count}"
        self._sql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self._sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode:
            log = self.root / "log"
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
                               + (f"\n{log.read_text()[-2000:]}" if log.exists() else ""))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
