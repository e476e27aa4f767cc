"""Start a real Airflow deployment as separate processes: api-server, scheduler, dag-processor, triggerer.

Used by the end-to-end tests and by bench/fanout.py. Every process gets the same environment
(AIRFLOW_HOME, metadata DB, fernet key, JWT secret, execution API URL), exactly as a user's
deployment would, so tasks really start in the triggerer and workers really call the API server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FERNET_KEY = "r6Vt9hlvdQ8mRUoBQ0dTvJ-8L0fSdlA9X0QSxwoEjWw="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_env(home: Path, *, sql_alchemy_conn: str | None = None, dags_folder: Path | None = None,
                extra: dict[str, str] | None = None, api_port: int | None = None) -> dict[str, str]:
    """The environment every Airflow process of one deployment shares."""
    api_port = api_port or 8080
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "erp-agents-test-jwt-secret-0123456789",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Own log-server ports, so two deployments on one machine do not collide.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        }
    )
    env.update(extra or {})
    return env


@dataclass
class AirflowStack:
    home: Path
    env: dict[str, str]
    api_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _engine: Any = None

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, cwd=ROOT, text=True,
            capture_output=True, timeout=timeout, check=check,
        )

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env=self.env, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_of(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def wait_api(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"api-server did not become healthy:\n{self.log_of('api-server')[-3000:]}")

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_of(name)[-4000:]}")

    def unpause(self, *dag_ids: str) -> None:
        """New DAGs start paused (scheduled ones would otherwise start at once); run only these."""
        for dag_id in dag_ids:
            self.airflow("dags", "unpause", dag_id)

    def query(self, sql: str, **params: object) -> list[dict[str, object]]:
        """Read the metadata DB directly (fast; the CLI costs seconds per call)."""
        from sqlalchemy import create_engine, text

        engine = self._engine or create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        self._engine = engine
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

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
        rows = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
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
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def airflow_stack(home: Path, *, extra_env: dict[str, str] | None = None, sql_alchemy_conn: str | None = None,
                  dags_folder: Path | None = None, components: tuple[str, ...] = (
                      "api-server", "scheduler", "dag-processor", "triggerer")) -> Iterator[AirflowStack]:
    """Migrate the metadata DB, start the components, yield, and stop them all."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = airflow_env(home, sql_alchemy_conn=sql_alchemy_conn, dags_folder=dags_folder, extra=extra_env, api_port=port)
    stack = AirflowStack(home=home, env=env, api_port=port)
    stack.airflow("db", "migrate")
    try:
        for component in components:
            args = ("api-server", "--port", str(port)) if component == "api-server" else (component,)
            stack.start(component, *args)
        if "api-server" in components:
            stack.wait_api()
        yield stack
    finally:
        stack.stop()
