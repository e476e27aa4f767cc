"""Registering on a remote deployment checks every connection the workflow's agents will read."""

from __future__ import annotations

import pytest

from erp_agents.engine import OrchestrationEngine
from erp_agents.exceptions import ErpAgentsError
from erp_agents.spec.digest import digest_line, digests_of
from erp_agents.spec.models import Agent, EngineConfig, LLMConfig, Workflow


class FakeApi:
    def __init__(self, connections: set[str]) -> None:
        self.connections = connections
        self.asked: list[str] = []
        self.doc_md = ""

    def dag(self, dag_id: str) -> dict[str, str]:
        return {"dag_id": dag_id}

    def dag_edges(self, dag_id: str) -> dict[str, list[str]]:
        return {}

    def get(self, path: str) -> dict[str, str]:  # the DAG's docs: built from the same spec and config
        return {"doc_md": self.doc_md}

    def connection_exists(self, conn_id: str) -> bool:
        self.asked.append(conn_id)
        return conn_id in self.connections


def _check(connections: set[str]) -> FakeApi:
    engine = OrchestrationEngine(EngineConfig(), url="http://airflow.test")
    api = engine._api = FakeApi(connections)  # type: ignore[assignment]
    wf = Workflow(name="wf", agents=[
        Agent(name="a", prompt_template="x", llm_config=LLMConfig(model="gpt-4o-mini", conn_id="team_b_openai")),
        Agent(name="b", prompt_template="x", llm_config=LLMConfig(model="gpt-4o-mini")),
    ])
    api.doc_md = digest_line(wf, engine.config)
    engine._check_remote(wf, "wf", {}, digests_of(wf, engine.config))
    return api


def test_an_agent_connection_missing_on_the_deployment_is_named() -> None:
    with pytest.raises(ErpAgentsError, match="connection 'team_b_openai' \\(provider 'openai'\\) does not exist"):
        _check({"openai_default"})


def test_agent_and_provider_connections_are_each_checked_once() -> None:
    assert _check({"openai_default", "team_b_openai"}).asked == ["openai_default", "team_b_openai"]
