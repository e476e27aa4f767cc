"""Integration tests run agents in this process: each module gets a governance store of its own.

The rate limiter and the ledger keep their state in the store, so with one shared store a module that
sent a minute's worth of requests to a provider made the next module's agents wait for the next
window (a test took 56 s instead of under 1 s). A module-scoped store makes that impossible.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from erp_agents.store import GOVERNANCE_URL_ENV


@pytest.fixture(scope="module", autouse=True)
def governance_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite governance store for every test module; a test may still set its own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('governance') / 'governance.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(GOVERNANCE_URL_ENV, url)
        yield url
