"""Read-only access to the Northwind Components Ltd sample ERP data.

The CSV files in ``include/erp/data`` are parsed once per process and per data directory into frozen
dataclasses. Money is kept as ``Decimal`` so that totals are exact; the tools convert to ``float``
only when they build their JSON results.

Set ``ERP_DATA_DIR`` to read another directory with the same file layout (the tests do this).
"""

from __future__ import annotations

import calendar
import csv
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

DATA_DIR_ENV = "ERP_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
COMPANY = "Northwind Components Ltd"
CURRENCY = "USD"
CURRENT_PERIOD = "2026-10"
# Reporting date of the data set: invoice ageing, reorder arrival dates and overdue findings are
# computed as of the last day of the current period.
AS_OF = date(2026, 10, 31)

_PERIOD_FILE = re.compile(r"^(?P<stem>[a-z_]+?)_(?P<year>\d{4})_(?P<month>\d{2})\.csv$")


@dataclass(frozen=True)
class Employee:
    employee_id: str
    name: str
    department: str
    cost_center: str
    title: str
    hire_date: date
    status: str  # active | leave | terminated
    fte: float
    annual_salary: Decimal  # full-time equivalent salary
    manager_id: str | None


@dataclass(frozen=True)
class PayrollLine:
    employee_id: str
    period: str
    cost_center: str
    base_pay: Decimal
    overtime_hours: float
    overtime_pay: Decimal
    gross: Decimal
    tax: Decimal
    benefits: Decimal
    net: Decimal


@dataclass(frozen=True)
class LeaveBalance:
    employee_id: str
    vacation_days: float
    sick_days: float
    pending_requests: int


@dataclass(frozen=True)
class Account:
    account: str
    account_name: str
    account_type: str  # asset | liability | equity | revenue | expense
    normal_balance: str  # debit | credit
    opening_balance: Decimal  # at the start of the current period, in normal-balance terms


@dataclass(frozen=True)
class LedgerLine:
    entry_id: str
    date: date
    account: str
    account_name: str
    cost_center: str | None
    debit: Decimal
    credit: Decimal
    description: str
    source: str

    @property
    def period(self) -> str:
        return self.date.strftime("%Y-%m")


@dataclass(frozen=True)
class BankLine:
    txn_id: str
    date: date
    description: str
    reference: str
    amount: Decimal  # positive = deposit, negative = withdrawal
    balance: Decimal  # running balance after this line


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    type: str  # AP | AR
    counterparty: str
    issue_date: date
    due_date: date
    amount: Decimal
    currency: str
    status: str  # open | paid | overdue
    po_number: str | None


@dataclass(frozen=True)
class BudgetLine:
    cost_center: str
    account: str
    month: str
    budget_amount: Decimal


@dataclass(frozen=True)
class StockItem:
    sku: str
    description: str
    warehouse: str
    on_hand: int
    allocated: int
    unit_cost: Decimal
    category: str

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def value(self) -> Decimal:
        return self.unit_cost * self.on_hand


@dataclass(frozen=True)
class ReorderPoint:
    sku: str
    reorder_point: int
    reorder_qty: int
    supplier_id: str


@dataclass(frozen=True)
class Supplier:
    supplier_id: str
    name: str
    lead_time_days: int
    on_time_rate: float
    country: str


@dataclass(frozen=True)
class Policy:
    policy_id: str
    title: str
    owner: str
    module: str
    last_reviewed: date
    review_cycle_months: int
    summary: str

    @property
    def next_review_due(self) -> date:
        return add_months(self.last_reviewed, self.review_cycle_months)


@dataclass(frozen=True)
class AuditFinding:
    finding_id: str
    area: str
    severity: str  # low | medium | high | critical
    status: str  # open | remediated
    opened: date
    due: date
    description: str
    owner: str


@dataclass(frozen=True)
class ErpData:
    """Everything in one data directory. Periodic files are keyed by period ("2026-10")."""

    data_dir: Path
    employees: tuple[Employee, ...]
    payroll: Mapping[str, tuple[PayrollLine, ...]]
    leave_balances: tuple[LeaveBalance, ...]
    accounts: tuple[Account, ...]
    ledger: tuple[LedgerLine, ...]
    bank_statements: Mapping[str, tuple[BankLine, ...]]
    invoices: tuple[Invoice, ...]
    budget: tuple[BudgetLine, ...]
    stock: tuple[StockItem, ...]
    reorder_points: tuple[ReorderPoint, ...]
    suppliers: tuple[Supplier, ...]
    policies: tuple[Policy, ...]
    audit_findings: tuple[AuditFinding, ...]

    @property
    def ledger_periods(self) -> tuple[str, ...]:
        return tuple(sorted({line.period for line in self.ledger}))

    @property
    def payroll_periods(self) -> tuple[str, ...]:
        return tuple(sorted(self.payroll))

    @property
    def bank_periods(self) -> tuple[str, ...]:
        return tuple(sorted(self.bank_statements))

    @property
    def departments(self) -> dict[str, str]:
        """Department name -> cost center, from the employee master."""
        return {e.department: e.cost_center for e in sorted(self.employees, key=lambda e: e.cost_center)}


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the last day of the target month."""
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month_index + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def data_dir() -> Path:
    """The data directory in use: ``$ERP_DATA_DIR`` if set, else the bundled sample data."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override).expanduser().resolve() if override else DEFAULT_DATA_DIR


def get_data() -> ErpData:
    """The parsed data of the current data directory, loaded once per process and directory."""
    return load_data(data_dir())


def clear_cache() -> None:
    load_data.cache_clear()


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"ERP data file missing: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _periodic(directory: Path, stem: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(directory.glob(f"{stem}_*.csv")):
        match = _PERIOD_FILE.match(path.name)
        if match and match["stem"] == stem:
            found[f"{match['year']}-{match['month']}"] = path
    return found


def _opt(value: str) -> str | None:
    value = value.strip()
    return value or None


@lru_cache(maxsize=8)
def load_data(directory: Path) -> ErpData:
    d = Path(directory)
    employees = tuple(
        Employee(
            employee_id=r["employee_id"],
            name=r["name"],
            department=r["department"],
            cost_center=r["cost_center"],
            title=r["title"],
            hire_date=date.fromisoformat(r["hire_date"]),
            status=r["status"],
            fte=float(r["fte"]),
            annual_salary=Decimal(r["annual_salary"]),
            manager_id=_opt(r["manager_id"]),
        )
        for r in _rows(d / "employees.csv")
    )
    payroll = {
        period: tuple(
            PayrollLine(
                employee_id=r["employee_id"],
                period=r["period"],
                cost_center=r["cost_center"],
                base_pay=Decimal(r["base_pay"]),
                overtime_hours=float(r["overtime_hours"]),
                overtime_pay=Decimal(r["overtime_pay"]),
                gross=Decimal(r["gross"]),
                tax=Decimal(r["tax"]),
                benefits=Decimal(r["benefits"]),
                net=Decimal(r["net"]),
            )
            for r in _rows(path)
        )
        for period, path in _periodic(d, "payroll").items()
    }
    leave = tuple(
        LeaveBalance(
            employee_id=r["employee_id"],
            vacation_days=float(r["vacation_days"]),
            sick_days=float(r["sick_days"]),
            pending_requests=int(r["pending_requests"]),
        )
        for r in _rows(d / "leave_balances.csv")
    )
    accounts = tuple(
        Account(
            account=r["account"],
            account_name=r["account_name"],
            account_type=r["account_type"],
            normal_balance=r["normal_balance"],
            opening_balance=Decimal(r["opening_balance"]),
        )
        for r in _rows(d / "chart_of_accounts.csv")
    )
    ledger = tuple(
        LedgerLine(
            entry_id=r["entry_id"],
            date=date.fromisoformat(r["date"]),
            account=r["account"],
            account_name=r["account_name"],
            cost_center=_opt(r["cost_center"]),
            debit=Decimal(r["debit"]),
            credit=Decimal(r["credit"]),
            description=r["description"],
            source=r["source"],
        )
        for r in _rows(d / "general_ledger.csv")
    )
    bank = {
        period: tuple(
            BankLine(
                txn_id=r["txn_id"],
                date=date.fromisoformat(r["date"]),
                description=r["description"],
                reference=r["reference"],
                amount=Decimal(r["amount"]),
                balance=Decimal(r["balance"]),
            )
            for r in _rows(path)
        )
        for period, path in _periodic(d, "bank_statement").items()
    }
    invoices = tuple(
        Invoice(
            invoice_id=r["invoice_id"],
            type=r["type"],
            counterparty=r["counterparty"],
            issue_date=date.fromisoformat(r["issue_date"]),
            due_date=date.fromisoformat(r["due_date"]),
            amount=Decimal(r["amount"]),
            currency=r["currency"],
            status=r["status"],
            po_number=_opt(r["po_number"]),
        )
        for r in _rows(d / "invoices.csv")
    )
    budget = tuple(
        BudgetLine(
            cost_center=r["cost_center"],
            account=r["account"],
            month=r["month"],
            budget_amount=Decimal(r["budget_amount"]),
        )
        for r in _rows(d / "budget_2026.csv")
    )
    stock = tuple(
        StockItem(
            sku=r["sku"],
            description=r["description"],
            warehouse=r["warehouse"],
            on_hand=int(r["on_hand"]),
            allocated=int(r["allocated"]),
            unit_cost=Decimal(r["unit_cost"]),
            category=r["category"],
        )
        for r in _rows(d / "stock_levels.csv")
    )
    reorder = tuple(
        ReorderPoint(
            sku=r["sku"],
            reorder_point=int(r["reorder_point"]),
            reorder_qty=int(r["reorder_qty"]),
            supplier_id=r["supplier_id"],
        )
        for r in _rows(d / "reorder_points.csv")
    )
    suppliers = tuple(
        Supplier(
            supplier_id=r["supplier_id"],
            name=r["name"],
            lead_time_days=int(r["lead_time_days"]),
            on_time_rate=float(r["on_time_rate"]),
            country=r["country"],
        )
        for r in _rows(d / "suppliers.csv")
    )
    policies = tuple(
        Policy(
            policy_id=r["policy_id"],
            title=r["title"],
            owner=r["owner"],
            module=r["module"],
            last_reviewed=date.fromisoformat(r["last_reviewed"]),
            review_cycle_months=int(r["review_cycle_months"]),
            summary=r["summary"],
        )
        for r in _rows(d / "policies.csv")
    )
    findings = tuple(
        AuditFinding(
            finding_id=r["finding_id"],
            area=r["area"],
            severity=r["severity"],
            status=r["status"],
            opened=date.fromisoformat(r["opened"]),
            due=date.fromisoformat(r["due"]),
            description=r["description"],
            owner=r["owner"],
        )
        for r in _rows(d / "audit_findings.csv")
    )
    return ErpData(
        data_dir=d,
        employees=employees,
        payroll=MappingProxyType(payroll),
        leave_balances=leave,
        accounts=accounts,
        ledger=ledger,
        bank_statements=MappingProxyType(bank),
        invoices=invoices,
        budget=budget,
        stock=stock,
        reorder_points=reorder,
        suppliers=suppliers,
        policies=policies,
        audit_findings=findings,
    )
