"""The data store: typed, frozen, cached per directory and redirectable with ERP_DATA_DIR."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from include.erp import store
from include.erp.tools.hr import get_headcount


def test_rows_are_typed_and_frozen() -> None:
    data = store.get_data()
    employee = data.employees[0]
    assert isinstance(employee.hire_date, date)
    assert isinstance(employee.annual_salary, Decimal)
    assert isinstance(employee.fte, float)
    assert employee.manager_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        employee.name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        data.payroll["2026-11"] = ()  # type: ignore[index]
    assert data.payroll_periods == ("2026-10",)
    assert data.bank_periods == ("2026-10",)
    assert data.ledger_periods == ("2026-10",)
    assert data.stock[0].available == data.stock[0].on_hand - data.stock[0].allocated


def test_loaded_once_per_directory() -> None:
    assert store.get_data() is store.get_data()
    assert store.load_data.cache_info().currsize == 1


def test_data_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in store.DEFAULT_DATA_DIR.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    employees = (tmp_path / "employees.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "employees.csv").write_text(
        "".join(line for line in employees if ",Executive," not in line), encoding="utf-8"
    )
    bundled = get_headcount()["by_status"]
    monkeypatch.setenv(store.DATA_DIR_ENV, str(tmp_path))
    assert store.data_dir() == tmp_path.resolve()
    assert get_headcount()["by_status"]["active"] == bundled["active"] - 3
    with pytest.raises(ValueError, match="unknown department 'Executive'"):
        get_headcount("Executive")
    monkeypatch.delenv(store.DATA_DIR_ENV)
    assert get_headcount()["by_status"] == bundled


def test_missing_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(store.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="employees.csv"):
        store.get_data()


def test_add_months_clamps_to_month_end() -> None:
    assert store.add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert store.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert store.add_months(date(2025, 10, 6), 12) == date(2026, 10, 6)
    assert store.add_months(date(2025, 11, 15), 2) == date(2026, 1, 15)
