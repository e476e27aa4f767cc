"""A deployment on SQLite runs one triggerer: Airflow's trigger claim needs row locks SQLite lacks."""

from erp_agents.stack.settings import COMPONENTS, TRIGGERERS, components_for


def test_sqlite_runs_one_triggerer_and_postgresql_all_of_them():
    on_sqlite = components_for("sqlite:////tmp/airflow.db")
    assert [c for c in on_sqlite if c in TRIGGERERS] == [TRIGGERERS[0]]
    assert set(COMPONENTS) - set(on_sqlite) == set(TRIGGERERS[1:])
    assert components_for("postgresql+psycopg2://postgres@127.0.0.1:5432/airflow") == COMPONENTS


def test_a_subset_keeps_its_order_and_loses_only_the_extra_triggerers():
    assert components_for("sqlite:///x.db", (*TRIGGERERS, "api-server")) == (TRIGGERERS[0], "api-server")
