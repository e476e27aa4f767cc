"""The supervisor's own autocommit connection: one per process, reused, each read seeing what was
committed before it; a connection the database dropped is replaced and the read tried once more."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from erp_agents.stack import supervisor_db


@pytest.fixture
def engine(tmp_path, monkeypatch):
    from airflow import settings

    engine = create_engine(f"sqlite:///{tmp_path / 'metadata.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE trigger (id INTEGER PRIMARY KEY)"))
    monkeypatch.setattr(settings, "engine", engine)
    monkeypatch.setattr(supervisor_db, "_connections", {})
    yield engine
    for connection in supervisor_db._connections.values():
        connection.close()
    engine.dispose()


def newest(connection) -> int:
    return int(connection.scalar(text("SELECT coalesce(max(id), 0) FROM trigger")))


def test_reads_share_one_connection_and_see_what_was_committed_since(engine, monkeypatch):
    assert supervisor_db.read(newest) == 0
    first = supervisor_db._connections[supervisor_db.os.getpid()]
    with engine.begin() as other:  # the scheduler defers a task
        other.execute(text("INSERT INTO trigger (id) VALUES (7)"))
    assert supervisor_db.read(newest) == 7  # no transaction (and so no snapshot) was left open
    assert supervisor_db._connections[supervisor_db.os.getpid()] is first
    monkeypatch.setattr(supervisor_db.os, "getpid", lambda: -1)  # a forked child opens its own
    assert supervisor_db.read(newest) == 7
    assert supervisor_db._connections[-1] is not first


def dropped(message: str, *, invalidated: bool) -> DBAPIError:
    error = OperationalError("SELECT max(id)", {}, Exception(message))
    error.connection_invalidated = invalidated
    return error


class FailingFirst:
    """A read whose first attempt fails with ``error``, then reads; records each connection it is given."""

    def __init__(self, error: DBAPIError) -> None:
        self.error, self.connections = error, []

    def __call__(self, connection) -> int:
        self.connections.append(connection)
        if len(self.connections) == 1:
            raise self.error
        return newest(connection)


def test_a_connection_the_database_dropped_is_replaced_and_the_read_tried_once_more(engine):
    supervisor_db.read(newest)
    old = supervisor_db._connections[supervisor_db.os.getpid()]
    reading = FailingFirst(dropped("server closed the connection unexpectedly", invalidated=True))

    assert supervisor_db.read(reading) == 0
    assert reading.connections[0] is old and reading.connections[1] is not old and old.closed


def test_any_other_error_is_the_callers_and_the_next_read_starts_afresh(engine):
    supervisor_db.read(newest)
    old = supervisor_db._connections[supervisor_db.os.getpid()]
    reading = FailingFirst(dropped("permission denied for table trigger", invalidated=False))

    with pytest.raises(DBAPIError, match="permission denied"):
        supervisor_db.read(reading)
    assert len(reading.connections) == 1 and old.closed
    assert supervisor_db.read(newest) == 0
