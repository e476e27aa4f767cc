"""Finance tools: ledger balances, bank reconciliation, open invoices and budget variance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from ..store import AS_OF, CURRENT_PERIOD, Account, BankLine, ErpData, LedgerLine, get_data
from ._common import as_of, check_period, limit, money, pct, resolve, resolve_cost_center

CASH_ACCOUNT = "1000"
MATCH_WINDOW_DAYS = 7
AGING_BUCKETS = (
    ("current", 0, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("over_90", 91, None),
)


def _resolve_account(data: ErpData, account: str) -> Account:
    by_number = {a.account: a for a in data.accounts}
    options = {a.account: a.account for a in data.accounts} | {
        a.account_name: a.account for a in data.accounts
    }
    valid = [f"{a.account} ({a.account_name})" for a in data.accounts]
    return by_number[resolve(str(account), options, "account", valid)]


def _signed(account: Account, debit: Decimal, credit: Decimal) -> Decimal:
    """A movement in the account's normal-balance direction."""
    return debit - credit if account.normal_balance == "debit" else credit - debit


def get_ledger_balance(account: str, period: str = CURRENT_PERIOD) -> dict[str, Any]:
    """Get a general ledger account's opening balance, debits, credits and closing balance for a month.

    Balances are in the account's normal direction (debit for assets and expenses, credit for
    liabilities, equity and revenue). Also breaks the period's movement down by cost center and
    lists the largest journal lines.

    Args:
        account: Account number (for example "1000") or account name (for example "Cash - Operating").
        period: Fiscal month in YYYY-MM format, for example "2026-10".
    """
    data = get_data()
    acct = _resolve_account(data, account)
    period = check_period(period, data.ledger_periods, "general ledger")
    lines = [line for line in data.ledger if line.account == acct.account and line.period == period]
    debits = sum((line.debit for line in lines), Decimal(0))
    credits = sum((line.credit for line in lines), Decimal(0))
    net_change = _signed(acct, debits, credits)

    by_cc: dict[str, list[LedgerLine]] = {}
    for line in lines:
        by_cc.setdefault(line.cost_center or "unassigned", []).append(line)
    cost_centers = [
        {
            "cost_center": cc,
            "debits": money(sum((line.debit for line in cc_lines), Decimal(0))),
            "credits": money(sum((line.credit for line in cc_lines), Decimal(0))),
            "net_change": money(
                _signed(
                    acct,
                    sum((line.debit for line in cc_lines), Decimal(0)),
                    sum((line.credit for line in cc_lines), Decimal(0)),
                )
            ),
        }
        for cc, cc_lines in sorted(by_cc.items())
    ]
    largest = sorted(lines, key=lambda line: (-(line.debit + line.credit), line.entry_id))[:10]
    return {
        "account": acct.account,
        "account_name": acct.account_name,
        "account_type": acct.account_type,
        "normal_balance": acct.normal_balance,
        "period": period,
        "currency": "USD",
        "opening_balance": money(acct.opening_balance),
        "debits": money(debits),
        "credits": money(credits),
        "net_change": money(net_change),
        "closing_balance": money(acct.opening_balance + net_change),
        "line_count": len(lines),
        "by_cost_center": cost_centers[:20],
        "largest_lines": [
            {
                "entry_id": line.entry_id,
                "date": line.date.isoformat(),
                "cost_center": line.cost_center,
                "debit": money(line.debit),
                "credit": money(line.credit),
                "description": line.description,
                "source": line.source,
            }
            for line in largest
        ],
    }


def match_bank_lines(
    bank: list[BankLine] | tuple[BankLine, ...], cash: list[LedgerLine]
) -> tuple[list[tuple[BankLine, LedgerLine]], list[BankLine], list[LedgerLine]]:
    """Pair bank lines with ledger cash lines: same signed amount, dates at most seven days apart.

    Bank lines are taken in date order; each takes the unmatched ledger line closest in date.
    """
    remaining = list(cash)
    matched: list[tuple[BankLine, LedgerLine]] = []
    bank_only: list[BankLine] = []
    for bank_line in sorted(bank, key=lambda b: (b.date, b.txn_id)):
        candidates = [
            line
            for line in remaining
            if line.debit - line.credit == bank_line.amount
            and abs((line.date - bank_line.date).days) <= MATCH_WINDOW_DAYS
        ]
        if not candidates:
            bank_only.append(bank_line)
            continue
        best = min(
            candidates, key=lambda line: (abs((line.date - bank_line.date).days), line.date, line.entry_id)
        )
        remaining.remove(best)
        matched.append((bank_line, best))
    return matched, bank_only, remaining


def reconcile_bank(period: str = CURRENT_PERIOD) -> dict[str, Any]:
    """Reconcile the bank statement of a month against the ledger's operating cash account (1000).

    A bank line matches a ledger cash line with the same amount dated at most 7 days apart. Returns
    matched totals, the unmatched items on each side and whether they explain the whole difference
    between the bank and ledger closing balances.

    Args:
        period: Month of the bank statement in YYYY-MM format, for example "2026-10".
    """
    data = get_data()
    period = check_period(period, data.bank_periods, "bank statement")
    check_period(period, data.ledger_periods, "general ledger")
    bank = data.bank_statements[period]
    cash = [line for line in data.ledger if line.account == CASH_ACCOUNT and line.period == period]
    matched, bank_only, ledger_only = match_bank_lines(bank, cash)

    cash_account = next(a for a in data.accounts if a.account == CASH_ACCOUNT)
    ledger_opening = cash_account.opening_balance
    ledger_closing = ledger_opening + sum((line.debit - line.credit for line in cash), Decimal(0))
    ordered = sorted(bank, key=lambda b: (b.date, b.txn_id))
    bank_opening = ordered[0].balance - ordered[0].amount if ordered else Decimal(0)
    bank_closing = bank_opening + sum((b.amount for b in bank), Decimal(0))

    difference = bank_closing - ledger_closing
    explained = sum((b.amount for b in bank_only), Decimal(0)) - sum(
        (line.debit - line.credit for line in ledger_only), Decimal(0)
    )
    deposits = sum((b.amount for b, _ in matched if b.amount > 0), Decimal(0))
    withdrawals = -sum((b.amount for b, _ in matched if b.amount < 0), Decimal(0))
    return {
        "period": period,
        "account": CASH_ACCOUNT,
        "currency": "USD",
        "bank_opening_balance": money(bank_opening),
        "bank_closing_balance": money(bank_closing),
        "ledger_opening_balance": money(ledger_opening),
        "ledger_closing_balance": money(ledger_closing),
        "difference": money(difference),
        "bank_lines": len(bank),
        "ledger_cash_lines": len(cash),
        "matched_count": len(matched),
        "matched_deposits": money(deposits),
        "matched_withdrawals": money(withdrawals),
        "unmatched_bank": [
            {
                "txn_id": b.txn_id,
                "date": b.date.isoformat(),
                "description": b.description,
                "reference": b.reference or None,
                "amount": money(b.amount),
            }
            for b in bank_only[:20]
        ],
        "unmatched_ledger": [
            {
                "entry_id": line.entry_id,
                "date": line.date.isoformat(),
                "description": line.description,
                "amount": money(line.debit - line.credit),
            }
            for line in ledger_only[:20]
        ],
        "unexplained_difference": money(difference - explained),
        "fully_matched": not bank_only and not ledger_only,
    }


def _aging_bucket(days_past_due: int) -> str:
    for name, low, high in AGING_BUCKETS:
        if days_past_due >= low and (high is None or days_past_due <= high):
            return name
    return "current"  # pragma: no cover


def _days_past_due(due: Any) -> int:
    return max(0, (AS_OF - due).days)


def _unpaid_invoices(type: str | None, overdue_only: bool) -> list[Any]:
    """Unpaid invoices of ``type`` (both when None), most overdue first, then largest."""
    if type is not None and type not in ("AP", "AR"):
        raise ValueError(f"unknown invoice type {type!r}; valid types: AP, AR")
    unpaid = [
        inv
        for inv in get_data().invoices
        if inv.status in ("open", "overdue")
        and (type is None or inv.type == type)
        and (not overdue_only or inv.status == "overdue")
    ]
    unpaid.sort(key=lambda inv: (-_days_past_due(inv.due_date), -inv.amount, inv.invoice_id))
    return unpaid


def _invoice_row(inv: Any) -> dict[str, Any]:
    return {
        "invoice_id": inv.invoice_id,
        "type": inv.type,
        "counterparty": inv.counterparty,
        "issue_date": inv.issue_date.isoformat(),
        "due_date": inv.due_date.isoformat(),
        "amount": money(inv.amount),
        "status": inv.status,
        "days_past_due": _days_past_due(inv.due_date),
        "po_number": inv.po_number,
    }


def get_open_invoices(type: Literal["AP", "AR"] | None = None, overdue_only: bool = False) -> dict[str, Any]:
    """List unpaid AP (supplier) and AR (customer) invoices with ageing as of the period end.

    Totals and ageing buckets (current, 1-30, 31-60, 61-90, over_90 days past due) cover every
    matching invoice; at most 20 invoices are listed, most overdue first.

    Args:
        type: "AP" for supplier invoices, "AR" for customer invoices; leave empty for both.
        overdue_only: If true, only include invoices past their due date.
    """
    unpaid = _unpaid_invoices(type, overdue_only)
    aging = {name: Decimal(0) for name, _, _ in AGING_BUCKETS}
    by_type: dict[str, dict[str, Any]] = {}
    for inv in unpaid:
        aging[_aging_bucket(_days_past_due(inv.due_date))] += inv.amount
        entry = by_type.setdefault(inv.type, {"count": 0, "amount": Decimal(0), "overdue_amount": Decimal(0)})
        entry["count"] += 1
        entry["amount"] += inv.amount
        if inv.status == "overdue":
            entry["overdue_amount"] += inv.amount
    shown, truncated = limit(unpaid)
    return {
        "as_of": as_of(),
        "type": type or "all",
        "overdue_only": overdue_only,
        "currency": "USD",
        "count": len(unpaid),
        "total_amount": money(sum((inv.amount for inv in unpaid), Decimal(0))),
        "overdue_count": sum(1 for inv in unpaid if inv.status == "overdue"),
        "overdue_amount": money(sum((inv.amount for inv in unpaid if inv.status == "overdue"), Decimal(0))),
        "by_type": {
            kind: {
                "count": v["count"],
                "amount": money(v["amount"]),
                "overdue_amount": money(v["overdue_amount"]),
            }
            for kind, v in sorted(by_type.items())
        },
        "aging": {name: money(amount) for name, amount in aging.items()},
        "invoices": [_invoice_row(inv) for inv in shown],
        "truncated": truncated,
    }


def list_open_invoices(type: Literal["AP", "AR"] | None = None, overdue_only: bool = False) -> list[dict[str, Any]]:
    """Every unpaid AP and AR invoice as a list, most overdue first: the items of a for_each agent.

    Args:
        type: "AP" for supplier invoices, "AR" for customer invoices; leave empty for both.
        overdue_only: If true, only include invoices past their due date.
    """
    return [_invoice_row(inv) for inv in _unpaid_invoices(type, overdue_only)]


def _expense_actuals(data: ErpData, period: str) -> dict[tuple[str, str], Decimal]:
    expense_accounts = {a.account for a in data.accounts if a.account_type == "expense"}
    actual: dict[tuple[str, str], Decimal] = {}
    for line in data.ledger:
        if line.period == period and line.account in expense_accounts:
            key = (line.cost_center or "unassigned", line.account)
            actual[key] = actual.get(key, Decimal(0)) + line.debit - line.credit
    return actual


def _variance_row(budget: Decimal, actual: Decimal) -> dict[str, Any]:
    variance = actual - budget
    return {
        "budget": money(budget),
        "actual": money(actual),
        "variance": money(variance),
        "variance_pct": pct(variance, budget),
        "favorable": actual <= budget,
    }


def get_budget_vs_actual(cost_center: str | None = None, period: str = CURRENT_PERIOD) -> dict[str, Any]:
    """Compare budgeted and actual expenses (accounts 5000-6999) for a month, by cost center or account.

    Actuals are the ledger's expense debits less credits. Variance = actual - budget, so a positive
    variance is an overspend; variance_pct is relative to budget. Without a cost center the result
    has one row per cost center plus the five largest account-level variances; with a cost center it
    has one row per account.

    Args:
        cost_center: Cost center code (for example "CC700") or department name. Leave empty for all.
        period: Fiscal month in YYYY-MM format, for example "2026-10".
    """
    data = get_data()
    selected = resolve_cost_center(data, cost_center) if cost_center else None
    period = check_period(period, data.ledger_periods, "general ledger")
    budget: dict[tuple[str, str], Decimal] = {}
    for line in data.budget:
        if line.month == period:
            key = (line.cost_center, line.account)
            budget[key] = budget.get(key, Decimal(0)) + line.budget_amount
    if not budget:
        check_period(period, sorted({line.month for line in data.budget}), "budget")
    actual = _expense_actuals(data, period)
    keys = sorted(k for k in set(budget) | set(actual) if selected is None or k[0] == selected)
    names = {a.account: a.account_name for a in data.accounts}
    departments = {cc: name for name, cc in data.departments.items()}

    total_budget = sum((budget.get(k, Decimal(0)) for k in keys), Decimal(0))
    total_actual = sum((actual.get(k, Decimal(0)) for k in keys), Decimal(0))
    result: dict[str, Any] = {
        "period": period,
        "cost_center": selected or "all",
        "currency": "USD",
        "totals": _variance_row(total_budget, total_actual),
    }
    if selected is None:
        rows = []
        for cc in sorted({k[0] for k in keys}):
            cc_keys = [k for k in keys if k[0] == cc]
            rows.append(
                {
                    "cost_center": cc,
                    "department": departments.get(cc),
                    **_variance_row(
                        sum((budget.get(k, Decimal(0)) for k in cc_keys), Decimal(0)),
                        sum((actual.get(k, Decimal(0)) for k in cc_keys), Decimal(0)),
                    ),
                }
            )
        result["by_cost_center"] = rows[:20]
        largest = sorted(
            keys,
            key=lambda k: (-abs(actual.get(k, Decimal(0)) - budget.get(k, Decimal(0))), k),
        )[:5]
        result["largest_variances"] = [
            {
                "cost_center": cc,
                "account": account,
                "account_name": names.get(account, account),
                **_variance_row(budget.get((cc, account), Decimal(0)), actual.get((cc, account), Decimal(0))),
            }
            for cc, account in largest
        ]
    else:
        result["department"] = departments.get(selected)
        result["by_account"] = [
            {
                "account": account,
                "account_name": names.get(account, account),
                **_variance_row(budget.get((cc, account), Decimal(0)), actual.get((cc, account), Decimal(0))),
            }
            for cc, account in keys
        ][:20]
    return result
