"""HR tools: headcount, payroll and leave balances from the employee master and payroll register."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from ..store import CURRENT_PERIOD, get_data
from ._common import as_of, cents, check_period, limit, money, resolve_department

STATUSES = ("active", "leave", "terminated")
WORKING_DAYS_PER_YEAR = 260
LEAVE_REVIEW_THRESHOLD_DAYS = 25.0


def get_headcount(department: str | None = None) -> dict[str, Any]:
    """Count employees by department and employment status, with total FTE.

    Headcount and FTE include employees who are active or on leave; terminated employees are only
    counted in the status breakdown.

    Args:
        department: Department name (for example "Finance") or its cost center (for example "CC200").
            Leave empty for the whole company.
    """
    data = get_data()
    selected = resolve_department(data, department) if department else None
    employees = [e for e in data.employees if selected is None or e.department == selected]

    rows = []
    for name, cost_center in data.departments.items():
        if selected is not None and name != selected:
            continue
        members = [e for e in employees if e.department == name]
        counts = Counter(e.status for e in members)
        current = [e for e in members if e.status != "terminated"]
        rows.append(
            {
                "department": name,
                "cost_center": cost_center,
                "headcount": len(current),
                "active": counts["active"],
                "leave": counts["leave"],
                "terminated": counts["terminated"],
                "fte": round(sum(e.fte for e in current), 2),
            }
        )
    counts = Counter(e.status for e in employees)
    current = [e for e in employees if e.status != "terminated"]
    return {
        "as_of": as_of(),
        "department": selected or "all",
        "headcount": len(current),
        "fte_total": round(sum(e.fte for e in current), 2),
        "by_status": {status: counts[status] for status in STATUSES},
        "by_department": rows,
    }


def get_payroll_summary(period: str = CURRENT_PERIOD, department: str | None = None) -> dict[str, Any]:
    """Summarise the payroll register of one month: gross, tax, benefits and net pay, and overtime.

    Returns totals, every cost center ranked by gross pay, and the employees with the most overtime
    (overtime above 16 hours a month needs department head approval under POL-HR-003).

    Args:
        period: Payroll month in YYYY-MM format, for example "2026-10".
        department: Department name or cost center to restrict the summary to. Leave empty for all.
    """
    data = get_data()
    period = check_period(period, data.payroll_periods, "payroll")
    selected = resolve_department(data, department) if department else None
    employees = {e.employee_id: e for e in data.employees}
    lines = [
        line
        for line in data.payroll[period]
        if selected is None
        or (line.employee_id in employees and employees[line.employee_id].department == selected)
    ]

    def total(field: str, rows: list[Any]) -> Decimal:
        return sum((getattr(r, field) for r in rows), Decimal(0))

    departments_by_cc = {cc: name for name, cc in data.departments.items()}
    cost_centers = []
    for cc in sorted({line.cost_center for line in lines}):
        cc_lines = [line for line in lines if line.cost_center == cc]
        cost_centers.append(
            {
                "cost_center": cc,
                "department": departments_by_cc.get(cc, cc),
                "employees": len(cc_lines),
                "gross": money(total("gross", cc_lines)),
                "net": money(total("net", cc_lines)),
                "overtime_hours": round(sum(line.overtime_hours for line in cc_lines), 1),
            }
        )
    cost_centers.sort(key=lambda row: (-row["gross"], row["cost_center"]))
    top_cost_centers, _ = limit(cost_centers)

    with_overtime = sorted(
        (line for line in lines if line.overtime_hours > 0),
        key=lambda line: (-line.overtime_hours, line.employee_id),
    )
    top_overtime = [
        {
            "employee_id": line.employee_id,
            "name": employees[line.employee_id].name if line.employee_id in employees else None,
            "cost_center": line.cost_center,
            "overtime_hours": line.overtime_hours,
            "overtime_pay": money(line.overtime_pay),
        }
        for line in with_overtime[:5]
    ]
    return {
        "period": period,
        "department": selected or "all",
        "currency": "USD",
        "employees_paid": len(lines),
        "totals": {
            "base_pay": money(total("base_pay", lines)),
            "overtime_pay": money(total("overtime_pay", lines)),
            "gross": money(total("gross", lines)),
            "tax": money(total("tax", lines)),
            "benefits": money(total("benefits", lines)),
            "net": money(total("net", lines)),
        },
        "overtime_hours": round(sum(line.overtime_hours for line in lines), 1),
        "employees_with_overtime": len(with_overtime),
        "employees_over_16_overtime_hours": sum(1 for line in lines if line.overtime_hours > 16),
        "top_cost_centers": top_cost_centers,
        "top_overtime_employees": top_overtime,
    }


def get_leave_balances(department: str | None = None, min_days: float = 0) -> dict[str, Any]:
    """List employees' vacation and sick leave balances and the accrued vacation liability.

    The liability values each vacation day at the employee's daily rate (annual salary x FTE / 260,
    rounded to cents).
    Totals cover every matching employee; at most 20 employees are listed, highest balance first.

    Args:
        department: Department name or cost center to restrict the list to. Leave empty for all.
        min_days: Only include employees with at least this many vacation days (0 or more).
    """
    if not isinstance(min_days, (int, float)) or isinstance(min_days, bool) or min_days < 0:
        raise ValueError(f"min_days must be a number of days >= 0; got {min_days!r}")
    data = get_data()
    selected = resolve_department(data, department) if department else None
    employees = {e.employee_id: e for e in data.employees}

    rows = []
    for balance in data.leave_balances:
        emp = employees.get(balance.employee_id)
        if emp is None or (selected is not None and emp.department != selected):
            continue
        if balance.vacation_days < min_days:
            continue
        daily_rate = cents(emp.annual_salary * Decimal(str(emp.fte)) / WORKING_DAYS_PER_YEAR)
        liability = cents(daily_rate * Decimal(str(balance.vacation_days)))
        rows.append((balance, emp, daily_rate, liability))
    rows.sort(key=lambda row: (-row[0].vacation_days, row[0].employee_id))

    total_liability = sum((row[3] for row in rows), Decimal(0))
    shown, truncated = limit(rows)
    return {
        "as_of": as_of(),
        "department": selected or "all",
        "min_days": min_days,
        "employees": len(rows),
        "totals": {
            "vacation_days": round(sum(row[0].vacation_days for row in rows), 1),
            "sick_days": round(sum(row[0].sick_days for row in rows), 1),
            "pending_requests": sum(row[0].pending_requests for row in rows),
            "vacation_liability": money(total_liability),
        },
        "employees_above_25_vacation_days": sum(
            1 for row in rows if row[0].vacation_days > LEAVE_REVIEW_THRESHOLD_DAYS
        ),
        "balances": [
            {
                "employee_id": balance.employee_id,
                "name": emp.name,
                "department": emp.department,
                "status": emp.status,
                "vacation_days": balance.vacation_days,
                "sick_days": balance.sick_days,
                "pending_requests": balance.pending_requests,
                "daily_rate": money(daily_rate),
                "vacation_liability": money(liability),
            }
            for balance, emp, daily_rate, liability in shown
        ],
        "truncated": truncated,
    }
