"""Registration knows which spec a deployment's DAG was built from: the digests in the DAG's docs."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from erp_agents.engine import OrchestrationEngine
from erp_agents.engine_run import dag_of
from erp_agents.exceptions import ErpAgentsError
from erp_agents.factory.loader import load_dags
from erp_agents.spec.digest import digests_in, digests_of
from erp_agents.spec.models import Agent, CostConfig, EngineConfig, LLMConfig, ModelPrice, Workflow
from erp_agents.stack.bundle_files import deploy_spec


def _workflow(prompt: str = "Check the ledger.") -> Workflow:
    return Workflow(name="digested", module="Finance", cost_budget=2.0, agents=[
        Agent(name="checker", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini", max_tokens=60),
              prompt_template=prompt),
        Agent(name="writer", module="Finance", llm_config=LLMConfig(model="gpt-4o-mini"),
              prompt_template="Write {{ agents.checker.output }}", dependencies=["checker"]),
    ])


ENGINE = EngineConfig(cost_config=CostConfig(model_costs={"gpt-4o-mini": ModelPrice(input=0.1, output=0.2)}))


def test_the_deployment_builds_the_dag_with_the_digests_the_engine_expects(tmp_path):
    workflow = _workflow()
    deploy_spec(SimpleNamespace(engine_bundle=tmp_path), workflow, ENGINE)  # type: ignore[arg-type]
    [dag] = load_dags(tmp_path / workflow.name, log=logging.getLogger("test"))
    assert digests_in(dag.doc_md) == digests_of(workflow, ENGINE)


def test_a_changed_prompt_with_the_same_tasks_changes_the_workflow_digest_only():
    before, after = digests_of(_workflow(), ENGINE), digests_of(_workflow("Check it twice."), ENGINE)
    assert before[0] != after[0] and before[1] == after[1]
    assert digests_of(_workflow(), EngineConfig())[1] != before[1]


class RemoteApi:
    """The REST answers registration reads, for a DAG built from ``workflow`` and ``engine``."""

    def __init__(self, workflow: Workflow, engine: EngineConfig) -> None:
        dag = dag_of(workflow, engine, "dags/specs/digested.yaml")
        self.edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
        self.doc_md = dag.doc_md

    def dag(self, dag_id: str) -> dict[str, Any]:
        return {"dag_id": dag_id}

    def dag_edges(self, dag_id: str) -> dict[str, list[str]]:
        return self.edges

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        assert path == "/dags/digested/details"
        return {"doc_md": self.doc_md}

    def connection_exists(self, conn_id: str) -> bool:
        return True


def _remote(config: EngineConfig | None, api: RemoteApi) -> OrchestrationEngine:
    engine = OrchestrationEngine(config, url="http://airflow.invalid")
    engine._api = api  # type: ignore[assignment]
    return engine


def test_a_remote_dag_built_from_the_same_spec_registers():
    assert _remote(ENGINE, RemoteApi(_workflow(), ENGINE)).register_workflow(_workflow()) == "digested"
    # With no config given, the deployment's own engine config applies, whatever it is.
    assert _remote(None, RemoteApi(_workflow(), ENGINE)).register_workflow(_workflow()) == "digested"


def test_a_remote_dag_of_another_version_of_the_workflow_is_refused():
    with pytest.raises(ErpAgentsError, match="built from another version of this workflow"):
        _remote(None, RemoteApi(_workflow(), ENGINE)).register_workflow(_workflow("Check it twice."))


def test_a_remote_dag_built_with_another_engine_config_is_refused_when_a_config_is_given():
    with pytest.raises(ErpAgentsError, match="built with another engine config"):
        _remote(EngineConfig(), RemoteApi(_workflow(), ENGINE)).register_workflow(_workflow())


class ReparsingApi(RemoteApi):
    """A deployment that still shows the DAG of the old spec for the first ``stale`` reads."""

    def __init__(self, old: Workflow, new: Workflow, engine: EngineConfig, stale: int) -> None:
        super().__init__(new, engine)
        self.new_doc, self.doc_md = self.doc_md, RemoteApi(old, engine).doc_md
        self.stale, self.reads, self.reparsed = stale, 0, 0

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        self.reads += 1
        return {"doc_md": self.doc_md if self.reads <= self.stale else self.new_doc}

    def reparse(self, dag_id: str) -> None:
        self.reparsed += 1


def test_re_registering_a_changed_spec_waits_for_the_dag_built_from_it(monkeypatch):
    """Same tasks and edges, another prompt: the old DAG must not pass for the new one."""
    monkeypatch.setattr("erp_agents.engine.time.sleep", lambda s: None)
    api = ReparsingApi(_workflow(), _workflow("Check it twice."), ENGINE, stale=3)
    engine = _remote(ENGINE, api)
    engine._wait_for_dag("digested", api.edges, digests_of(_workflow("Check it twice."), ENGINE))
    assert api.reads == 4 and api.reparsed == 1


def test_a_spec_file_with_a_prompt_file_and_its_written_back_form_give_one_digest(tmp_path):
    from erp_agents.spec.loader import load_spec_file, load_spec_text
    from erp_agents.stack.bundle_files import spec_yaml

    (tmp_path / "check.txt").write_text("Check the ledger.")  # next to the spec
    spec = tmp_path / "digested.yaml"
    spec.write_text("kind: Workflow\nversion: 1\nname: digested\nagents:\n  - name: checker\n"
                    "    llm_config: {model: gpt-4o-mini}\n    prompt_file: check.txt\n")
    loaded = load_spec_file(spec)
    written_back = load_spec_text(spec_yaml(loaded), "<written back>")
    assert loaded.agents[0].prompt_file == "check.txt" and written_back.agents[0].prompt_file is None
    assert digests_of(loaded, ENGINE) == digests_of(written_back, ENGINE)
