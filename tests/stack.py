"""A real Airflow deployment for end-to-end tests and benchmarks, started by erp_agents.stack.

There is one way to start a deployment: ``erp_agents.stack.Deployment`` (what ``python -m erp_agents
up`` runs). This module adds what tests need on top: a throw-away AIRFLOW_HOME on a free port,
direct reads of the metadata DB, and waits with the component logs in their messages.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erp_agents.stack import Deployment
from erp_agents.stack import processes as stack_processes
from erp_agents.stack.deployment import free_port
from erp_agents.stack.settings import COMPONENTS, components_for

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["AirflowStack", "airflow_stack", "free_port"]


@dataclass(frozen=True)
class RunningProcess:
    """A component as Popen-like view: ``poll()`` is None while its pid file names a live process."""

    deployment: Deployment
    name: str
    pid: int

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        return None if stack_processes.running(self.deployment.layout, self.name) else 1


@dataclass
class AirflowStack:
    deployment: Deployment
    env: dict[str, str]
    components: tuple[str, ...] = COMPONENTS
    _engine: Any = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return self.deployment.home

    @property
    def api_port(self) -> int:
        state = self.deployment.layout.read_state()
        assert state is not None
        return state.api_port

    @property
    def processes(self) -> dict[str, RunningProcess]:
        status = self.deployment.status().components
        return {n: RunningProcess(self.deployment, n, info.pid) for n, info in status.items() if info and n in self.components}

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout, check=check)

    def log_of(self, name: str) -> str:
        return self.deployment.layout.log_of(name).read_text(errors="replace")

    def _check_alive(self) -> None:
        for name in self.components:
            if stack_processes.running(self.deployment.layout, name) is None:
                raise RuntimeError(f"{name} is not running:\n{self.log_of(name)[-4000:]}")

    def unpause(self, *dag_ids: str) -> None:
        """New DAGs start paused (scheduled ones would otherwise start at once); run only these."""
        self.query_write("UPDATE dag SET is_paused = false WHERE dag_id IN :ids", ids=tuple(dag_ids))

    def query(self, sql: str, **params: object) -> list[dict[str, object]]:
        """Read the metadata DB directly (fast; the CLI costs seconds per call)."""
        from sqlalchemy import text

        with self._db().connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def query_write(self, sql: str, **params: object) -> None:
        from sqlalchemy import bindparam, text

        statement = text(sql)
        if "ids" in params:
            statement = statement.bindparams(bindparam("ids", expanding=True))
        with self._db().begin() as conn:
            conn.execute(statement, params)

    def _db(self) -> Any:
        from sqlalchemy import create_engine

        if self._engine is None:
            self._engine = create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        return self._engine

    def wait_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has serialized every DAG (the scheduler can then run it)."""
        deadline = time.monotonic() + timeout
        pending = set(dag_ids)
        while pending and time.monotonic() < deadline:
            self._check_alive()
            pending -= {r["dag_id"] for r in self.query("SELECT dag_id FROM serialized_dag")}
            if pending:
                time.sleep(1)
        if pending:
            raise TimeoutError(f"DAGs never appeared: {sorted(pending)}\n{self.log_of('dag-processor')[-3000:]}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id)
        return {str(r["task_id"]): r["state"] for r in rows}  # type: ignore[misc]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id)
        return str(rows[0]["state"]) if rows else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"run {dag_id}/{run_id} not finished: {self.task_states(dag_id, run_id)}")

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self.deployment.down()


def reachable(home: Path) -> Path:
    """Tests run as root, so the embedded PostgreSQL runs as an unprivileged user, who cannot enter
    pytest's 0700 temp folders: its data directory is a symlink to a folder that user can reach."""
    import os
    import tempfile

    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "postgres"
    if os.geteuid() == 0 and not pgdata.exists():
        outside = Path(tempfile.mkdtemp(prefix="erp-agents-pg-", dir="/tmp"))
        outside.chmod(0o711)
        pgdata.symlink_to(outside / "postgres")
    return home


@contextmanager
def airflow_stack(home: Path, *, extra_env: dict[str, str] | None = None, sql_alchemy_conn: str | None = None,
                  dags_folder: Path | None = None, components: tuple[str, ...] = COMPONENTS) -> Iterator[AirflowStack]:
    """Start a deployment under ``home`` on free ports (embedded PostgreSQL unless ``sql_alchemy_conn``
    names a database), yield it, and stop everything it started."""
    reachable(home)
    deployment = Deployment(home=home, dags_folder=dags_folder, database_url=sql_alchemy_conn, api_port=0)
    # Task logs where the tests look for them: AIRFLOW_HOME/logs.
    extra = {"AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"), **(extra_env or {})}
    try:
        deployment.up(extra_env=extra, components=components)
        state = deployment.layout.read_state()
        assert state is not None
        yield AirflowStack(deployment, deployment.env(extra), components_for(state.sql_alchemy_conn, components))
    finally:
        deployment.down()
