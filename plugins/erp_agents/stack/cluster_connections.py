"""Copy the environment's ``AIRFLOW_CONN_*`` connections into the metadata DB: ``python -m erp_agents.stack.cluster_connections``.

The cluster's processes read provider connections from their environment, but Airflow's REST API
lists only connections stored in the DB, and ``OrchestrationEngine(url=...)`` asks the API whether
a workflow's connection exists before it runs it. Run after ``airflow db migrate`` (locally by
``cluster up``, in Compose by ``airflow-init``), so both answer the same way. Values are stored
encrypted with the deployment's fernet key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PREFIX = "AIRFLOW_CONN_"


def sync_connections(environ: Mapping[str, str]) -> list[str]:
    """Replace the DB connection of each ``AIRFLOW_CONN_<ID>`` (URI or JSON) with it; returns the ids.

    Replaced, not updated: a row written under another fernet key (an earlier cluster home on the
    same database) cannot be decrypted, and the environment is the source of truth anyway."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    synced = []
    with create_session() as session:
        for key, value in sorted(environ.items()):
            if not key.startswith(PREFIX) or not value:
                continue
            conn_id = key[len(PREFIX):].lower()
            wanted = Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{") \
                else Connection(conn_id=conn_id, uri=value)
            session.execute(delete(Connection).where(Connection.conn_id == conn_id))
            session.add(wanted)
            synced.append(conn_id)
    return synced


def main() -> int:
    synced = sync_connections(os.environ)
    print(f"connections in the metadata DB: {', '.join(synced) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
