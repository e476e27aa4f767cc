"""The distributed topology, described once for both places it runs: this machine (``cluster.py``)
and Docker Compose (``compose.py``).

What differs between the two is only where things are (``Endpoints``: database, broker, API and
simulator addresses, folders, secrets); the components, their commands, the tuning and every
Airflow setting come from here, so the local cluster and docker-compose.yaml cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from erp_agents.spec.models import EngineConfig, LimiterConfig
from erp_agents.stack.settings import TUNING, UI_USER

METADATA_DB = "erp_cluster_airflow"
GOVERNANCE_DB = "erp_cluster_governance"
LIMITER_NAMESPACE = "erp_cluster"
SIMULATOR_KEY = "sim-key"  # the simulator accepts any key; a real provider's comes from the environment
TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
COMPONENTS = ("llm-simulator", *AIRFLOW_COMPONENTS)  # start order; stop is the reverse

# The embedded tuning, adapted to Celery: tasks run in worker processes (parallelism caps what is
# queued to them at once), and every process's DB pool is kept small so the whole topology stays
# well under PostgreSQL's default 100 connections.
CLUSTER_TUNING: dict[str, str] = {
    **TUNING,
    "AIRFLOW__CORE__PARALLELISM": "64",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",  # per worker; an agent holds no slot while it waits
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "7",
}


@dataclass(frozen=True)
class Endpoints:
    """Where the parts of one cluster are; the only thing the local cluster and Compose set differently."""

    postgres: str  # host:port of the PostgreSQL server
    postgres_auth: str  # "user" or "user:password"
    redis: str  # host:port of Redis
    broker_db: int  # Redis DB of the Celery broker
    limiter_db: int  # Redis DB of the rate limiter
    api_url: str  # how workers and triggerers reach the api-server
    simulator_url: str  # the LLM simulator's base URL, e.g. http://127.0.0.1:8765
    dags_folder: str
    plugins_folder: str
    pythonpath: str
    engine_config: str  # path of the engine config file (limiter on Redis)
    fernet_key: str
    jwt_secret: str
    openai_conn: str | None = None  # None: the simulator

    def database_url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.postgres_auth}@{self.postgres}/{database}"

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis}/{self.broker_db}"

    @property
    def limiter_url(self) -> str:
        return f"redis://{self.redis}/{self.limiter_db}"


def simulator_conn(simulator_url: str) -> str:
    """The openai_default connection as an Airflow URI (host percent-encoded, the documented way)."""
    from urllib.parse import quote

    return f"openai://:{SIMULATOR_KEY}@{quote(simulator_url.rstrip('/') + '/v1', safe='')}"


def bundle_config(dags_folder: str) -> list[dict[str, object]]:
    return [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": dags_folder}}]


def cluster_env(ep: Endpoints) -> dict[str, str]:
    """Every setting each Airflow process of the cluster gets (secrets and addresses from ``ep``)."""
    return {
        **CLUSTER_TUNING,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": ep.dags_folder,
        "AIRFLOW__CORE__PLUGINS_FOLDER": ep.plugins_folder,
        "AIRFLOW__CORE__FERNET_KEY": ep.fernet_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": ep.jwt_secret,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{ep.api_url}/execution/",
        "AIRFLOW__API__BASE_URL": ep.api_url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ep.database_url(METADATA_DB),
        "AIRFLOW__CELERY__BROKER_URL": ep.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + ep.database_url(METADATA_DB).replace("+psycopg2", ""),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundle_config(ep.dags_folder)),
        "ERP_AGENTS_GOVERNANCE_DB_URL": ep.database_url(GOVERNANCE_DB),
        "ERP_AGENTS_ENGINE_CONFIG": ep.engine_config,
        "AIRFLOW_CONN_OPENAI_DEFAULT": ep.openai_conn or simulator_conn(ep.simulator_url),
        "PYTHONPATH": ep.pythonpath,
    }


def engine_config(limiter_url: str, base: EngineConfig | None = None) -> EngineConfig:
    """The cluster's engine config: ``base`` (default: the defaults), with the rate limiter's windows
    in Redis (shared by both triggerers, so a limit holds across the cluster). Only where the windows
    live is the cluster's; the rest of ``base``'s limiter (lease_seconds) is kept."""
    base = base or EngineConfig()
    where = {"backend": "redis", "url": limiter_url, "namespace": LIMITER_NAMESPACE}
    limiter = LimiterConfig.model_validate({**base.limiter.model_dump(exclude_unset=True), **where})
    return base.model_copy(update={"limiter": limiter})


def engine_config_yaml(limiter_url: str, base: EngineConfig | None = None) -> str:
    from erp_agents.stack.bundle_files import spec_yaml

    return spec_yaml(engine_config(limiter_url, base))


def command(name: str) -> tuple[str, ...]:
    """A component's command line, ``airflow ...`` or ``python -m ...`` (each place adds its own
    interpreter, host and port arguments)."""
    if name in TRIGGERERS:  # Airflow's triggerer, its execution-API client built at start (stack.triggerer)
        return ("python", "-m", "erp_agents.stack.triggerer")
    if name == "scheduler":  # Airflow's scheduler, its imports frozen first (stack.scheduler)
        return ("python", "-m", "erp_agents.stack.scheduler")
    if name in WORKERS:
        return ("airflow", "celery", "worker", "--celery-hostname", f"{name}@%h")
    if name == "llm-simulator":
        return ("python", "-m", "include.llm_simulator")
    return ("airflow", name)
