"""OrchestrationEngine: the original Python API as a thin facade over Airflow.

``register_workflow`` builds the workflow's DAG and records it in Airflow's metadata DB as the
dag-processor would (serialized DAG, version, code), so it shows in the UI and ``dag.test()`` can
run it. ``execute_workflow`` runs it through ``dag.test()`` (Airflow's own task runner and
in-process triggerer, the path of ``airflow dags test``) in a child process, see engine_run. The
result is read back from the run's XComs. Nothing here schedules or retries by itself; Airflow does.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erp_agents.clients import LLMClient
from erp_agents.engine_run import dag_of
from erp_agents.exceptions import ErpAgentsError
from erp_agents.results import WorkflowResult
from erp_agents.spec.models import EngineConfig, Workflow

if TYPE_CHECKING:
    from airflow.sdk import DAG

PACKAGE_DIR = Path(__file__).resolve().parent
LOG_TAIL_LINES = 20
# Engine-registered DAGs belong to a DAG bundle of their own with an empty folder. dag.test()
# re-parses the bundle that owns the DAG before each run; with the user's dags folder as owner,
# every run would parse every DAG file, and concurrent first runs would race to insert the same rows.
ENGINE_BUNDLE = "erp-agents-engine"


class OrchestrationEngine:
    """Registers workflows as Airflow DAGs and runs them; results come from Airflow's records.

    ``llm_client`` (optional) becomes the default provider, its key an environment connection of
    this process only. Without it, agents use the providers and connections of ``config``.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        llm_client: LLMClient | None = None,
        *,
        initialize_db: bool = True,
    ) -> None:
        config = config or EngineConfig()
        if llm_client is not None:
            name = llm_client.provider_type
            providers = {**config.providers, name: llm_client.provider_config()}
            config = config.model_copy(update={"providers": providers, "default_provider": name})
            llm_client.expose()
        self.config = config
        self.llm_client = llm_client
        self._initialize_db = initialize_db
        self._db_ready = False
        self._registered: dict[str, tuple[Workflow, str]] = {}  # dag_id -> (workflow, source file)

    @property
    def workflows(self) -> dict[str, Workflow]:
        return {dag_id: workflow for dag_id, (workflow, _) in self._registered.items()}

    def register_workflow(self, workflow: Workflow, *, source: str | None = None) -> str:
        """Validate and build the workflow's DAG, record it in Airflow; returns its id (the dag_id).

        ``source`` is the file whose code the Airflow UI shows (default: the calling file).
        Raises SpecError (agent and field named) on a dependency cycle or unknown dependency.
        """
        source = source or caller_file()
        dag = dag_of(workflow, self.config, source)
        self._ensure_db()
        _record_dag(dag)
        self._registered[dag.dag_id] = (workflow, source)
        return dag.dag_id

    def execute_workflow(
        self,
        workflow_id: str,
        *,
        params: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
    ) -> WorkflowResult:
        """Run one DAG run through ``dag.test()`` and return its status, cost and agent results."""
        run = self.prepare_run(workflow_id, params=params, logical_date=logical_date)
        with run.log_file.open("wb") as log:
            code = subprocess.run(run.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=run.env).returncode
        return run.result(code)

    def prepare_run(
        self, workflow_id: str, *, params: dict[str, Any] | None = None, logical_date: datetime | None = None
    ) -> RunProcess:
        """The child process that runs one DAG run (see engine_run), and where its files go."""
        workflow, source = self._registered_workflow(workflow_id)
        folder = Path(tempfile.mkdtemp(prefix=f"{workflow_id}-", dir=_engine_log_folder()))
        request = {
            "workflow": workflow.model_dump(mode="json"),
            "engine": self.config.model_dump(mode="json"),
            "source": source,
            "params": params,
            "logical_date": logical_date.isoformat() if logical_date else None,
        }
        (folder / "request.json").write_text(json.dumps(request))
        return RunProcess(workflow_id, folder)

    def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        """The latest run's summary (status, reason, per-agent cost), or ``registered`` before any run."""
        from erp_agents.monitoring.report import load_summary

        self._registered_workflow(workflow_id)
        try:
            return load_summary(workflow_id)
        except LookupError as exc:
            return {"workflow": workflow_id, "status": "registered", "reason": str(exc)}

    def _registered_workflow(self, workflow_id: str) -> tuple[Workflow, str]:
        try:
            return self._registered[workflow_id]
        except KeyError:
            known = ", ".join(sorted(self._registered)) or "none"
            raise KeyError(f"workflow {workflow_id!r} is not registered; registered: {known}") from None

    def _ensure_db(self) -> None:
        if self._db_ready:
            return
        if self._initialize_db:
            _initialize_db_if_empty()
        self._db_ready = True


@dataclass(frozen=True)
class RunProcess:
    """One ``python -m erp_agents.engine_run`` child: its command, environment and files."""

    workflow_id: str
    folder: Path

    @property
    def log_file(self) -> Path:
        return self.folder / "run.log"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "erp_agents.engine_run", str(self.folder / "request.json"), str(self.folder / "result.json")]

    @property
    def env(self) -> dict[str, str]:
        """This process's environment (connections included), erp_agents importable, and the
        configured DAG bundles plus the engine's own."""
        root = str(PACKAGE_DIR.parent)
        path = os.environ.get("PYTHONPATH", "")
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, path])),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(_bundles_with_engine_bundle()),
        }

    def result(self, returncode: int) -> WorkflowResult:
        result_file = self.folder / "result.json"
        if returncode != 0 or not result_file.exists():
            lines = self.log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            raise ErpAgentsError(
                f"the run of {self.workflow_id!r} ended with exit code {returncode}; log: {self.log_file}\n"
                + "\n".join(lines)
            )
        return read_result(self.workflow_id, json.loads(result_file.read_text())["run_id"])


def read_result(dag_id: str, run_id: str) -> WorkflowResult:
    """The run's WorkflowResult from its workflow_summary XCom and its agents' outputs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from erp_agents.monitoring.report import load_summary
    from erp_agents.triggers.agent import agent_output

    summary = load_summary(dag_id, run_id)
    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
            )
        ).all()
    outputs = {task_id: agent_output(value) for task_id, value in rows if task_id in summary["per_agent"]}
    return WorkflowResult.from_summary(summary, outputs)


def _record_dag(dag: DAG) -> None:
    """Write the DAG to the metadata DB the way the dag-processor does after parsing a file."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, ENGINE_BUNDLE) is None:
            session.add(DagBundleModel(name=ENGINE_BUNDLE))
            session.flush()
        update_dag_parsing_results_in_db(
            ENGINE_BUNDLE, None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session, files_parsed=set()
        )


def _bundles_with_engine_bundle() -> list[dict[str, Any]]:
    from airflow.configuration import conf

    from airflow.configuration import AIRFLOW_HOME

    folder = Path(AIRFLOW_HOME) / "erp_agents_engine_bundle"
    folder.mkdir(parents=True, exist_ok=True)
    bundles = [b for b in conf.getjson("dag_processor", "dag_bundle_config_list") or [] if b["name"] != ENGINE_BUNDLE]
    classpath = "airflow.dag_processing.bundles.local.LocalDagBundle"
    return [*bundles, {"name": ENGINE_BUNDLE, "classpath": classpath, "kwargs": {"path": str(folder)}}]


def _engine_log_folder() -> Path:
    from airflow.configuration import conf

    folder = Path(conf.get("logging", "base_log_folder")) / "erp_agents_engine"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _initialize_db_if_empty() -> None:
    """The embedded default: a fresh AIRFLOW_HOME gets its SQLite schema, as `airflow db migrate`."""
    from airflow import settings
    from airflow.utils.db import initdb
    from sqlalchemy import inspect as sa_inspect

    if not sa_inspect(settings.engine).has_table("dag_version"):
        initdb()


def caller_file() -> str:
    """The user's file that registered the workflow: its code is what the Airflow UI shows."""
    for frame in inspect.stack()[1:]:
        path = Path(frame.filename)
        if path.is_file() and PACKAGE_DIR not in path.resolve().parents:
            return str(path.resolve())
    return str(PACKAGE_DIR / "engine.py")
