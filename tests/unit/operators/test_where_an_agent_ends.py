"""Where a worker-started agent task ends: in the triggerer on a deployment, on the worker under dag.test()."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from airflow.sdk import DAG

from erp_agents.operators.agent import DAG_TEST_USER, in_dag_test


def test_dag_test_still_marks_its_runs_the_way_the_operator_reads_them():
    assert f'triggering_user_name="{DAG_TEST_USER}"' in inspect.getsource(DAG.test), (
        "Airflow's DAG.test() no longer names its runs' user dag_test: find its new mark for LLMAgentOperator.execute")


def test_a_run_of_dag_test_ends_on_the_worker_and_any_other_run_in_the_triggerer():
    assert in_dag_test({"dag_run": SimpleNamespace(triggering_user_name="dag_test")})
    assert not in_dag_test({"dag_run": SimpleNamespace(triggering_user_name="admin")})
    assert not in_dag_test({"dag_run": SimpleNamespace(triggering_user_name=None)})
    assert not in_dag_test({})
