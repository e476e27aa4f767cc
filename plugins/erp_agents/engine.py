"""OrchestrationEngine: the original Python API as a client of an Airflow deployment.

Embedded (default): the deployment under AIRFLOW_HOME (``python -m erp_agents up``), started on
first use and reused by later calls and other processes; used as a context manager, the engine
stops a deployment it started. ``register_workflow`` writes the workflow's spec into the engine's
DAG bundle there, and the deployment's own dag-processor turns it into a DAG. Remote (``url=``):
workflows come from that deployment's bundles; registration checks the DAG is there and matches.
Either way runs go through Airflow's REST API v2 (trigger, watch, task states, XComs), so agents
run under the real scheduler and triggerer, side by side. Nothing here schedules or retries.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from erp_agents.clients import LLMClient
from erp_agents.engine_run import dag_of
from erp_agents.exceptions import ErpAgentsError
from erp_agents.factory.plan import SUMMARY_TASK_ID
from erp_agents.limits.pools import sync_pools
from erp_agents.results import WorkflowResult
from erp_agents.spec.digest import digests_in, digests_of
from erp_agents.spec.models import EngineConfig, MonitorConfig, Workflow
from erp_agents.stack.bundle_files import deploy_spec, spec_yaml
from erp_agents.stack.deployment import Deployment
from erp_agents.stack.rest import AirflowApi
from erp_agents.stack.settings import ENGINE_BUNDLE

if TYPE_CHECKING:
    from erp_agents.monitoring.client import StatusClient

PACKAGE_DIR = Path(__file__).resolve().parent
REGISTER_TIMEOUT_S = 120.0


class OrchestrationEngine:
    """Registers workflows as Airflow DAGs on a deployment and runs them there.

    ``llm_client`` (optional) becomes the default provider: it sets that provider's type and
    connection, and the config's other settings for it (limits, pool, timeouts) are kept. Embedded,
    its key reaches the triggerer through the triggerer's environment (AIRFLOW_CONN_<ID>), never a
    file or the DB; remote, the connection must exist on the deployment. ``url``/``username``/``password``: a
    remote Airflow (REST API v2). ``home``: the embedded deployment's AIRFLOW_HOME.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        llm_client: LLMClient | None = None,
        *,
        url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        home: str | Path | None = None,
        run_timeout: float | None = None,
    ) -> None:
        self._config_given = config is not None or llm_client is not None
        config = config or EngineConfig()
        self._conn_env: dict[str, str] = {}
        if llm_client is not None:
            llm_client = with_sdk_defaults(llm_client)
            name = llm_client.provider_type
            providers = {**config.providers, name: llm_client.provider_config(config.providers.get(name))}
            config = config.model_copy(update={"providers": providers, "default_provider": name})
            env_name = llm_client.expose()
            self._conn_env[env_name] = os.environ[env_name]
        self.config = config
        self.llm_client = llm_client
        self.url = url
        self.run_timeout = run_timeout
        self._credentials = (username, password)
        self.deployment = None if url else Deployment(home=Path(home) if home else Deployment().home, api_port=None)
        self._api: AirflowApi | None = None
        self._started_deployment = False
        self._registered: dict[str, Workflow] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "remote" if self.url else "embedded"

    @property
    def api(self) -> AirflowApi:
        """The REST client; embedded, the deployment is started (or attached to) here, once."""
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _connect(self) -> AirflowApi:
        if self.deployment is None:
            assert self.url is not None
            api = AirflowApi(self.url, *self._credentials)
            api.login()
            return api
        state, attached = self.deployment.up(extra_env=self._conn_env)
        self._started_deployment = not attached
        if attached and self._conn_env:
            self.deployment.ensure_triggerer_env(self._conn_env)
        self._check_monitoring(state.dags_folder)
        api = AirflowApi(state.api_url, *self.deployment.login())
        api.login()
        # This engine's config may name providers the deployment's specs do not: their pools too.
        sync_pools(state.api_url, self.deployment.login(), self.config)
        return api

    def _check_monitoring(self, dags_folder: str) -> None:
        """Metrics (on or off, and their prefix) are the deployment's: one endpoint serves every
        workflow, as its own engine config sets it. A config given here that asks for others would be
        ignored, so it is refused. (The status window is this engine's own: ``get_system_status``.)"""
        if not self._config_given:
            return
        from erp_agents.spec.discovery import engine_config_file, load_engine_config, spec_files

        path = engine_config_file(spec_files(Path(dags_folder) / "specs"))
        deployed = load_engine_config(path).monitor_config if path else MonitorConfig()
        mine = self.config.monitor_config
        differ = [f"monitor_config.{name} is {getattr(mine, name)!r} here, {getattr(deployed, name)!r} there"
                  for name in ("enabled", "metrics_prefix") if getattr(mine, name) != getattr(deployed, name)]
        if differ:
            raise ErpAgentsError(
                f"{'; '.join(differ)}: metrics are the deployment's, set in its engine config "
                f"({path or Path(dags_folder) / 'specs'}); set them there, or give this engine the same values"
            )

    def close(self) -> None:
        """Stop the embedded deployment if this engine started it; a remote one is left alone."""
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.deployment is not None and self._started_deployment:
            self.deployment.down()
            self._started_deployment = False

    def __enter__(self) -> OrchestrationEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the original API ---------------------------------------------------------------------

    @property
    def workflows(self) -> dict[str, Workflow]:
        return dict(self._registered)

    def register_workflow(self, workflow: Workflow, *, source: str | None = None) -> str:
        """Validate the workflow and make sure the deployment has its DAG; returns its id (the dag_id).

        Raises SpecError (agent and field named) on a dependency cycle or unknown dependency, and
        ErpAgentsError when a remote deployment lacks the DAG or its connection.
        """
        dag = dag_of(workflow, self.config, source or caller_file())
        expected = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
        digests = digests_of(workflow, self.config)
        if self.deployment is not None:
            self._check_not_elsewhere(dag.dag_id)
            deploy_spec(self.deployment.layout, workflow, self.config)
            self._wait_for_dag(dag.dag_id, expected, digests)
        else:
            self._check_remote(workflow, dag.dag_id, expected, digests)
        self._registered[dag.dag_id] = workflow
        return dag.dag_id

    def execute_workflow(
        self, workflow_id: str, *, params: dict[str, Any] | None = None, logical_date: datetime | None = None
    ) -> WorkflowResult:
        """Trigger one DAG run, wait for it, and return its status, cost and agent results."""
        self._registered_workflow(workflow_id)
        self.api.unpause(workflow_id)
        run_id = self.api.trigger(workflow_id, params, logical_date.isoformat() if logical_date else None)
        self.api.wait(workflow_id, run_id, self.run_timeout)
        return self.read_result(workflow_id, run_id)

    def read_result(self, dag_id: str, run_id: str) -> WorkflowResult:
        """The run's WorkflowResult from its workflow_summary XCom and the agents' outputs, which that
        task keeps in one more XCom (``agent_outputs``): two requests, whatever the number of agents."""
        from erp_agents.xcom import OUTPUTS_XCOM_KEY, run_outputs_from_xcom, run_summary_from_xcom

        value = self.api.xcom(dag_id, run_id, SUMMARY_TASK_ID)
        if value is None:
            states = self.api.task_states(dag_id, run_id)
            raise ErpAgentsError(f"run {run_id} of {dag_id} has no summary; task states: {states}")
        summary = run_summary_from_xcom(value)
        outputs = self.api.xcom(dag_id, run_id, SUMMARY_TASK_ID, OUTPUTS_XCOM_KEY)
        if outputs is None:
            raise ErpAgentsError(f"run {run_id} of {dag_id} has a summary without agent outputs: its DAG was "
                                 "built by an erp-agents older than this client; upgrade the deployment's plugin")
        return WorkflowResult.from_summary(summary, run_outputs_from_xcom(outputs))

    def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        """The latest run's summary (status, reason, per-agent cost), or ``registered`` before any run."""
        from erp_agents.xcom import run_summary_from_xcom

        self._registered_workflow(workflow_id)
        runs = self.api.get(f"/dags/{workflow_id}/dagRuns", order_by="-run_after", limit=1)["dag_runs"]
        if not runs:
            return {"workflow": workflow_id, "status": "registered", "reason": "no run yet"}
        run_id = runs[0]["dag_run_id"]
        value = self.api.xcom(workflow_id, run_id, SUMMARY_TASK_ID)
        if value is None:
            return {"workflow": workflow_id, "status": runs[0]["state"], "run_id": run_id, "reason": "no summary yet"}
        return run_summary_from_xcom(value).model_dump(mode="json") | {"run_id": run_id}

    def get_system_status(self, window_hours: float | None = None) -> dict[str, Any]:
        """The seed's system status (engine, monitoring, rate_limiting, cost_tracking) and more, over
        ``window_hours`` (default: the ``MonitorConfig.status_window_hours`` of the config this engine was
        given, else the deployment's), as the deployment computes it."""
        if window_hours is None and self._config_given:
            window_hours = self.config.monitor_config.status_window_hours
        return self._status_client().get_system_status(window_hours)

    def get_agent_status(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        """Per-agent state, tokens, cost, retries, limiter wait and timings of a run (default: the latest)."""
        return self._status_client().get_workflow_status(workflow_id, run_id)

    def _status_client(self) -> StatusClient:
        from erp_agents.monitoring.airflow_api import Credentials
        from erp_agents.monitoring.client import StatusClient

        api = self.api
        username, password = self.deployment.login() if self.deployment is not None else self._credentials
        return StatusClient(api.url, Credentials(username=username, password=password))

    # -- registration -------------------------------------------------------------------------

    def _wait_for_dag(self, dag_id: str, expected: dict[str, list[str]], digests: tuple[str, str]) -> None:
        """Until the deployment's dag-processor has parsed this very spec (its digests in the DAG's docs)
        into the same tasks and edges: a changed spec with the same tasks must not run as the old one."""
        deadline = time.monotonic() + REGISTER_TIMEOUT_S
        asked_reparse = False
        while True:
            dag = self.api.dag(dag_id)
            if dag is not None and self._built_from(dag_id) == digests and self.api.dag_edges(dag_id) == expected:
                return
            if dag is not None and not asked_reparse:
                self.api.reparse(dag_id)
                asked_reparse = True
            if time.monotonic() > deadline:
                raise ErpAgentsError(
                    f"the deployment did not load workflow {dag_id!r} within {REGISTER_TIMEOUT_S:.0f} s; "
                    f"see {self.deployment.layout.logs if self.deployment else ''}/dag-processor.log"
                )
            time.sleep(0.5)

    def _check_not_elsewhere(self, dag_id: str) -> None:
        """A dag_id another bundle (the dags folder) already defines would be two DAGs under one id."""
        found = self.api.dag(dag_id)
        bundle = (found or {}).get("bundle_name")
        if bundle and bundle != ENGINE_BUNDLE:
            raise ErpAgentsError(
                f"workflow {dag_id!r} is already a DAG of bundle {bundle!r} on this deployment "
                f"({(found or {}).get('fileloc')}); give the workflow another name, or trigger that DAG "
                "itself instead of registering it again"
            )

    def _built_from(self, dag_id: str) -> tuple[str, str] | None:
        """The (workflow, engine config) digests the deployment's DAG was built from."""
        return digests_in(self.api.get(f"/dags/{dag_id}/details").get("doc_md"))

    def _check_remote(self, workflow: Workflow, dag_id: str, expected: dict[str, list[str]],
                      digests: tuple[str, str]) -> None:
        """The remote DAG must be built from this workflow; and from this engine config when one was
        given (a config or a client), since the deployment builds it with its own and would ignore ours."""
        how = (f"deploy it: save the spec (erp_agents.engine.spec_yaml(workflow)) as dags/specs/{dag_id}.yaml in the "
               f"deployment's DAG bundle, wait for its dag-processor, then register again")
        if self.api.dag(dag_id) is None:
            raise ErpAgentsError(f"workflow {dag_id!r} is not a DAG on {self.url}; {how}")
        found = self.api.dag_edges(dag_id)
        if found != expected:
            missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
            raise ErpAgentsError(
                f"DAG {dag_id!r} on {self.url} differs from this workflow (tasks missing there: {missing}, "
                f"only there: {extra}, or other dependencies); {how}"
            )
        there = self._built_from(dag_id) or ("none", "none")
        if there[0] != digests[0]:
            raise ErpAgentsError(
                f"DAG {dag_id!r} on {self.url} was built from another version of this workflow (spec digest "
                f"{there[0]} there, {digests[0]} here: a prompt, limit, budget or other setting differs); {how}"
            )
        if self._config_given and there[1] != digests[1]:
            raise ErpAgentsError(
                f"DAG {dag_id!r} on {self.url} was built with another engine config (digest {there[1]} there, "
                f"{digests[1]} here); a remote deployment builds its DAGs with its own engine config: give this "
                "engine that same config, or none (no config and no llm_client) to use the deployment's as it is"
            )
        wanted: dict[str, str] = {}  # connection -> a provider that reads it; agents' own conn_ids too
        for agent in workflow.agents:
            provider = agent.llm_config.provider or self.config.default_provider
            configured = self.config.providers.get(provider)
            conn_id = agent.llm_config.conn_id or (configured.conn_id if configured else None)
            if conn_id:
                wanted.setdefault(conn_id, provider)
        for conn_id, provider in sorted(wanted.items()):
            if not self.api.connection_exists(conn_id):
                raise ErpAgentsError(
                    f"connection {conn_id!r} (provider {provider!r}) does not exist on {self.url}: create it there "
                    "(Admin > Connections, `airflow connections add`, or its secrets backend); keys given to a client "
                    "object are not sent to a remote deployment"
                )

    def _registered_workflow(self, workflow_id: str) -> Workflow:
        try:
            return self._registered[workflow_id]
        except KeyError:
            known = ", ".join(sorted(self._registered)) or "none"
            raise KeyError(f"workflow {workflow_id!r} is not registered; registered: {known}") from None


SDK_ENV = {"anthropic": "ANTHROPIC"}  # every other provider type speaks OpenAI's wire format


def with_sdk_defaults(client: LLMClient) -> LLMClient:
    """The client with the key and endpoint its SDK would take from this process's environment
    (OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_*) filled in, so the deployment's triggerer, whose
    environment is not this process's, calls the same endpoint with the same key."""
    prefix = SDK_ENV.get(client.provider_type, "OPENAI")
    changes: dict[str, Any] = {}
    if client.api_key is None and os.environ.get(f"{prefix}_API_KEY"):
        changes["api_key"] = os.environ[f"{prefix}_API_KEY"]
    if client.base_url is None and os.environ.get(f"{prefix}_BASE_URL"):
        changes["base_url"] = os.environ[f"{prefix}_BASE_URL"]
    return dataclasses.replace(client, **changes) if changes else client


def caller_file() -> str:
    """The user's file that registered the workflow."""
    for frame in inspect.stack()[1:]:
        path = Path(frame.filename)
        if path.is_file() and PACKAGE_DIR not in path.resolve().parents:
            return str(path.resolve())
    return str(PACKAGE_DIR / "engine.py")


__all__ = ["OrchestrationEngine", "caller_file", "spec_yaml"]
