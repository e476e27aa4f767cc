"""Is each part of the local cluster ready? One answer per component, so ``up`` can say which is not.

The api-server's health endpoint reports "a triggerer" healthy, not how many; two triggerers are
counted in the metadata DB (live TriggererJob rows started since this start), and the Celery
workers answer a broadcast ping under their own hostnames.
"""

from __future__ import annotations

import datetime
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from erp_agents.stack.cluster_settings import TRIGGERERS, WORKERS
from erp_agents.stack.rest import api_health

HEARTBEAT_WINDOW_S = 30


def simulator_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def api_ready(api_url: str) -> bool:
    """The api-server answers, and it sees the metadata DB, the scheduler, a dag-processor and a triggerer."""
    health = api_health(api_url)
    if health is None:
        return False
    keys = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all((health.get(key) or {}).get("status") == "healthy" for key in keys)


def live_triggerers(metadata_url: str, since: datetime.datetime) -> list[int]:
    """Ids of TriggererJobs that started after ``since`` and heartbeat within the last 30 s."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(metadata_url, poolclass=NullPool)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL "
                     "AND start_date >= :since AND latest_heartbeat >= :beat ORDER BY id"),
                {"since": since, "beat": now - datetime.timedelta(seconds=HEARTBEAT_WINDOW_S)},
            ).all()
    except Exception:  # noqa: BLE001 (not migrated yet, or the server is busy: not ready)
        return []
    finally:
        engine.dispose()
    return [int(row[0]) for row in rows]


def worker_hostnames(names: Iterable[str] = WORKERS) -> set[str]:
    """The Celery hostnames the workers register with (``--celery-hostname NAME@%h``)."""
    return {f"{name}@{socket.gethostname()}" for name in names}


def answering_workers(broker_url: str, timeout: float = 1.0) -> set[str]:
    """Hostnames of the Celery workers that answer a ping on this broker."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies: list[dict[str, Any]] = app.control.ping(timeout=timeout) or []
    except Exception:  # noqa: BLE001 (broker down: nobody answers)
        return set()
    finally:
        app.close()
    return {name for reply in replies for name in reply}


def not_ready(*, api_url: str, simulator_url: str, metadata_url: str, broker_url: str,
              since: datetime.datetime) -> list[str]:
    """The components that are not ready yet (empty: the whole cluster is)."""
    waiting = []
    if not simulator_ready(simulator_url):
        waiting.append("llm-simulator")
    if not api_ready(api_url):
        waiting.append("api-server (or the scheduler, dag-processor or a triggerer it reports)")
    if len(live_triggerers(metadata_url, since)) < len(TRIGGERERS):
        waiting.append("triggerers (fewer than two heartbeat)")
    missing = worker_hostnames() - answering_workers(broker_url)
    waiting.extend(sorted(missing))
    return waiting
