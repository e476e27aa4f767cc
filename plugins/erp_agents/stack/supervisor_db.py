"""The triggerer's supervisor's own autocommit connection to the metadata database, for its small reads.

The supervisor serves every trigger of its triggerer from one thread, and two of its reads happen
hundreds of times a run: the probe for new triggers (``triggerer_loop``, ten times a second) and the
XCom reads of the triggers it runs (``supervisor_xcom``: a workflow summary reads two per agent).
Through a pooled session each paid a checkout, the pool's pre-ping (a round trip), a BEGIN and a
COMMIT around its one SELECT: py-spy put most of a summary read's time in the pre-ping, and 8% of a
supervisor's samples in the probe during shape (a). Here they share one connection per process in
autocommit mode: one round trip each, and each statement sees what was committed before it.

A connection the database dropped (a restart, an idle timeout) is replaced and the read tried once
more on a new one, which is what the pre-ping was for; any other error is the caller's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# By process id: the trigger runner is forked from the supervisor and must never share its socket.
_connections: dict[int, Any] = {}


def _connection() -> Any:
    from airflow import settings

    connection = _connections.get(os.getpid())
    if connection is None or connection.closed or connection.invalidated:
        connection = settings.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        _connections[os.getpid()] = connection
    return connection


def _drop() -> None:
    from sqlalchemy.exc import SQLAlchemyError

    if (connection := _connections.pop(os.getpid(), None)) is not None:
        try:
            connection.close()
        except SQLAlchemyError:
            pass  # already broken: nothing left to release


def read(reading: Callable[[Any], T]) -> T:
    """``reading(connection)`` on the supervisor's own connection; once more on a new connection
    when the database had dropped the old one."""
    from sqlalchemy.exc import DBAPIError

    try:
        return reading(_connection())
    except DBAPIError as exc:
        _drop()
        if not exc.connection_invalidated:
            raise
    return reading(_connection())
