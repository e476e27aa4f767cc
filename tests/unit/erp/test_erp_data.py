"""The sample data: reproducible from generate.py and internally consistent."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

D = Decimal
PERIOD_END = date(2026, 10, 31)

EXPECTED_FILES = {
    "employees.csv",
    "payroll_2026_10.csv",
    "leave_balances.csv",
    "chart_of_accounts.csv",
    "general_ledger.csv",
    "bank_statement_2026_10.csv",
    "invoices.csv",
    "budget_2026.csv",
    "stock_levels.csv",
    "reorder_points.csv",
    "suppliers.csv",
    "policies.csv",
    "audit_findings.csv",
}


def dsum(values) -> Decimal:
    return sum((D(v) for v in values), D(0))


def test_generate_reproduces_committed_csvs_byte_for_byte(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, str(data_dir / "generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    generated = {p.name for p in out.glob("*.csv")}
    committed = {p.name for p in data_dir.glob("*.csv")}
    assert generated == committed == EXPECTED_FILES
    for name in sorted(generated):
        assert (out / name).read_bytes() == (data_dir / name).read_bytes(), name


def test_headers_match_the_documented_layout(data_dir: Path) -> None:
    headers = {p.name: p.read_text(encoding="utf-8").splitlines()[0] for p in data_dir.glob("*.csv")}
    assert headers["employees.csv"] == (
        "employee_id,name,department,cost_center,title,hire_date,status,fte,annual_salary,manager_id"
    )
    assert headers["general_ledger.csv"] == (
        "entry_id,date,account,account_name,cost_center,debit,credit,description,source"
    )
    assert headers["invoices.csv"] == (
        "invoice_id,type,counterparty,issue_date,due_date,amount,currency,status,po_number"
    )
    assert headers["stock_levels.csv"] == "sku,description,warehouse,on_hand,allocated,unit_cost,category"
    assert headers["reorder_points.csv"] == "sku,reorder_point,reorder_qty,supplier_id"
    assert headers["suppliers.csv"] == "supplier_id,name,lead_time_days,on_time_rate,country"
    assert headers["budget_2026.csv"] == "cost_center,account,month,budget_amount"
    assert headers["leave_balances.csv"] == "employee_id,vacation_days,sick_days,pending_requests"
    assert headers["policies.csv"] == (
        "policy_id,title,owner,module,last_reviewed,review_cycle_months,summary"
    )
    assert headers["audit_findings.csv"] == "finding_id,area,severity,status,opened,due,description,owner"


def test_sizes(rows) -> None:
    assert len(rows("employees.csv")) == 60
    assert len(rows("stock_levels.csv")) == 80
    assert 110 <= len(rows("general_ledger.csv")) <= 140
    assert len(rows("suppliers.csv")) == 10
    assert len(rows("policies.csv")) == 16
    assert len(rows("audit_findings.csv")) == 18


# ---- HR ----------------------------------------------------------------------------------------------


def test_employees_are_unique_and_reference_real_managers(rows) -> None:
    employees = rows("employees.csv")
    ids = [e["employee_id"] for e in employees]
    assert len(set(ids)) == len(ids)
    assert len({e["name"] for e in employees}) == len(employees)
    assert Counter(e["status"] for e in employees) == {"active": 54, "leave": 3, "terminated": 3}
    by_id = {e["employee_id"]: e for e in employees}
    roots = [e for e in employees if not e["manager_id"]]
    assert [r["title"] for r in roots] == ["Chief Executive Officer"]
    for e in employees:
        if e["manager_id"]:
            assert by_id[e["manager_id"]]["status"] != "terminated", e
    # one cost center per department
    assert len({(e["department"], e["cost_center"]) for e in employees}) == 8


def test_payroll_covers_exactly_the_current_employees(rows) -> None:
    employees = {e["employee_id"]: e for e in rows("employees.csv")}
    payroll = rows("payroll_2026_10.csv")
    paid = [p["employee_id"] for p in payroll]
    assert len(set(paid)) == len(paid)
    assert all(p in employees for p in paid)
    assert set(paid) == {i for i, e in employees.items() if e["status"] in ("active", "leave")}
    leave = {row["employee_id"] for row in rows("leave_balances.csv")}
    assert leave == set(paid)


def test_payroll_rows_add_up(rows) -> None:
    employees = {e["employee_id"]: e for e in rows("employees.csv")}
    for p in rows("payroll_2026_10.csv"):
        assert p["period"] == "2026-10"
        assert D(p["base_pay"]) + D(p["overtime_pay"]) == D(p["gross"]), p
        assert D(p["gross"]) - D(p["tax"]) - D(p["benefits"]) == D(p["net"]), p
        emp = employees[p["employee_id"]]
        assert p["cost_center"] == emp["cost_center"]
        expected_base = (D(emp["annual_salary"]) * D(emp["fte"]) / 12).quantize(D("0.01"))
        assert abs(D(p["base_pay"]) - expected_base) <= D("0.01")
        if D(p["overtime_hours"]) == 0:
            assert D(p["overtime_pay"]) == 0


# ---- Finance -----------------------------------------------------------------------------------------


def test_every_journal_entry_balances_and_names_match_the_chart(rows) -> None:
    chart = {a["account"]: a for a in rows("chart_of_accounts.csv")}
    entries: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in rows("general_ledger.csv"):
        entries[line["entry_id"]].append(line)
        assert line["account_name"] == chart[line["account"]]["account_name"]
        assert line["date"].startswith("2026-10-")
        assert (D(line["debit"]) == 0) != (D(line["credit"]) == 0), line
        if chart[line["account"]]["account_type"] in ("expense", "revenue"):
            assert line["cost_center"], line
    for entry_id, lines in entries.items():
        assert dsum(x["debit"] for x in lines) == dsum(x["credit"] for x in lines), entry_id
        assert len({x["date"] for x in lines}) == 1


def test_opening_trial_balance_balances(rows) -> None:
    chart = rows("chart_of_accounts.csv")
    debit_side = dsum(a["opening_balance"] for a in chart if a["normal_balance"] == "debit")
    credit_side = dsum(a["opening_balance"] for a in chart if a["normal_balance"] == "credit")
    assert debit_side == credit_side
    assert debit_side > 0


def _closing(rows, account: str) -> Decimal:
    chart = {a["account"]: a for a in rows("chart_of_accounts.csv")}
    lines = [x for x in rows("general_ledger.csv") if x["account"] == account]
    movement = dsum(x["debit"] for x in lines) - dsum(x["credit"] for x in lines)
    if chart[account]["normal_balance"] == "credit":
        movement = -movement
    return D(chart[account]["opening_balance"]) + movement


def test_subledgers_tie_out_to_the_ledger(rows) -> None:
    invoices = rows("invoices.csv")
    open_ar = dsum(i["amount"] for i in invoices if i["type"] == "AR" and i["status"] != "paid")
    open_ap = dsum(i["amount"] for i in invoices if i["type"] == "AP" and i["status"] != "paid")
    valuation = sum((D(s["unit_cost"]) * int(s["on_hand"]) for s in rows("stock_levels.csv")), D(0))
    assert _closing(rows, "1100") == open_ar
    assert _closing(rows, "2000") == open_ap
    assert _closing(rows, "1200") == valuation


def test_payroll_gross_per_cost_center_equals_salary_postings(rows) -> None:
    payroll: dict[str, Decimal] = defaultdict(Decimal)
    for p in rows("payroll_2026_10.csv"):
        payroll[p["cost_center"]] += D(p["gross"])
    ledger: dict[str, Decimal] = defaultdict(Decimal)
    for line in rows("general_ledger.csv"):
        if line["account"] == "6000":
            ledger[line["cost_center"]] += D(line["debit"]) - D(line["credit"])
    assert dict(payroll) == dict(ledger)
    net = dsum(p["net"] for p in rows("payroll_2026_10.csv"))
    payroll_cash = [
        x
        for x in rows("general_ledger.csv")
        if x["account"] == "1000" and x["source"] == "PAYROLL" and "net pay" in x["description"]
    ]
    assert [D(x["credit"]) for x in payroll_cash] == [net]


def test_bank_statement_running_balance(rows) -> None:
    bank = rows("bank_statement_2026_10.csv")
    opening = D(rows("chart_of_accounts.csv")[0]["opening_balance"])
    balance = opening
    for line in bank:
        balance += D(line["amount"])
        assert D(line["balance"]) == balance, line
    assert [b["date"] for b in bank] == sorted(b["date"] for b in bank)


def test_cash_lines_and_bank_lines_match_except_the_deliberate_items(rows) -> None:
    cash = Counter(
        D(x["debit"]) - D(x["credit"]) for x in rows("general_ledger.csv") if x["account"] == "1000"
    )
    bank = Counter(D(b["amount"]) for b in rows("bank_statement_2026_10.csv"))
    wire = next(i for i in rows("invoices.csv") if i["invoice_id"] == "AR-26-0017")
    assert wire["counterparty"] == "Harbor Point Energy" and wire["status"] == "overdue"
    assert bank - cash == Counter({D(wire["amount"]): 1, D("-85.00"): 1})
    check = [
        x for x in rows("general_ledger.csv") if x["account"] == "1000" and "check 10492" in x["description"]
    ]
    assert len(check) == 1
    assert cash - bank == Counter({-D(check[0]["credit"]): 1})


def test_invoice_statuses_are_consistent_with_due_dates(rows) -> None:
    invoices = rows("invoices.csv")
    assert len({i["invoice_id"] for i in invoices}) == len(invoices)
    for i in invoices:
        assert i["currency"] == "USD"
        assert i["issue_date"] <= i["due_date"]
        if i["status"] == "overdue":
            assert date.fromisoformat(i["due_date"]) < PERIOD_END, i
        elif i["status"] == "open":
            assert date.fromisoformat(i["due_date"]) >= PERIOD_END, i
        else:
            assert i["status"] == "paid"
    overdue = Counter(i["type"] for i in invoices if i["status"] == "overdue")
    assert overdue["AR"] >= 3 and overdue["AP"] >= 3


def test_invoices_named_in_the_ledger_exist(rows) -> None:
    ids = {i["invoice_id"] for i in rows("invoices.csv")}
    named = {
        word
        for line in rows("general_ledger.csv")
        for word in line["description"].split()
        if word.startswith(("AR-26-", "AP-26-"))
    }
    assert named and named <= ids


def test_budget_covers_every_actual_expense_line(rows) -> None:
    budget = {(b["cost_center"], b["account"]) for b in rows("budget_2026.csv") if b["month"] == "2026-10"}
    chart = {a["account"]: a["account_type"] for a in rows("chart_of_accounts.csv")}
    actual = {
        (x["cost_center"], x["account"])
        for x in rows("general_ledger.csv")
        if chart[x["account"]] == "expense"
    }
    assert actual <= budget
    months = Counter(b["month"] for b in rows("budget_2026.csv"))
    assert sorted(months) == [f"2026-{m:02d}" for m in range(1, 13)]
    assert len(set(months.values())) == 1


# ---- Inventory ---------------------------------------------------------------------------------------


def test_reorder_points_and_suppliers_reference_existing_rows(rows) -> None:
    skus = [s["sku"] for s in rows("stock_levels.csv")]
    assert len(set(skus)) == len(skus)
    reorder = rows("reorder_points.csv")
    assert [r["sku"] for r in reorder] == skus
    suppliers = {s["supplier_id"] for s in rows("suppliers.csv")}
    assert {r["supplier_id"] for r in reorder} <= suppliers


def test_some_skus_are_below_their_reorder_point(rows) -> None:
    stock = {s["sku"]: s for s in rows("stock_levels.csv")}
    below, on_the_line, over_allocated = [], [], []
    for r in rows("reorder_points.csv"):
        s = stock[r["sku"]]
        available = int(s["on_hand"]) - int(s["allocated"])
        if available < int(r["reorder_point"]):
            below.append(r["sku"])
        if available == int(r["reorder_point"]):
            on_the_line.append(r["sku"])
        if available < 0:
            over_allocated.append(r["sku"])
    assert len(below) == 12
    assert len(on_the_line) == 1
    assert len(over_allocated) == 1 and over_allocated[0] in below


# ---- Compliance --------------------------------------------------------------------------------------


def test_owners_are_current_employees(rows) -> None:
    current = {e["name"] for e in rows("employees.csv") if e["status"] != "terminated"}
    assert {p["owner"] for p in rows("policies.csv")} <= current
    assert {f["owner"] for f in rows("audit_findings.csv")} <= current


def test_findings_include_open_high_and_critical(rows) -> None:
    findings = rows("audit_findings.csv")
    assert {f["severity"] for f in findings} == {"low", "medium", "high", "critical"}
    assert {f["status"] for f in findings} == {"open", "remediated"}
    open_severe = [f for f in findings if f["status"] == "open" and f["severity"] in ("high", "critical")]
    assert len(open_severe) == 5
    terminated = {e["employee_id"] for e in rows("employees.csv") if e["status"] == "terminated"}
    access = next(f for f in findings if f["finding_id"] == "AF-2026-004")
    assert any(emp in access["description"] for emp in terminated)
