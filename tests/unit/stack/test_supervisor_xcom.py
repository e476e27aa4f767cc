"""The supervisor's direct XCom read mirrors Airflow sources that are pinned here, and replaces the
handler the triggerer's supervisor calls for ``GetXCom``."""

from __future__ import annotations

import hashlib
import inspect

from airflow.api_fastapi.execution_api.routes import xcoms
from airflow.jobs import triggerer_job_runner
from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor
from airflow.sdk.api.client import XComOperations
from airflow.sdk.execution_time import request_handlers

from erp_agents.stack import supervisor_xcom


def test_it_mirrors_the_airflow_sources_it_was_written_against():
    sources = {
        "request_handlers.handle_get_xcom": request_handlers.handle_get_xcom,
        "execution_api.routes.xcoms.get_xcom": xcoms.get_xcom,
        "XComOperations.get": XComOperations.get,
    }
    found = {name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest() for name, f in sources.items()}
    changed = sorted(n for n, digest in found.items() if supervisor_xcom.PINNED_XCOM_SOURCES[n] != digest)
    assert not changed, (f"Airflow changed {changed}: port the change into erp_agents.stack.supervisor_xcom "
                         "(the query, the map index and not-found rules, the result), then update PINNED_XCOM_SOURCES")
    # The supervisor calls the handler by its module-level name, which is what gets replaced.
    assert "handle_get_xcom(self.client, msg)" in inspect.getsource(TriggerRunnerSupervisor._handle_request)


def test_the_supervisor_answers_get_xcom_with_the_database_read(monkeypatch):
    monkeypatch.setattr(triggerer_job_runner, "handle_get_xcom", triggerer_job_runner.handle_get_xcom)
    asked = []
    monkeypatch.setattr(supervisor_xcom, "read_xcom", lambda msg: asked.append(msg) or ("result", {}))
    assert supervisor_xcom.read_xcoms_from_the_database() is True
    assert triggerer_job_runner.handle_get_xcom(object(), "msg") == ("result", {})
    assert asked == ["msg"]
