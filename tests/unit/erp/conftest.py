"""Fixtures for the ERP data and tool tests.

Expected values in these tests are computed straight from the CSV files with the ``csv`` module and
``Decimal``, independently of ``include.erp.store``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from include.erp import store

DATA_DIR = Path(store.__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _bundled_data(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts on the bundled data with a cold cache."""
    monkeypatch.delenv(store.DATA_DIR_ENV, raising=False)
    store.clear_cache()
    yield
    store.clear_cache()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def rows() -> Callable[[str], list[dict[str, str]]]:
    """``rows("employees.csv")`` -> the file's rows as dicts of strings."""

    def read(name: str) -> list[dict[str, str]]:
        with (DATA_DIR / name).open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    return read
