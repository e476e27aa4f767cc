"""HR tools against values computed directly from the CSV files."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import pytest

from include.erp.tools.hr import get_headcount, get_leave_balances, get_payroll_summary

D = Decimal
CENT = D("0.01")


def dsum(values) -> Decimal:
    return sum((D(v) for v in values), D(0))


def f(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def test_headcount_company(rows) -> None:
    employees = rows("employees.csv")
    current = [e for e in employees if e["status"] != "terminated"]
    result = get_headcount()
    assert result["department"] == "all"
    assert result["headcount"] == len(current) == 57
    assert result["fte_total"] == round(sum(float(e["fte"]) for e in current), 2) == 55.2
    assert result["by_status"] == dict(Counter(e["status"] for e in employees))
    assert [r["cost_center"] for r in result["by_department"]] == [f"CC{n}00" for n in range(1, 9)]
    assert sum(r["headcount"] for r in result["by_department"]) == result["headcount"]
    logistics = next(r for r in result["by_department"] if r["department"] == "Logistics")
    expected = Counter(e["status"] for e in employees if e["department"] == "Logistics")
    assert (logistics["active"], logistics["leave"], logistics["terminated"]) == (
        expected["active"],
        expected["leave"],
        expected["terminated"],
    )


@pytest.mark.parametrize("department", ["Manufacturing", "manufacturing", "CC400", "cc400 "])
def test_headcount_department_by_name_or_cost_center(rows, department: str) -> None:
    members = [e for e in rows("employees.csv") if e["department"] == "Manufacturing"]
    result = get_headcount(department)
    assert result["department"] == "Manufacturing"
    assert len(result["by_department"]) == 1
    assert result["headcount"] == sum(1 for e in members if e["status"] != "terminated")
    assert result["by_status"]["terminated"] == sum(1 for e in members if e["status"] == "terminated")


def test_payroll_summary_totals(rows) -> None:
    payroll = rows("payroll_2026_10.csv")
    result = get_payroll_summary()
    assert result["period"] == "2026-10"
    assert result["employees_paid"] == len(payroll)
    for field in ("base_pay", "overtime_pay", "gross", "tax", "benefits", "net"):
        assert result["totals"][field] == f(dsum(p[field] for p in payroll)), field
    assert result["totals"]["gross"] == 427571.04
    assert result["totals"]["net"] == 302488.33
    assert result["overtime_hours"] == float(dsum(p["overtime_hours"] for p in payroll))
    assert result["employees_with_overtime"] == sum(1 for p in payroll if D(p["overtime_hours"]) > 0)
    assert result["employees_over_16_overtime_hours"] == sum(
        1 for p in payroll if D(p["overtime_hours"]) > 16
    )


def test_payroll_summary_cost_centers_ranked_by_gross(rows) -> None:
    payroll = rows("payroll_2026_10.csv")
    gross: dict[str, Decimal] = {}
    for p in payroll:
        gross[p["cost_center"]] = gross.get(p["cost_center"], D(0)) + D(p["gross"])
    result = get_payroll_summary("2026-10")
    ranked = sorted(gross.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["cost_center"], r["gross"]) for r in result["top_cost_centers"]] == [
        (cc, f(v)) for cc, v in ranked
    ]
    top = result["top_overtime_employees"]
    assert len(top) == 5
    assert [t["overtime_hours"] for t in top] == sorted(
        (float(p["overtime_hours"]) for p in payroll), reverse=True
    )[:5]


def test_payroll_summary_for_one_department(rows) -> None:
    ids = {e["employee_id"] for e in rows("employees.csv") if e["department"] == "Sales"}
    payroll = [p for p in rows("payroll_2026_10.csv") if p["employee_id"] in ids]
    result = get_payroll_summary(department="Sales")
    assert result["department"] == "Sales"
    assert result["employees_paid"] == len(payroll) == 8
    assert result["totals"]["net"] == f(dsum(p["net"] for p in payroll))
    assert [r["cost_center"] for r in result["top_cost_centers"]] == ["CC500"]


def test_leave_balances_totals_and_liability(rows) -> None:
    employees = {e["employee_id"]: e for e in rows("employees.csv")}
    balances = rows("leave_balances.csv")
    liability = D(0)
    for b in balances:
        e = employees[b["employee_id"]]
        daily = (D(e["annual_salary"]) * D(e["fte"]) / 260).quantize(CENT, rounding=ROUND_HALF_UP)
        liability += (daily * D(b["vacation_days"])).quantize(CENT, rounding=ROUND_HALF_UP)
    result = get_leave_balances()
    assert result["employees"] == len(balances) == 57
    assert result["totals"]["vacation_liability"] == f(liability)
    assert result["totals"]["vacation_days"] == float(dsum(b["vacation_days"] for b in balances))
    assert result["totals"]["pending_requests"] == sum(int(b["pending_requests"]) for b in balances)
    assert len(result["balances"]) == 20 and result["truncated"] is True
    days = [row["vacation_days"] for row in result["balances"]]
    assert days == sorted((float(b["vacation_days"]) for b in balances), reverse=True)[:20]
    assert result["employees_above_25_vacation_days"] == sum(
        1 for b in balances if float(b["vacation_days"]) > 25
    )


def test_leave_balances_filters(rows) -> None:
    finance = {e["employee_id"] for e in rows("employees.csv") if e["department"] == "Finance"}
    expected = [
        b
        for b in rows("leave_balances.csv")
        if b["employee_id"] in finance and float(b["vacation_days"]) >= 10
    ]
    result = get_leave_balances(department="CC200", min_days=10)
    assert result["department"] == "Finance"
    assert result["employees"] == len(expected)
    assert {row["employee_id"] for row in result["balances"]} == {b["employee_id"] for b in expected}
    assert result["truncated"] is False


def test_unknown_department_lists_valid_ones() -> None:
    for call in (
        lambda: get_headcount("Marketing"),
        lambda: get_payroll_summary(department="Marketing"),
        lambda: get_leave_balances(department="Marketing"),
    ):
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert "unknown department 'Marketing'" in message
        assert "Finance (CC200)" in message and "Logistics (CC800)" in message


def test_invalid_period_and_min_days() -> None:
    with pytest.raises(ValueError, match=r"no payroll data for period '2026-09'; available periods: 2026-10"):
        get_payroll_summary("2026-09")
    with pytest.raises(ValueError, match="YYYY-MM"):
        get_payroll_summary("October 2026")
    with pytest.raises(ValueError, match="min_days must be"):
        get_leave_balances(min_days=-1)
