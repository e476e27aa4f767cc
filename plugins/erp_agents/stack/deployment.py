"""The embedded deployment: PostgreSQL, then scheduler, two triggerers, dag-processor and api-server.

``up`` is idempotent: with everything running it attaches; a component that died is started again;
stale pid files are cleared. A start that fails stops what that start began, so nothing is left
half-started. ``down`` stops the components by pid, then PostgreSQL. Concurrent ``up`` calls (two
scripts using OrchestrationEngine at once) are serialized by a file lock.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fasteners

from erp_agents.stack import processes
from erp_agents.stack.errors import StackError
from erp_agents.stack.postgres import EmbeddedPostgres, ensure_database, port_is_free
from erp_agents.stack.rest import api_health
from erp_agents.stack.settings import (
    COMPONENTS, PROJECT_ROOT, TRIGGERERS, UI_USER, Layout, StackState, component_env, components_for, deployment_env,
)

HEALTH_TIMEOUT_S = 180.0
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", **{t: "triggerer" for t in TRIGGERERS}}
DATABASE_URL_ENV = "ERP_AGENTS_DATABASE_URL"

log = logging.getLogger(__name__)


def default_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").resolve()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Status:
    """What ``ps`` shows: each component's pid (None: not running) and memory, and the URLs."""

    state: StackState | None
    components: dict[str, processes.ProcessInfo | None]
    postgres_pid: int | None
    stale: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.state is not None and all(self.components.values())

    @property
    def anything_running(self) -> bool:
        return any(self.components.values()) or self.postgres_pid is not None


@dataclass
class Deployment:
    """One embedded deployment under ``home`` (default: $AIRFLOW_HOME or ~/airflow).

    ``database_url``: a PostgreSQL URL of the user's to use instead of the embedded server.
    ``api_port`` / ``pg_port``: None = the recorded port, else 8080 / any free port; 0 = any free port.
    """

    home: Path = field(default_factory=default_home)
    dags_folder: Path | None = None
    database_url: str | None = None
    api_port: int | None = None
    pg_port: int | None = None

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.layout = Layout(self.home)
        self.database_url = self.database_url or os.environ.get(DATABASE_URL_ENV)

    # -- reading ------------------------------------------------------------------------------

    def postgres(self, state: StackState) -> EmbeddedPostgres | None:
        if state.pg_port is None:
            return None
        return embedded_postgres(self.layout, state.pg_port)

    def status(self) -> Status:
        state = self.layout.read_state()
        planned = components_for(state.sql_alchemy_conn) if state else COMPONENTS
        components = {name: processes.running(self.layout, name) for name in planned}
        stale = tuple(name for name in COMPONENTS if processes.stale(self.layout, name))
        pg = self.postgres(state) if state else None
        return Status(state, components, pg.pid() if pg else None, stale)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of this deployment's processes, for a command run against it."""
        state = self._require_state()
        return deployment_env(self.layout, state, extra)

    def login(self) -> tuple[str, str]:
        """The UI user and the password the api-server generated for it."""
        passwords = json.loads(self.layout.passwords_file.read_text())
        return UI_USER, str(passwords[UI_USER])

    # -- up -----------------------------------------------------------------------------------

    def up(self, extra_env: dict[str, str] | None = None, timeout: float = HEALTH_TIMEOUT_S,
           components: tuple[str, ...] = COMPONENTS) -> tuple[StackState, bool]:
        """Start what is not running and wait until it is healthy; returns (state, attached).

        ``components``: a subset for tests that need only some (without the api-server, health is
        only "the process runs")."""
        self.layout.folder.mkdir(parents=True, exist_ok=True)
        with fasteners.InterProcessLock(str(self.layout.folder / "up.lock")):
            status = self.status()
            if status.state is not None:
                wanted = components_for(status.state.sql_alchemy_conn, components)
                if all(status.components.get(c) for c in wanted) and self._healthy(status.state, wanted):
                    return status.state, True
            started: list[str] = []
            state = self._plan_state(status)
            components = components_for(state.sql_alchemy_conn, components)
            try:
                self._start_database(state, started)
                self.layout.write_state(state)
                env = deployment_env(self.layout, state, extra_env)
                if not status.state or not any(status.components.values()):
                    self._migrate(env)
                for name in components:
                    if processes.running(self.layout, name) is None:
                        self._check_port(name, state)
                        processes.start(self.layout, name, processes.component_argv(name, state.api_port),
                                        component_env(env, state, name))
                        started.append(name)
                self.wait_healthy(state, timeout, components)
                if "api-server" in components:
                    self._sync_pools(state)
            except BaseException:
                for name in reversed(started):
                    if name == "postgres":
                        pg = self.postgres(state)
                        if pg:
                            pg.stop()
                    else:
                        processes.stop(self.layout, name)
                raise
            return state, False

    def _sync_pools(self, state: StackState) -> None:
        """One Airflow pool per provider of the deployment's engine config (agent tasks name them)."""
        from erp_agents.limits.pools import sync_pools
        from erp_agents.spec.discovery import load_folder

        if not self.layout.passwords_file.exists():  # an auth manager of the caller's own: no login known here
            log.warning("pools not synced (no simple-auth login under %s): run `python -m erp_agents pools sync`",
                        self.layout.folder)
            return
        engine = load_folder(Path(state.dags_folder) / "specs").engine
        sync_pools(state.api_url, self.login(), engine)

    def _plan_state(self, status: Status) -> StackState:
        """Ports and URLs: the recorded ones when a deployment was here before, else new ones."""
        old = status.state
        api_port = self.api_port if self.api_port is not None else (old.api_port if old else 8080)
        if api_port == 0:
            api_port = free_port()
        if self.database_url:
            pg_port = None
            conn = self.database_url
            governance = os.environ.get("ERP_AGENTS_GOVERNANCE_DB_URL") or (
                f"sqlite:///{self.home / 'erp_agents_governance.db'}" if conn.startswith("sqlite")
                else _with_database(conn, "erp_agents"))
        else:
            pg_port = self.pg_port or (old.pg_port if old and old.pg_port else None) or free_port()
            pg = embedded_postgres(self.layout, pg_port)
            conn, governance = pg.url("airflow"), pg.url("erp_agents")
        return StackState(
            home=str(self.home), api_port=api_port, pg_port=pg_port, sql_alchemy_conn=conn,
            governance_url=governance,
            dags_folder=str(self.dags_folder or (Path(old.dags_folder) if old else PROJECT_ROOT / "dags")),
            worker_log_port=old.worker_log_port if old else free_port(),
            trigger_log_port=old.trigger_log_port if old else free_port(),
            trigger_log_ports={name: (old.trigger_log_ports.get(name) if old else None) or free_port()
                               for name in TRIGGERERS[1:]},
        )

    def _start_database(self, state: StackState, started: list[str]) -> None:
        pg = self.postgres(state)
        if pg is None:  # the user's server: only the governance store's database may need creating
            ensure_database(state.governance_url)
            return
        was_running = pg.pid() is not None
        pg.start()
        if not was_running:
            started.append("postgres")
        pg.create_databases()

    def _check_port(self, name: str, state: StackState) -> None:
        if name == "api-server" and not port_is_free(state.api_port):
            raise StackError(
                f"port {state.api_port} on 127.0.0.1 is taken by another program, so the api-server cannot start: "
                "stop that program or choose another port (up --api-port N; 0 picks a free one)"
            )

    def _migrate(self, env: dict[str, str]) -> None:
        self.layout.log_of("db-migrate").parent.mkdir(parents=True, exist_ok=True)
        with self.layout.log_of("db-migrate").open("ab") as log:
            done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=PROJECT_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=600)
        if done.returncode != 0:
            raise StackError(f"`airflow db migrate` failed; see {self.layout.log_of('db-migrate')}\n"
                             + self._tail("db-migrate"))

    def wait_healthy(self, state: StackState, timeout: float = HEALTH_TIMEOUT_S, components: tuple[str, ...] = COMPONENTS) -> None:
        """Until the api-server answers and reports every other component healthy; a component that
        exits meanwhile fails at once with its log's end."""
        components = components_for(state.sql_alchemy_conn, components)
        deadline = time.monotonic() + timeout
        while True:
            for name in components:
                if processes.running(self.layout, name) is None:
                    raise StackError(f"{name} exited during start-up; end of {self.layout.log_of(name)}:\n"
                                     + self._tail(name))
            if self._healthy(state, components):
                return
            if time.monotonic() > deadline:
                raise StackError(f"the deployment was not healthy after {timeout:.0f} s; logs in {self.layout.logs}")
            time.sleep(0.5)

    def _healthy(self, state: StackState, components: tuple[str, ...] = COMPONENTS) -> bool:
        if "api-server" not in components:
            return True
        health = api_health(state.api_url)
        if health is None:
            return False
        wanted = [HEALTH_KEYS[c] for c in components if c in HEALTH_KEYS]
        if not all((health.get(key) or {}).get("status") == "healthy" for key in ["metadatabase", *wanted]):
            return False
        # The api-server reports one "triggerer" for all of them: count their live jobs.
        triggerers = [t for t in components if t in TRIGGERERS]
        return len(triggerers) < 2 or len(self._live_triggerers(state, triggerers)) >= len(triggerers)

    def _live_triggerers(self, state: StackState, names: list[str]) -> list[int]:
        """TriggererJobs started by these triggerer processes (an older job may still look alive)."""
        from erp_agents.stack.cluster_health import live_triggerers

        starts = [info.started for name in names if (info := processes.running(self.layout, name))]
        since = datetime.datetime.fromtimestamp(min(starts, default=0) - 5, datetime.timezone.utc)
        return live_triggerers(state.sql_alchemy_conn, since)

    def _tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.layout.log_of(name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- changing a running deployment ---------------------------------------------------------

    def ensure_triggerer_env(self, extra: dict[str, str], timeout: float = HEALTH_TIMEOUT_S) -> bool:
        """Make ``extra`` (connections such as AIRFLOW_CONN_*) part of the triggerers' environment,
        restarting only a triggerer that lacks them; the values are never written to disk.
        Returns True when one restarted."""
        state = self._require_state()
        restarted = []
        for name in components_for(state.sql_alchemy_conn, TRIGGERERS):
            current = processes.environ(self.layout, name)
            if current and all(current.get(k) == v for k, v in extra.items()):
                continue
            env = {**(current or component_env(deployment_env(self.layout, state), state, name)), **extra}
            processes.stop(self.layout, name)
            processes.start(self.layout, name, processes.component_argv(name, state.api_port), env)
            restarted.append(name)
        if restarted:
            self.wait_healthy(state, timeout, components=(*TRIGGERERS, "api-server"))
        return bool(restarted)

    def restart(self, name: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
        state = self._require_state()
        runs = components_for(state.sql_alchemy_conn)
        if name not in runs:
            raise StackError(f"{name} is not part of this deployment (metadata DB {state.sql_alchemy_conn.split(':')[0]}): "
                             f"it runs {', '.join(runs)}")
        env = processes.environ(self.layout, name) or component_env(deployment_env(self.layout, state), state, name)
        processes.stop(self.layout, name)
        processes.start(self.layout, name, processes.component_argv(name, state.api_port), env)
        self.wait_healthy(state, timeout)

    # -- down ---------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every component by pid, then PostgreSQL; returns what was stopped (empty: nothing ran)."""
        stopped = [name for name in reversed(COMPONENTS) if processes.stop(self.layout, name)]
        state = self.layout.read_state()
        pg = self.postgres(state) if state else None
        if pg is not None and pg.stop():
            stopped.append("postgres")
        return stopped

    def _require_state(self) -> StackState:
        state = self.layout.read_state()
        if state is None:
            raise StackError(f"no deployment under {self.home}: run `python -m erp_agents up` first")
        return state


def embedded_postgres(layout: Layout, port: int) -> EmbeddedPostgres:
    """The server of this deployment. Its data directory may be a symlink (resolved here) to a place
    the server's own user can reach; its log lives there and is linked into the logs folder."""
    data = layout.pgdata.resolve()
    log = data.parent / f"{data.name}.log"
    link = layout.log_of("postgres")
    if not link.is_symlink() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(log)
    return EmbeddedPostgres(data, port, log)


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)
