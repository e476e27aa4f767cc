"""A deployment on SQLite runs one triggerer: Airflow's trigger claim needs row locks SQLite lacks."""

from erp_agents.stack.settings import COMPONENTS, TRIGGERERS, components_for


def test_sqlite_runs_one_triggerer_and_postgresql_all_of_them():
    on_sqlite = components_for("sqlite:////tmp/airflow.db")
    assert [c for c in on_sqlite if c in TRIGGERERS] == [TRIGGERERS[0]]
    assert set(COMPONENTS) - set(on_sqlite) == set(TRIGGERERS[1:])
    assert components_for("postgresql+psycopg2://postgres@127.0.0.1:5432/airflow") == COMPONENTS


def test_a_subset_keeps_its_order_and_loses_only_the_extra_triggerers():
    assert components_for("sqlite:///x.db", (*TRIGGERERS, "api-server")) == (TRIGGERERS[0], "api-server")


def test_restarting_a_triggerer_a_sqlite_deployment_does_not_run_is_refused_before_anything_stops(tmp_path, monkeypatch):
    import pytest

    from erp_agents.stack import Deployment, processes
    from erp_agents.stack.deployment import StackError
    from erp_agents.stack.settings import StackState

    deployment = Deployment(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'airflow.db'}")
    deployment.layout.write_state(StackState(
        home=str(tmp_path), api_port=8080, pg_port=None, sql_alchemy_conn=f"sqlite:///{tmp_path / 'airflow.db'}",
        governance_url=f"sqlite:///{tmp_path / 'governance.db'}", dags_folder=str(tmp_path), worker_log_port=1,
        trigger_log_port=2))
    touched: list[str] = []
    monkeypatch.setattr(processes, "stop", lambda layout, name: touched.append(name))
    monkeypatch.setattr(processes, "start", lambda *args: touched.append("start"))
    with pytest.raises(StackError, match="triggerer-2 is not part of this deployment .*sqlite"):
        deployment.restart("triggerer-2")
    assert touched == []
