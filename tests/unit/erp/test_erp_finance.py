"""Finance tools against values computed directly from the CSV files."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest

from include.erp.tools.finance import (
    get_budget_vs_actual,
    get_ledger_balance,
    get_open_invoices,
    reconcile_bank,
)

D = Decimal
AS_OF = date(2026, 10, 31)


def dsum(values) -> Decimal:
    return sum((D(v) for v in values), D(0))


def f(value: Decimal) -> float:
    return float(value.quantize(D("0.01"), rounding=ROUND_HALF_UP))


# ---- get_ledger_balance ------------------------------------------------------------------------------


@pytest.mark.parametrize("account", ["1000", "1100", "1200", "2000", "2200", "4000", "6000", "6500"])
def test_ledger_balance_matches_csv(rows, account: str) -> None:
    chart = {a["account"]: a for a in rows("chart_of_accounts.csv")}
    lines = [x for x in rows("general_ledger.csv") if x["account"] == account]
    debits = dsum(x["debit"] for x in lines)
    credits = dsum(x["credit"] for x in lines)
    net = debits - credits if chart[account]["normal_balance"] == "debit" else credits - debits
    result = get_ledger_balance(account)
    assert result["account_name"] == chart[account]["account_name"]
    assert result["opening_balance"] == f(D(chart[account]["opening_balance"]))
    assert result["debits"] == f(debits)
    assert result["credits"] == f(credits)
    assert result["net_change"] == f(net)
    assert result["closing_balance"] == f(D(chart[account]["opening_balance"]) + net)
    assert result["line_count"] == len(lines)
    assert sum(D(str(c["net_change"])) for c in result["by_cost_center"]) == net
    assert len(result["largest_lines"]) == min(10, len(lines))


def test_ledger_balance_known_values() -> None:
    cash = get_ledger_balance("Cash - Operating")
    assert cash["account"] == "1000"
    assert (cash["opening_balance"], cash["closing_balance"]) == (1842316.55, 1694087.11)
    revenue = get_ledger_balance("4000", "2026-10")
    assert revenue["normal_balance"] == "credit"
    assert revenue["by_cost_center"][0]["cost_center"] == "CC500"


def test_ledger_balance_errors() -> None:
    with pytest.raises(ValueError) as excinfo:
        get_ledger_balance("9999")
    assert "unknown account '9999'" in str(excinfo.value)
    assert "1000 (Cash - Operating)" in str(excinfo.value) and "6900 (Repairs & Maintenance)" in str(
        excinfo.value
    )
    with pytest.raises(
        ValueError, match="no general ledger data for period '2026-09'; available periods: 2026-10"
    ):
        get_ledger_balance("1000", "2026-09")


# ---- reconcile_bank ----------------------------------------------------------------------------------


def test_reconciliation_finds_exactly_the_deliberate_items(rows) -> None:
    bank = rows("bank_statement_2026_10.csv")
    cash = [x for x in rows("general_ledger.csv") if x["account"] == "1000"]
    result = reconcile_bank()
    assert [
        (u["txn_id"], u["description"], u["reference"], u["amount"]) for u in result["unmatched_bank"]
    ] == [
        ("BK-2610-024", "WIRE IN HARBOR POINT ENERGY", "AR-26-0017", 48527.99),
        ("BK-2610-026", "ACCOUNT ANALYSIS SERVICE CHARGE", None, -85.0),
    ]
    assert [(u["entry_id"], u["date"], u["amount"]) for u in result["unmatched_ledger"]] == [
        ("JE-2610-0056", "2026-10-29", -23029.2)
    ]
    assert "check 10492" in result["unmatched_ledger"][0]["description"]
    assert result["bank_lines"] == len(bank) == 26
    assert result["ledger_cash_lines"] == len(cash) == 25
    assert result["matched_count"] == 24
    assert result["fully_matched"] is False


def test_reconciliation_amounts(rows) -> None:
    bank = rows("bank_statement_2026_10.csv")
    cash = [x for x in rows("general_ledger.csv") if x["account"] == "1000"]
    opening = D(rows("chart_of_accounts.csv")[0]["opening_balance"])
    result = reconcile_bank("2026-10")
    bank_closing = D(bank[-1]["balance"])
    ledger_closing = opening + dsum(x["debit"] for x in cash) - dsum(x["credit"] for x in cash)
    assert result["bank_opening_balance"] == f(opening)
    assert result["bank_closing_balance"] == f(bank_closing) == 1765559.30
    assert result["ledger_closing_balance"] == f(ledger_closing)
    assert result["difference"] == f(bank_closing - ledger_closing) == 71472.19
    assert result["unexplained_difference"] == 0.0
    unmatched = {"BK-2610-024", "BK-2610-026"}
    deposits = dsum(b["amount"] for b in bank if b["txn_id"] not in unmatched and D(b["amount"]) > 0)
    withdrawals = -dsum(b["amount"] for b in bank if b["txn_id"] not in unmatched and D(b["amount"]) < 0)
    assert result["matched_deposits"] == f(deposits)
    assert result["matched_withdrawals"] == f(withdrawals)


def test_reconciliation_with_custom_data_directory(tmp_path, monkeypatch, data_dir) -> None:
    """Removing the outstanding check from the ledger leaves only the two bank-side items."""
    for path in data_dir.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        if path.name == "general_ledger.csv":
            text = "".join(line for line in text.splitlines(keepends=True) if "JE-2610-0056" not in line)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    monkeypatch.setenv("ERP_DATA_DIR", str(tmp_path))
    result = reconcile_bank()
    assert result["unmatched_ledger"] == []
    assert len(result["unmatched_bank"]) == 2
    assert result["unexplained_difference"] == 0.0


def test_reconciliation_unknown_period() -> None:
    with pytest.raises(
        ValueError, match="no bank statement data for period '2026-11'; available periods: 2026-10"
    ):
        reconcile_bank("2026-11")


# ---- get_open_invoices -------------------------------------------------------------------------------


def _days_past_due(invoice: dict[str, str]) -> int:
    return max(0, (AS_OF - date.fromisoformat(invoice["due_date"])).days)


@pytest.mark.parametrize("kind", [None, "AP", "AR"])
@pytest.mark.parametrize("overdue_only", [False, True])
def test_open_invoices_totals(rows, kind, overdue_only: bool) -> None:
    expected = [
        i
        for i in rows("invoices.csv")
        if i["status"] in ("open", "overdue")
        and (kind is None or i["type"] == kind)
        and (not overdue_only or i["status"] == "overdue")
    ]
    result = get_open_invoices(kind, overdue_only)
    assert result["type"] == (kind or "all")
    assert result["count"] == len(expected)
    assert result["total_amount"] == f(dsum(i["amount"] for i in expected))
    assert result["overdue_amount"] == f(dsum(i["amount"] for i in expected if i["status"] == "overdue"))
    assert sum(D(str(v)) for v in result["aging"].values()) == dsum(i["amount"] for i in expected)
    assert len(result["invoices"]) == min(20, len(expected))
    assert result["truncated"] is (len(expected) > 20)
    days = [inv["days_past_due"] for inv in result["invoices"]]
    assert days == sorted(days, reverse=True)
    for inv in result["invoices"]:
        assert inv["days_past_due"] == _days_past_due(inv)


def test_open_invoices_known_values(rows) -> None:
    overdue = get_open_invoices(overdue_only=True)
    assert overdue["count"] == 9
    assert overdue["by_type"]["AR"]["count"] == 5 and overdue["by_type"]["AP"]["count"] == 4
    assert overdue["invoices"][0]["invoice_id"] == "AR-26-0004"
    assert overdue["invoices"][0]["days_past_due"] == 78
    assert overdue["aging"]["current"] == 0.0
    ap = get_open_invoices("AP")
    assert ap["total_amount"] == 266201.72  # equals the closing balance of account 2000


def test_open_invoices_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown invoice type 'XX'; valid types: AP, AR"):
        get_open_invoices("XX")  # type: ignore[arg-type]


# ---- get_budget_vs_actual ----------------------------------------------------------------------------


def _budget_and_actual(rows) -> tuple[dict[tuple[str, str], Decimal], dict[tuple[str, str], Decimal]]:
    budget: dict[tuple[str, str], Decimal] = {}
    for b in rows("budget_2026.csv"):
        if b["month"] == "2026-10":
            budget[(b["cost_center"], b["account"])] = D(b["budget_amount"])
    expense = {a["account"] for a in rows("chart_of_accounts.csv") if a["account_type"] == "expense"}
    actual: dict[tuple[str, str], Decimal] = {}
    for x in rows("general_ledger.csv"):
        if x["account"] in expense:
            key = (x["cost_center"], x["account"])
            actual[key] = actual.get(key, D(0)) + D(x["debit"]) - D(x["credit"])
    return budget, actual


def test_budget_vs_actual_company(rows) -> None:
    budget, actual = _budget_and_actual(rows)
    result = get_budget_vs_actual()
    assert result["totals"]["budget"] == f(sum(budget.values(), D(0)))
    assert result["totals"]["actual"] == f(sum(actual.values(), D(0)))
    for row in result["by_cost_center"]:
        cc = row["cost_center"]
        b = sum((v for k, v in budget.items() if k[0] == cc), D(0))
        a = sum((v for k, v in actual.items() if k[0] == cc), D(0))
        assert (row["budget"], row["actual"], row["variance"]) == (f(b), f(a), f(a - b)), cc
        assert row["variance_pct"] == float(((a - b) * 100 / b).quantize(D("0.1"), rounding=ROUND_HALF_UP))
        assert row["favorable"] is (a <= b)
    top = result["largest_variances"][0]
    assert (top["cost_center"], top["account"], top["favorable"]) == ("CC700", "6400", False)
    assert top["variance_pct"] == 34.8


def test_budget_vs_actual_one_cost_center(rows) -> None:
    budget, actual = _budget_and_actual(rows)
    result = get_budget_vs_actual("it")
    assert result["cost_center"] == "CC700" and result["department"] == "IT"
    accounts = sorted({k[1] for k in set(budget) | set(actual) if k[0] == "CC700"})
    assert [r["account"] for r in result["by_account"]] == accounts
    software = next(r for r in result["by_account"] if r["account"] == "6400")
    assert software["actual"] == f(actual[("CC700", "6400")])
    assert software["budget"] == f(budget[("CC700", "6400")])


def test_budget_vs_actual_errors() -> None:
    with pytest.raises(ValueError) as excinfo:
        get_budget_vs_actual("CC999")
    message = str(excinfo.value)
    assert "unknown cost center 'CC999'" in message
    assert "CC100 (Executive)" in message and "CC800 (Logistics)" in message
    with pytest.raises(ValueError, match="available periods: 2026-10"):
        get_budget_vs_actual(period="2026-03")
