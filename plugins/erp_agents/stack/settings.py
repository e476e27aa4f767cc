"""Where a deployment lives under AIRFLOW_HOME, what it records about itself, and the environment
every one of its processes shares.

The environment is the whole configuration: each component gets the same variables (metadata DB,
governance store, fernet key, JWT secret, execution API URL), as a user's deployment would, so
tasks really start in the triggerer and workers really call the API server. The tuning is for
hundreds of deferred agent tasks on a 2-core machine; README explains each value.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the plugins folder
PROJECT_ROOT = PACKAGE_ROOT.parent
# Two triggerers: each runs its agents on one event loop in one process, so one of them keeps one
# core busy starting a burst (about 13 ms of CPU per agent, most of it pydantic-ai and the SDK); two
# start it on both cores. They share each burst (stack.trigger_claim) and one limiter and ledger.
TRIGGERERS = ("triggerer", "triggerer-2")
COMPONENTS = ("scheduler", *TRIGGERERS, "dag-processor", "api-server")


def components_for(sql_alchemy_conn: str, components: tuple[str, ...] = COMPONENTS) -> tuple[str, ...]:
    """Which of ``components`` a deployment on this metadata DB runs. On SQLite, one triggerer:
    Airflow's trigger claim relies on row locks (``SELECT ... FOR UPDATE SKIP LOCKED``), which SQLite
    ignores, so two triggerers could both claim one trigger and both run its agent (seen in a test:
    two executions, four requests instead of two)."""
    if sql_alchemy_conn.startswith("sqlite"):
        return tuple(name for name in components if name not in TRIGGERERS[1:])
    return components


UI_USER = "admin"
ENGINE_BUNDLE = "erp-agents-engine"  # the DAG bundle of workflows registered through OrchestrationEngine
STATE_VERSION = 1

# Tuning for hundreds of deferred agent tasks on 2 cores (see README, "Embedded deployment").
TUNING: dict[str, str] = {
    "AIRFLOW__CORE__PARALLELISM": "8",  # LocalExecutor forks all its workers at start; agents need none
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "500",
    "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
    "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "1024",
    "AIRFLOW__TRIGGERER__CAPACITY": "1000",  # triggers one triggerer runs at once
    # At most this many new triggers per triggerer and loop turn; each turn claims the triggerer's fair
    # share (stack.trigger_claim), so one burst is split between the triggerers and claimed in one turn.
    # Airflow's fixed 50 spread a burst of 500 agents over 5-10 s (a turn takes 0.2-1 s on 2 cores).
    "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": "500",
    "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "512",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    # An idle scheduler sleeps this long (Airflow: 1 s) before it looks again, so a run triggered from
    # the UI or the API waited up to 1 s before its first loop; a loop with work does not sleep.
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "5",  # per process; PostgreSQL allows 300 connections
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "10",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_PRE_PING": "True",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",  # new spec files are seen within 5 s
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
}


class StackState(BaseModel):
    """What ``up`` recorded about a deployment (stack.json): ports, URLs and which parts it owns.

    Secrets are not in here: the JWT secret and fernet key live in their own 0600 file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = STATE_VERSION
    home: str
    api_port: int
    pg_port: int | None  # None: the metadata DB is the user's PostgreSQL, not the embedded one
    sql_alchemy_conn: str
    governance_url: str
    dags_folder: str
    worker_log_port: int
    trigger_log_port: int  # the first triggerer's log server
    trigger_log_ports: dict[str, int] = {}  # the other triggerers' log servers, by component

    def log_port_of(self, triggerer: str) -> int:
        return self.trigger_log_ports.get(triggerer, self.trigger_log_port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass(frozen=True)
class Layout:
    """The files of one deployment, all under ``AIRFLOW_HOME/erp_agents_stack`` (PostgreSQL's data beside)."""

    home: Path

    @property
    def folder(self) -> Path:
        return self.home / "erp_agents_stack"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def pids(self) -> Path:
        return self.folder / "pids"

    @property
    def state_file(self) -> Path:
        return self.folder / "stack.json"

    @property
    def secrets_file(self) -> Path:
        return self.folder / "secrets.json"

    @property
    def passwords_file(self) -> Path:
        return self.folder / "simple_auth_manager_passwords.json"

    @property
    def pgdata(self) -> Path:
        return self.home / "postgres"

    @property
    def engine_bundle(self) -> Path:
        """Specs registered through OrchestrationEngine: a DAG bundle the dag-processor parses."""
        return self.home / "erp_agents_engine_bundle"

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def read_state(self) -> StackState | None:
        try:
            return StackState.model_validate_json(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def write_state(self, state: StackState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(state.model_dump_json(indent=2))

    def deployment_secrets(self) -> dict[str, str]:
        """Fernet key and JWT secret, made once per deployment and kept in a 0600 file."""
        try:
            return dict(json.loads(self.secrets_file.read_text()))
        except (OSError, ValueError):
            pass
        from cryptography.fernet import Fernet

        values = {"fernet_key": Fernet.generate_key().decode(), "jwt_secret": secrets.token_urlsafe(32)}
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        return values


def engine_bundle_config(layout: Layout, dags_folder: str) -> list[dict[str, object]]:
    """The user's dags folder plus the engine's own bundle (parsed every 2 s, so registration is quick)."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    return [
        {"name": "dags-folder", "classpath": local, "kwargs": {"path": dags_folder}},
        {"name": ENGINE_BUNDLE, "classpath": local,
         "kwargs": {"path": str(layout.engine_bundle), "refresh_interval": 2}},
    ]


def deployment_env(layout: Layout, state: StackState, extra: dict[str, str] | None = None,
                   base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process of the deployment shares (``base``: the caller's, minus AIRFLOW*)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("AIRFLOW__") and k != "AIRFLOW_HOME"}
    keys = layout.deployment_secrets()
    env.update(TUNING)
    env.update(
        {
            "AIRFLOW_HOME": str(layout.home),
            "AIRFLOW__CORE__DAGS_FOLDER": state.dags_folder,
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PACKAGE_ROOT),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{state.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": state.api_url,
            "AIRFLOW__API__PORT": str(state.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.passwords_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": state.sql_alchemy_conn,
            "ERP_AGENTS_GOVERNANCE_DB_URL": state.governance_url,
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(engine_bundle_config(layout, state.dags_folder)),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.logs / "airflow"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(state.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(state.trigger_log_port),
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT), str(PACKAGE_ROOT), *filter(None, [source.get("PYTHONPATH")])]
            ),
        }
    )
    env.update(extra or {})
    return env


def component_env(env: dict[str, str], state: StackState, name: str) -> dict[str, str]:
    """``env`` as one component gets it: each triggerer serves its logs on a port of its own."""
    if name in TRIGGERERS:
        return {**env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(state.log_port_of(name))}
    return env
