"""Generate the Northwind Components Ltd sample ERP data set for fiscal period 2026-10.

The output is fully determined by the seed, so running this script reproduces the committed CSV
files byte for byte::

    python include/erp/data/generate.py              # rewrite the CSVs next to this script
    python include/erp/data/generate.py --out /tmp/x  # write them somewhere else

Only the standard library is used. Money is computed with ``Decimal`` in cents so every total in
the data set is exact.

The data is internally consistent, which the reconciliation agents rely on:

* payroll and leave balances cover exactly the employees whose status is ``active`` or ``leave``;
  the payroll journal posts salary expense per cost center equal to the payroll file;
* the general ledger's closing balances of Accounts Receivable, Accounts Payable and Inventory
  equal the open AR invoices, the open AP invoices and the stock valuation respectively;
* every cash line of the ledger appears on the bank statement and vice versa, except three
  deliberate reconciling items (see ``DELIBERATE EXCEPTIONS`` below);
* reorder points exist for every SKU and every SKU's supplier exists.
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

SEED = 2026
PERIOD = "2026-10"
PERIOD_START = date(2026, 10, 1)
PERIOD_END = date(2026, 10, 31)
COMPANY = "Northwind Components Ltd"
CENT = Decimal("0.01")
BANK_OPENING_BALANCE = Decimal("1842316.55")

# DELIBERATE EXCEPTIONS in the October bank reconciliation:
#   bank only: a customer wire that settled an overdue AR invoice but was never posted to the ledger,
#   bank only: the bank's monthly account analysis service charge, not yet booked,
#   ledger only: a supplier check written on 2026-10-29 that had not cleared by month end.
UNPOSTED_WIRE_CUSTOMER = "Harbor Point Energy"
SERVICE_CHARGE = Decimal("85.00")
SERVICE_CHARGE_DATE = date(2026, 10, 30)
UNPOSTED_WIRE_DATE = date(2026, 10, 29)
OUTSTANDING_CHECK_DATE = date(2026, 10, 29)
OUTSTANDING_CHECK_NO = "10492"


def q(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def money(rng: random.Random, low: int, high: int) -> Decimal:
    """A random amount between low and high dollars, with cents."""
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def rand_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def business_day(day: date) -> date:
    """The same day, or the following Monday for a Saturday or Sunday."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def previous_business_day(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def fmt(value: Decimal) -> str:
    return f"{value:.2f}"


# --------------------------------------------------------------------------------------------------
# HR
# --------------------------------------------------------------------------------------------------

# department, cost center, [(title, count, salary low, salary high, overtime eligible)]
DEPARTMENTS: list[tuple[str, str, list[tuple[str, int, int, int, bool]]]] = [
    (
        "Executive",
        "CC100",
        [
            ("Chief Executive Officer", 1, 265000, 295000, False),
            ("Chief Operating Officer", 1, 215000, 235000, False),
            ("Executive Assistant", 1, 62000, 72000, False),
        ],
    ),
    (
        "Finance",
        "CC200",
        [
            ("Finance Director", 1, 175000, 190000, False),
            ("Controller", 1, 135000, 150000, False),
            ("Senior Accountant", 1, 88000, 98000, False),
            ("Accountant", 1, 68000, 78000, False),
            ("AP Specialist", 1, 52000, 60000, True),
            ("AR Specialist", 1, 52000, 60000, True),
            ("Payroll Accountant", 1, 64000, 72000, False),
        ],
    ),
    (
        "Human Resources",
        "CC300",
        [
            ("HR Director", 1, 150000, 165000, False),
            ("HR Business Partner", 1, 82000, 92000, False),
            ("Recruiter", 1, 62000, 72000, False),
            ("HR Coordinator", 1, 48000, 55000, True),
        ],
    ),
    (
        "Manufacturing",
        "CC400",
        [
            ("Plant Manager", 1, 140000, 155000, False),
            ("Production Supervisor", 2, 72000, 82000, True),
            ("Quality Engineer", 1, 85000, 95000, False),
            ("Machine Operator", 10, 42000, 52000, True),
            ("Maintenance Technician", 2, 55000, 64000, True),
        ],
    ),
    (
        "Sales",
        "CC500",
        [
            ("VP Sales", 1, 185000, 200000, False),
            ("Account Executive", 4, 78000, 96000, False),
            ("Sales Engineer", 1, 98000, 110000, False),
            ("Inside Sales Representative", 2, 50000, 58000, True),
        ],
    ),
    (
        "Engineering",
        "CC600",
        [
            ("Engineering Manager", 1, 160000, 172000, False),
            ("Senior Mechanical Engineer", 2, 118000, 130000, False),
            ("Mechanical Engineer", 3, 88000, 102000, False),
            ("Electrical Engineer", 2, 92000, 105000, False),
            ("CAD Designer", 2, 62000, 72000, True),
        ],
    ),
    (
        "IT",
        "CC700",
        [
            ("IT Manager", 1, 138000, 150000, False),
            ("Systems Administrator", 1, 90000, 100000, False),
            ("ERP Analyst", 1, 92000, 104000, False),
            ("Security Analyst", 1, 98000, 110000, False),
            ("Service Desk Technician", 1, 50000, 58000, True),
        ],
    ),
    (
        "Logistics",
        "CC800",
        [
            ("Logistics Manager", 1, 105000, 118000, False),
            ("Warehouse Supervisor", 1, 62000, 70000, True),
            ("Warehouse Associate", 4, 40000, 47000, True),
            ("Inventory Controller", 1, 55000, 62000, True),
        ],
    ),
]

FIRST_NAMES = [
    "Amelia",
    "Andre",
    "Beatriz",
    "Carlos",
    "Chen",
    "Dana",
    "Darius",
    "Elena",
    "Farah",
    "Gavin",
    "Grace",
    "Hiro",
    "Imani",
    "Isaac",
    "Jasmine",
    "Jonah",
    "Kavya",
    "Liam",
    "Lucia",
    "Malik",
    "Marta",
    "Mei",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Samuel",
    "Sofia",
    "Tariq",
    "Tessa",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zane",
    "Zoe",
]
LAST_NAMES = [
    "Abbott",
    "Alvarez",
    "Bennett",
    "Brooks",
    "Castillo",
    "Chowdhury",
    "Delgado",
    "Edwards",
    "Fischer",
    "Foster",
    "Garcia",
    "Hughes",
    "Ibrahim",
    "Jensen",
    "Kaur",
    "Kowalski",
    "Lambert",
    "Le",
    "Mendoza",
    "Murphy",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Quintero",
    "Ramirez",
    "Reyes",
    "Schmidt",
    "Sullivan",
    "Tanaka",
    "Thompson",
    "Underwood",
    "Vasquez",
    "Walsh",
    "Whitaker",
    "Xu",
    "Yilmaz",
    "Young",
    "Zimmerman",
]


@dataclass
class Employee:
    employee_id: str
    name: str
    department: str
    cost_center: str
    title: str
    hire_date: date
    status: str
    fte: float
    annual_salary: int
    manager_id: str
    overtime_eligible: bool


def make_employees(rng: random.Random) -> list[Employee]:
    names: list[str] = []
    while len(names) < 60:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if name not in names:
            names.append(name)

    employees: list[Employee] = []
    number = 1001
    for department, cost_center, titles in DEPARTMENTS:
        first_in_department = True
        for title, count, low, high, overtime in titles:
            for _ in range(count):
                if first_in_department:
                    hired = rand_date(rng, date(2012, 1, 9), date(2019, 12, 16))
                else:
                    hired = rand_date(rng, date(2014, 3, 3), date(2026, 8, 31))
                employees.append(
                    Employee(
                        employee_id=f"E{number}",
                        name=names[number - 1001],
                        department=department,
                        cost_center=cost_center,
                        title=title,
                        hire_date=business_day(hired),
                        status="active",
                        fte=1.0,
                        annual_salary=rng.randrange(low, high + 1, 500),
                        manager_id="",
                        overtime_eligible=overtime,
                    )
                )
                number += 1
                first_in_department = False

    # Reporting lines: department heads report to the CEO; everyone else to the department head,
    # except machine operators and warehouse associates, who report to their supervisors.
    ceo = employees[0]
    heads: dict[str, Employee] = {}
    for emp in employees:
        if emp.department not in heads:
            heads[emp.department] = emp
    supervisors = [e for e in employees if e.title == "Production Supervisor"]
    warehouse_supervisor = next(e for e in employees if e.title == "Warehouse Supervisor")
    operator_index = 0
    for emp in employees:
        if emp is ceo:
            continue
        head = heads[emp.department]
        if emp is head or emp.department == "Executive":
            emp.manager_id = ceo.employee_id
        elif emp.title == "Machine Operator":
            emp.manager_id = supervisors[operator_index % 2].employee_id
            operator_index += 1
        elif emp.title == "Warehouse Associate":
            emp.manager_id = warehouse_supervisor.employee_id
        else:
            emp.manager_id = head.employee_id

    # Status and FTE changes only touch staff who own no policy or finding and manage nobody.
    protected = {title for *_, title in FINDINGS} | {p[2] for p in POLICIES}
    protected |= {"Production Supervisor", "Warehouse Supervisor"}
    staff = [
        e
        for e in employees
        if e is not heads[e.department] and e.department != "Executive" and e.title not in protected
    ]
    picked = rng.sample(staff, 11)
    for emp, fte in zip(picked[:5], [0.5, 0.6, 0.8, 0.8, 0.5]):
        emp.fte = fte
    for emp in picked[5:8]:
        emp.status = "leave"
    for emp in picked[8:11]:
        emp.status = "terminated"
    return employees


@dataclass
class PayrollLine:
    employee_id: str
    cost_center: str
    base_pay: Decimal
    overtime_hours: float
    overtime_pay: Decimal
    gross: Decimal
    tax: Decimal
    benefits: Decimal
    net: Decimal


def make_payroll(rng: random.Random, employees: list[Employee]) -> list[PayrollLine]:
    lines = []
    for emp in employees:
        if emp.status == "terminated":
            continue
        base = q(Decimal(emp.annual_salary) * Decimal(str(emp.fte)) / 12)
        hours = 0.0
        if emp.overtime_eligible and emp.status == "active":
            hours = rng.choice([0.0, 0.0, 0.0, 2.5, 4.0, 6.0, 7.5, 8.0, 10.0, 12.0, 14.5, 18.0])
        hourly = Decimal(emp.annual_salary) / 2080
        overtime_pay = q(hourly * Decimal("1.5") * Decimal(str(hours)))
        gross = base + overtime_pay
        if gross < 5000:
            rate = Decimal("0.18")
        elif gross < 10000:
            rate = Decimal("0.22")
        elif gross < 15000:
            rate = Decimal("0.26")
        else:
            rate = Decimal("0.30")
        tax = q(gross * rate)
        premium = rng.choice([Decimal(0), Decimal("145.00"), Decimal("285.00"), Decimal("410.00")])
        retirement = rng.choice(
            [Decimal(0), Decimal("0.03"), Decimal("0.04"), Decimal("0.05"), Decimal("0.06")]
        )
        benefits = premium + q(gross * retirement)
        lines.append(
            PayrollLine(
                employee_id=emp.employee_id,
                cost_center=emp.cost_center,
                base_pay=base,
                overtime_hours=hours,
                overtime_pay=overtime_pay,
                gross=gross,
                tax=tax,
                benefits=benefits,
                net=gross - tax - benefits,
            )
        )
    return lines


def make_leave_balances(rng: random.Random, employees: list[Employee]) -> list[tuple[str, float, float, int]]:
    rows = []
    for emp in employees:
        if emp.status == "terminated":
            continue
        tenure = (PERIOD_END - emp.hire_date).days / 365.25
        vacation = min(32.0, round((tenure * 1.6 + rng.uniform(0, 8)) * 2) / 2)
        sick = round(rng.uniform(0, 10) * 2) / 2
        pending = rng.choices([0, 1, 2, 3], weights=[6, 3, 2, 1])[0]
        rows.append((emp.employee_id, vacation, sick, pending))
    return rows


# --------------------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------------------

SUPPLIERS = [
    ("SUP-001", "Keystone Steel Supply", 14, "0.93", "United States"),
    ("SUP-002", "Pacific Fastener Co", 7, "0.97", "United States"),
    ("SUP-003", "Rhein Precision GmbH", 35, "0.91", "Germany"),
    ("SUP-004", "Shenzhen Bright Electronics", 45, "0.82", "China"),
    ("SUP-005", "Great Lakes Bearings", 10, "0.95", "United States"),
    ("SUP-006", "Monterrey Hydraulics SA", 21, "0.88", "Mexico"),
    ("SUP-007", "Ontario Sensor Works", 18, "0.94", "Canada"),
    ("SUP-008", "Midwest Packaging Solutions", 5, "0.98", "United States"),
    ("SUP-009", "Osaka Motion Components", 40, "0.90", "Japan"),
    ("SUP-010", "Tri-County Industrial Supply", 3, "0.96", "United States"),
]

# category, SKU prefix, suppliers, unit cost range (dollars), descriptions
CATEGORIES: list[tuple[str, str, list[str], tuple[int, int], list[str]]] = [
    (
        "Fasteners",
        "FST",
        ["SUP-002", "SUP-010"],
        (1, 9),
        [
            "Hex bolt M8x40 zinc plated",
            "Socket head cap screw M6x20",
            "Nylon lock nut M10",
            "Flat washer M12 stainless",
            "Threaded rod M10 x 1m",
            "Blind rivet 4.8x12 aluminium",
            "Spring pin 5x30",
            "Flange nut M8 serrated",
            "Set screw M5x8 cup point",
            "Wing nut M6 brass",
        ],
    ),
    (
        "Bearings",
        "BRG",
        ["SUP-005", "SUP-009"],
        (6, 140),
        [
            "Deep groove ball bearing 6204-2RS",
            "Tapered roller bearing 30205",
            "Pillow block bearing UCP205",
            "Linear bearing LM20UU",
            "Needle roller bearing NK20/16",
            "Angular contact bearing 7205B",
            "Thrust ball bearing 51105",
            "Flange bearing UCF206",
            "Spherical roller bearing 22210",
            "Cam follower KR22",
        ],
    ),
    (
        "Electrical",
        "ELC",
        ["SUP-004", "SUP-010"],
        (4, 180),
        [
            "Terminal block 4-pole 10A",
            "Relay 24VDC DPDT",
            "Cable harness 12-pin 1.5m",
            "Circuit breaker 16A C-curve",
            "Power supply 24V 5A DIN",
            "Contactor 18A 24VAC coil",
            "Emergency stop switch 40mm",
            "Cable gland M20 IP68",
            "Motor starter 4-6.3A",
            "Control transformer 250VA",
        ],
    ),
    (
        "Hydraulics",
        "HYD",
        ["SUP-006"],
        (12, 650),
        [
            "Hydraulic hose 1/2in x 2m",
            "Gear pump 10cc/rev",
            "Directional valve 4/3 CETOP3",
            "Hydraulic cylinder 50x300",
            "O-ring kit NBR 382pc",
            "Pressure relief valve 210 bar",
            "Quick coupling 3/8in",
            "Return filter 25 micron",
            "Flow control valve 1/2in",
            "Accumulator 1L bladder",
        ],
    ),
    (
        "Sensors",
        "SNS",
        ["SUP-007", "SUP-004"],
        (18, 420),
        [
            "Inductive proximity sensor M12",
            "Pressure transducer 0-250 bar",
            "Thermocouple type K 150mm",
            "Photoelectric sensor 10m",
            "Rotary encoder 1024 ppr",
            "Load cell 500kg S-type",
            "Level switch float type",
            "Capacitive sensor M18",
            "Flow meter 1in turbine",
            "Vibration sensor 4-20mA",
        ],
    ),
    (
        "Raw Materials",
        "RAW",
        ["SUP-001", "SUP-003"],
        (25, 480),
        [
            "Steel bar 1045 25mm x 3m",
            "Aluminium plate 6061 10mm 1x2m",
            "Stainless sheet 304 2mm 1x2m",
            "Brass rod C360 12mm x 3m",
            "Tool steel D2 block 100x100x50",
            "Steel tube 40x40x3 6m",
            "Copper bus bar 30x5 x 2m",
            "Acetal rod 50mm x 1m",
            "Aluminium extrusion 40x40 x 3m",
            "Spring steel strip 0.5mm coil",
        ],
    ),
    (
        "Packaging",
        "PKG",
        ["SUP-008"],
        (1, 30),
        [
            "Corrugated box 40x30x30",
            "Stretch film 500mm x 300m",
            "Foam insert kit medium",
            "Pallet 1200x1000 heat treated",
            "VCI bag 300x400",
            "Edge protector 50x50x1200",
            "Packing tape 48mm x 66m",
            "Desiccant pack 10g",
            "Shipping label 4x6 roll",
            "Crate kit 800x600",
        ],
    ),
    (
        "Motion Control",
        "MOT",
        ["SUP-009", "SUP-003"],
        (35, 900),
        [
            "Ball screw 16mm x 500mm",
            "Timing belt HTD 5M 450mm",
            "Linear rail 20mm x 1m",
            "Stepper motor NEMA 23",
            "Planetary gearbox 10:1",
            "Servo drive 750W",
            "Flexible coupling 14x14",
            "Timing pulley HTD 5M 30T",
            "Linear actuator 24V 200mm",
            "Servo motor 750W 3000rpm",
        ],
    ),
]

WAREHOUSES = ["WH-DAL", "WH-CHI", "WH-RNO"]


@dataclass
class StockItem:
    sku: str
    description: str
    warehouse: str
    on_hand: int
    allocated: int
    unit_cost: Decimal
    category: str
    reorder_point: int
    reorder_qty: int
    supplier_id: str


def pack_size(quantity: int) -> int:
    for step in (100, 50, 25, 10):
        if quantity >= step * 2:
            return (quantity // step) * step
    return max(quantity, 5)


def make_stock(rng: random.Random) -> list[StockItem]:
    items: list[StockItem] = []
    for category, prefix, suppliers, (cost_low, cost_high), descriptions in CATEGORIES:
        for index, description in enumerate(descriptions):
            unit_cost = money(rng, cost_low, cost_high)
            if unit_cost < 50:
                reorder_point = rng.randint(40, 400)
            elif unit_cost < 200:
                reorder_point = rng.randint(10, 60)
            else:
                reorder_point = rng.randint(4, 20)
            items.append(
                StockItem(
                    sku=f"{prefix}-{1001 + index}",
                    description=description,
                    warehouse=rng.choices(WAREHOUSES, weights=[5, 3, 2])[0],
                    on_hand=0,
                    allocated=0,
                    unit_cost=unit_cost,
                    category=category,
                    reorder_point=reorder_point,
                    reorder_qty=pack_size(reorder_point * rng.choice([2, 2, 3, 4])),
                    supplier_id=suppliers[index % len(suppliers)],
                )
            )

    # Exactly twelve SKUs are below their reorder point; one of them is over-allocated (allocated
    # exceeds on hand) and one further SKU sits exactly on its reorder point, which is not "below".
    order = rng.sample(range(len(items)), 14)
    below = set(order[:12])
    over_allocated = order[0]
    on_the_line = order[12]
    for position, item in enumerate(items):
        rp = item.reorder_point
        if position == over_allocated:
            item.on_hand = rng.randint(1, rp // 2 + 1)
            item.allocated = item.on_hand + rng.randint(2, rp // 2 + 2)
        elif position in below:
            available = rng.randint(0, rp - 1)
            item.allocated = rng.randint(0, rp)
            item.on_hand = available + item.allocated
        elif position == on_the_line:
            item.allocated = rng.randint(1, rp)
            item.on_hand = rp + item.allocated
        else:
            available = rng.randint(rp + 1, rp * 4 + 10)
            item.allocated = rng.randint(0, rp)
            item.on_hand = available + item.allocated
    return items


# --------------------------------------------------------------------------------------------------
# Finance
# --------------------------------------------------------------------------------------------------

CHART_OF_ACCOUNTS = [
    ("1000", "Cash - Operating", "asset", "debit"),
    ("1100", "Accounts Receivable", "asset", "debit"),
    ("1200", "Inventory", "asset", "debit"),
    ("2000", "Accounts Payable", "liability", "credit"),
    ("2200", "Payroll Taxes Payable", "liability", "credit"),
    ("2300", "Benefits Payable", "liability", "credit"),
    ("3000", "Retained Earnings", "equity", "credit"),
    ("4000", "Product Revenue", "revenue", "credit"),
    ("5000", "Cost of Goods Sold", "expense", "debit"),
    ("6000", "Salaries & Wages", "expense", "debit"),
    ("6100", "Payroll Taxes & Benefits", "expense", "debit"),
    ("6200", "Rent & Facilities", "expense", "debit"),
    ("6300", "Utilities", "expense", "debit"),
    ("6400", "Software & Subscriptions", "expense", "debit"),
    ("6500", "Travel & Entertainment", "expense", "debit"),
    ("6600", "Professional Fees", "expense", "debit"),
    ("6700", "Bank Fees", "expense", "debit"),
    ("6800", "Marketing", "expense", "debit"),
    ("6900", "Repairs & Maintenance", "expense", "debit"),
]
ACCOUNT_NAMES = {number: name for number, name, _, _ in CHART_OF_ACCOUNTS}

CUSTOMERS = [
    "Apex Robotics Inc",
    "Blue Ridge Automation",
    "Cascade Fluid Systems",
    "Delta Marine Engineering",
    "Evergreen Ag Equipment",
    "Frontier Rail Services",
    "Granite State Machining",
    UNPOSTED_WIRE_CUSTOMER,
    "Ironwood Industrial",
    "Lakeshore Medical Devices",
]

# vendor, expense account, cost center, amount range, payment terms (days)
SERVICE_VENDORS = [
    ("Lone Star Commercial Properties", "6200", "CC100", (48500, 48500), 0),
    ("North Texas Electric Cooperative", "6300", "CC400", (14000, 19000), 20),
    ("Cloudline ERP Systems", "6400", "CC700", (18000, 22000), 30),
    ("Sentinel Cybersecurity", "6400", "CC700", (6000, 9000), 30),
    ("Whitfield & Hart LLP", "6600", "CC200", (12000, 26000), 30),
    ("Atlas Staffing Partners", "6600", "CC300", (7000, 12000), 30),
    ("Summit Travel Management", "6500", "CC500", (9000, 14000), 15),
    ("Brightpath Marketing Group", "6800", "CC500", (8000, 15000), 30),
    ("Precision Machine Services", "6900", "CC400", (5000, 11000), 30),
    ("Metro Freight Lines", "5000", "CC800", (4000, 9000), 15),
]


@dataclass
class Invoice:
    invoice_id: str
    type: str
    counterparty: str
    issue_date: date
    due_date: date
    amount: Decimal
    status: str
    po_number: str
    paid_date: date | None
    # Ledger details for AP invoices.
    debit_account: str = "1200"
    cost_center: str = ""
    method: str = "ACH"
    check_no: str = ""


@dataclass
class Line:
    date: date
    account: str
    cost_center: str
    debit: Decimal
    credit: Decimal
    description: str
    source: str


@dataclass
class Entry:
    date: date
    lines: list[Line] = field(default_factory=list)
    # Bank counterpart of this entry's cash line: (bank date, description, reference); None when
    # the cash line is the deliberate outstanding check.
    bank: tuple[date, str, str] | None = None

    def add(
        self, account: str, cost_center: str, debit: Decimal, credit: Decimal, description: str, source: str
    ) -> None:
        self.lines.append(Line(self.date, account, cost_center, debit, credit, description, source))


def make_ar_invoices(rng: random.Random) -> list[Invoice]:
    """AR invoices with planned fates; ids are assigned in issue-date order afterwards."""
    plans: list[tuple[date, date, str]] = []  # issue window start, end, fate
    plans += [(date(2026, 7, 1), date(2026, 7, 31), "paid_before")] * 5
    plans += [(date(2026, 7, 6), date(2026, 7, 17), "overdue")]
    plans += [(date(2026, 8, 3), date(2026, 8, 31), "paid_before")] * 2
    plans += [(date(2026, 8, 17), date(2026, 9, 25), "paid_october")] * 8
    plans += [(date(2026, 8, 10), date(2026, 9, 18), "overdue")] * 4
    plans += [(date(2026, 10, 1), date(2026, 10, 9), "paid_october")] * 2
    plans += [(date(2026, 10, 2), date(2026, 10, 28), "open")] * 6

    invoices = []
    customers = list(CUSTOMERS)
    for start, end, fate in plans:
        issue = business_day(rand_date(rng, start, end))
        terms = 30 if fate in ("overdue", "paid_before") else rng.choice([30, 45])
        if fate == "paid_october" and issue >= PERIOD_START:
            terms = 10
        due = issue + timedelta(days=terms)
        paid = None
        if fate == "paid_before":
            paid = business_day(min(due + timedelta(days=rng.randint(-5, 12)), date(2026, 9, 28)))
        elif fate == "paid_october":
            earliest = max(PERIOD_START, issue + timedelta(days=8))
            paid = business_day(rand_date(rng, earliest, date(2026, 10, 27)))
        status = "paid" if paid else ("overdue" if due < PERIOD_END else "open")
        invoices.append(
            Invoice(
                invoice_id="",
                type="AR",
                counterparty=rng.choice(customers),
                issue_date=issue,
                due_date=due,
                amount=money(rng, 12000, 95000),
                status=status,
                po_number=f"CPO-{rng.randint(40000, 79999)}",
                paid_date=paid,
            )
        )
    # The customer behind the unposted wire has exactly one overdue invoice from September.
    overdue_recent = [inv for inv in invoices if inv.status == "overdue" and inv.issue_date.month >= 8]
    for inv in invoices:
        if inv.counterparty == UNPOSTED_WIRE_CUSTOMER:
            inv.counterparty = "Ironwood Industrial"
    overdue_recent[-1].counterparty = UNPOSTED_WIRE_CUSTOMER
    invoices.sort(key=lambda inv: inv.issue_date)
    for number, inv in enumerate(invoices, start=1):
        inv.invoice_id = f"AR-26-{number:04d}"
    return invoices


def make_ap_invoices(rng: random.Random) -> list[Invoice]:
    supplier_names = [name for _, name, _, _, _ in SUPPLIERS]
    plans: list[tuple[str, date, date, str]] = []  # kind, issue window, fate
    plans += [("supplier", date(2026, 7, 1), date(2026, 7, 31), "paid_before")] * 4
    plans += [("supplier", date(2026, 8, 3), date(2026, 8, 28), "paid_before")] * 2
    plans += [("service", date(2026, 8, 3), date(2026, 8, 28), "paid_before")]
    plans += [("supplier", date(2026, 8, 24), date(2026, 9, 25), "paid_october")] * 5
    plans += [("service", date(2026, 9, 1), date(2026, 9, 25), "paid_october")]
    plans += [("supplier", date(2026, 8, 10), date(2026, 9, 10), "overdue")] * 2
    plans += [("service", date(2026, 8, 10), date(2026, 9, 10), "overdue")]
    plans += [("supplier", date(2026, 9, 14), date(2026, 9, 28), "outstanding_check")]
    plans += [("supplier", date(2026, 10, 1), date(2026, 10, 28), "open")] * 5
    services_october = list(range(len(SERVICE_VENDORS)))

    invoices = []
    for kind, start, end, fate in plans:
        issue = business_day(rand_date(rng, start, end))
        if kind == "supplier":
            counterparty = rng.choice(supplier_names)
            amount = money(rng, 4500, 42000)
            terms = rng.choice([30, 45, 60]) if fate != "overdue" else 30
            account, cost_center = "1200", ""
            po_number = f"PO-26-{rng.randint(1000, 1999)}"
        else:
            vendor, account, cost_center, (low, high), terms = rng.choice(SERVICE_VENDORS[1:])
            counterparty = vendor
            amount = money(rng, low, high)
            po_number = f"PO-26-{rng.randint(1000, 1999)}" if account != "6600" else ""
        due = issue + timedelta(days=terms)
        invoices.append(
            Invoice("", "AP", counterparty, issue, due, amount, "", po_number, None, account, cost_center)
        )
        inv = invoices[-1]
        if fate == "paid_before":
            inv.paid_date = business_day(min(due, date(2026, 9, 28)))
        elif fate == "paid_october":
            latest = date(2026, 10, 28)
            earliest = min(max(PERIOD_START, due - timedelta(days=5)), latest)
            inv.paid_date = business_day(rand_date(rng, earliest, latest))
        elif fate == "outstanding_check":
            inv.paid_date = OUTSTANDING_CHECK_DATE
            inv.method = "check"
            inv.check_no = OUTSTANDING_CHECK_NO

    # Every service vendor bills once in October. Rent is due and paid on the first; utilities,
    # freight and travel are paid within the month, the rest stays open.
    for index in services_october:
        vendor, account, cost_center, (low, high), terms = SERVICE_VENDORS[index]
        if index == 0:
            issue = PERIOD_START
        else:
            issue = business_day(rand_date(rng, date(2026, 10, 1), date(2026, 10, 20)))
        due = issue + timedelta(days=terms)
        inv = Invoice(
            "",
            "AP",
            vendor,
            issue,
            due,
            money(rng, low, high),
            "",
            f"PO-26-{rng.randint(1000, 1999)}" if account != "6600" else "",
            None,
            account,
            cost_center,
        )
        if due <= date(2026, 10, 28):
            inv.paid_date = previous_business_day(due) if due > issue else issue
        invoices.append(inv)

    # Up to two early-October supplier payments go out by check and clear a few days later.
    check_no = 10471
    for inv in sorted(invoices, key=lambda i: (i.paid_date or date.max, i.amount)):
        by_check = (
            inv.paid_date is not None
            and PERIOD_START <= inv.paid_date <= date(2026, 10, 20)
            and inv.method == "ACH"
            and inv.debit_account == "1200"
        )
        if by_check and check_no < 10473:
            inv.method = "check"
            inv.check_no = str(check_no)
            check_no += 1

    for inv in invoices:
        if inv.paid_date:
            inv.status = "paid"
        else:
            inv.status = "overdue" if inv.due_date < PERIOD_END else "open"
    invoices.sort(key=lambda inv: (inv.issue_date, inv.counterparty))
    for number, inv in enumerate(invoices, start=1):
        inv.invoice_id = f"AP-26-{number:04d}"
    return invoices


def make_journal(
    rng: random.Random,
    ar: list[Invoice],
    ap: list[Invoice],
    payroll: list[PayrollLine],
) -> tuple[list[Entry], dict[str, Decimal]]:
    """October journal entries and the September liabilities they settle."""
    entries: list[Entry] = []

    def in_october(day: date | None) -> bool:
        return day is not None and PERIOD_START <= day <= PERIOD_END

    for inv in ar:
        if in_october(inv.issue_date):
            sale = Entry(inv.issue_date)
            text = f"Invoice {inv.invoice_id} {inv.counterparty}"
            sale.add("1100", "", inv.amount, Decimal(0), text, "AR")
            sale.add("4000", "CC500", Decimal(0), inv.amount, text, "AR")
            entries.append(sale)
            cogs = q(inv.amount * Decimal(rng.randint(580, 660)) / 1000)
            cost = Entry(inv.issue_date)
            text = f"Cost of goods shipped {inv.invoice_id}"
            cost.add("5000", "CC400", cogs, Decimal(0), text, "INV")
            cost.add("1200", "", Decimal(0), cogs, text, "INV")
            entries.append(cost)
        if in_october(inv.paid_date):
            assert inv.paid_date is not None
            receipt = Entry(inv.paid_date)
            text = f"Customer receipt {inv.invoice_id} {inv.counterparty}"
            receipt.add("1000", "", inv.amount, Decimal(0), text, "AR")
            receipt.add("1100", "", Decimal(0), inv.amount, text, "AR")
            receipt.bank = (inv.paid_date, f"ACH CREDIT {inv.counterparty.upper()}", inv.invoice_id)
            entries.append(receipt)

    for inv in ap:
        if in_october(inv.issue_date):
            bill = Entry(inv.issue_date)
            text = f"Invoice {inv.invoice_id} {inv.counterparty}" + (
                f" {inv.po_number}" if inv.po_number else ""
            )
            bill.add(inv.debit_account, inv.cost_center, inv.amount, Decimal(0), text, "AP")
            bill.add("2000", "", Decimal(0), inv.amount, text, "AP")
            entries.append(bill)
        if in_october(inv.paid_date):
            assert inv.paid_date is not None
            payment = Entry(inv.paid_date)
            if inv.method == "check":
                text = f"Payment {inv.invoice_id} {inv.counterparty} check {inv.check_no}"
            else:
                text = f"Payment {inv.invoice_id} {inv.counterparty} ACH"
            payment.add("2000", "", inv.amount, Decimal(0), text, "AP")
            payment.add("1000", "", Decimal(0), inv.amount, text, "AP")
            if inv.check_no == OUTSTANDING_CHECK_NO:
                payment.bank = None
            elif inv.method == "check":
                cleared = business_day(inv.paid_date + timedelta(days=3))
                payment.bank = (cleared, f"CHECK {inv.check_no}", inv.check_no)
            else:
                payment.bank = (inv.paid_date, f"ACH DEBIT {inv.counterparty.upper()}", inv.invoice_id)
            entries.append(payment)

    # September payroll liabilities, remitted in October.
    september_taxes = money(rng, 141000, 152000)
    september_benefits = money(rng, 17500, 19500)
    remit = Entry(date(2026, 10, 6))
    remit.add("2200", "", september_taxes, Decimal(0), "Remit September payroll taxes", "PAYROLL")
    remit.add("1000", "", Decimal(0), september_taxes, "Remit September payroll taxes", "PAYROLL")
    remit.bank = (date(2026, 10, 6), "EFTPS FEDERAL TAX PAYMENT", "941-2026-09")
    entries.append(remit)
    remit = Entry(date(2026, 10, 9))
    remit.add("2300", "", september_benefits, Decimal(0), "Remit September benefit deductions", "PAYROLL")
    remit.add("1000", "", Decimal(0), september_benefits, "Remit September benefit deductions", "PAYROLL")
    remit.bank = (date(2026, 10, 9), "ACH DEBIT MERIDIAN BENEFITS TRUST", "BEN-2026-09")
    entries.append(remit)

    # Outgoing wire fees that the ledger did record.
    for day in (date(2026, 10, 8), date(2026, 10, 22)):
        fee = Entry(day)
        fee.add("6700", "CC200", Decimal("35.00"), Decimal(0), "Outgoing wire fee", "BANK")
        fee.add("1000", "", Decimal(0), Decimal("35.00"), "Outgoing wire fee", "BANK")
        fee.bank = (day, "OUTGOING WIRE FEE", "")
        entries.append(fee)

    # Travel reclass: part of the Sales travel invoice belongs to Engineering's customer visits.
    travel = next(line for e in entries for line in e.lines if line.account == "6500" and line.debit > 0)
    share = q(travel.debit * Decimal("0.35"))
    reclass = Entry(date(2026, 10, 23))
    text = "Reclass engineering share of customer site visits"
    reclass.add("6500", "CC600", share, Decimal(0), text, "MANUAL")
    reclass.add("6500", "CC500", Decimal(0), share, text, "MANUAL")
    entries.append(reclass)

    # October payroll, paid on the last business day.
    payday = date(2026, 10, 30)
    run = Entry(payday)
    cost_centers = sorted({line.cost_center for line in payroll})
    for cc in cost_centers:
        gross = sum((p.gross for p in payroll if p.cost_center == cc), Decimal(0))
        run.add("6000", cc, gross, Decimal(0), "October payroll gross wages", "PAYROLL")
    employer_total = Decimal(0)
    for cc in cost_centers:
        gross = sum((p.gross for p in payroll if p.cost_center == cc), Decimal(0))
        employer = q(gross * Decimal("0.0765"))
        employer_total += employer
        run.add("6100", cc, employer, Decimal(0), "October employer payroll taxes", "PAYROLL")
    tax = sum((p.tax for p in payroll), Decimal(0))
    benefits = sum((p.benefits for p in payroll), Decimal(0))
    net = sum((p.net for p in payroll), Decimal(0))
    run.add("2200", "", Decimal(0), tax, "October employee tax withholding", "PAYROLL")
    run.add("2200", "", Decimal(0), employer_total, "October employer payroll taxes", "PAYROLL")
    run.add("2300", "", Decimal(0), benefits, "October employee benefit deductions", "PAYROLL")
    run.add("1000", "", Decimal(0), net, "October payroll net pay", "PAYROLL")
    run.bank = (payday, "PAYROLL DIRECT DEPOSIT BATCH", "PR-2026-10")
    entries.append(run)

    entries.sort(key=lambda e: e.date)  # stable: same-day entries keep their creation order
    for entry in entries:
        debits = sum((line.debit for line in entry.lines), Decimal(0))
        credits = sum((line.credit for line in entry.lines), Decimal(0))
        assert debits == credits, entry
    return entries, {"2200": september_taxes, "2300": september_benefits}


def make_budget(rng: random.Random, entries: list[Entry]) -> list[tuple[str, str, str, Decimal]]:
    actual: dict[tuple[str, str], Decimal] = {}
    for entry in entries:
        for line in entry.lines:
            if line.account >= "5000":
                key = (line.cost_center, line.account)
                actual[key] = actual.get(key, Decimal(0)) + line.debit - line.credit
    # Budget lines without October activity, with a typical monthly amount.
    typical = {
        ("CC100", "6500"): 6500,
        ("CC200", "6500"): 1200,
        ("CC300", "6500"): 1500,
        ("CC600", "6400"): 4200,
        ("CC700", "6900"): 2500,
        ("CC800", "6900"): 3200,
        ("CC800", "6300"): 4800,
    }
    overrides = {
        ("CC700", "6400"): Decimal("1.35"),  # software renewals came in 35 percent over budget
        ("CC500", "6500"): Decimal("1.60"),  # trade-show travel not budgeted
        ("CC500", "6800"): Decimal("0.60"),  # campaign postponed to November
    }
    keys = sorted(set(actual) | set(typical))
    rows = []
    seasonal = [
        Decimal(x)
        for x in (
            "0.96",
            "0.95",
            "0.98",
            "1.00",
            "1.00",
            "1.02",
            "0.97",
            "0.99",
            "1.00",
            "1.00",
            "1.01",
            "1.08",
        )
    ]

    def hundred(value: Decimal) -> Decimal:
        return (value / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 100

    for cc, account in keys:
        october_actual = actual.get((cc, account), Decimal(0))
        if october_actual > 0:
            base = october_actual
            if (cc, account) in overrides:
                october_budget = hundred(october_actual / overrides[(cc, account)])
            else:
                october_budget = hundred(october_actual * (1 + Decimal(rng.randint(-70, 70)) / 1000))
        else:
            base = Decimal(typical[(cc, account)])
            october_budget = hundred(base)
        for month in range(1, 13):
            if month == 10:
                amount = october_budget
            else:
                noise = 1 + Decimal(rng.randint(-40, 40)) / 1000
                amount = hundred(base * seasonal[month - 1] * noise)
            rows.append((cc, account, f"2026-{month:02d}", amount))
    return rows


# --------------------------------------------------------------------------------------------------
# Compliance
# --------------------------------------------------------------------------------------------------

# policy id, title, owner title, module, last reviewed, cycle months, summary
POLICIES = [
    (
        "POL-HR-001",
        "Code of Conduct",
        "HR Director",
        "HR",
        "2026-02-16",
        12,
        (
            "Standards of behaviour for all employees, conflicts of interest disclosure and the annual "
            "attestation every employee signs by 31 January."
        ),
    ),
    (
        "POL-HR-002",
        "Leave and Time Off",
        "HR Director",
        "HR",
        "2025-06-30",
        12,
        (
            "Vacation accrues at 1.25 days per month up to a 30 day cap; balances above 25 days must be "
            "scheduled with the manager; unused leave is paid out on termination."
        ),
    ),
    (
        "POL-HR-003",
        "Overtime Authorization",
        "Plant Manager",
        "HR",
        "2025-11-03",
        12,
        (
            "Overtime for non-exempt staff needs prior approval by the supervisor; more than 16 hours in "
            "a month needs the department head's approval recorded in the timekeeping system."
        ),
    ),
    (
        "POL-HR-004",
        "Background Screening",
        "HR Business Partner",
        "HR",
        "2024-09-23",
        24,
        (
            "Criminal and employment checks for all hires; finance and IT roles also need a credit check "
            "before system access is granted."
        ),
    ),
    (
        "POL-FIN-001",
        "Expense Reimbursement",
        "Controller",
        "Finance",
        "2026-04-13",
        12,
        (
            "Expenses must be claimed within 30 days with itemised receipts; travel over 2,500 USD needs "
            "pre-approval; alcohol and personal entertainment are not reimbursable."
        ),
    ),
    (
        "POL-FIN-002",
        "Procurement and Purchase Orders",
        "Finance Director",
        "Finance",
        "2025-03-10",
        12,
        (
            "Purchases above 5,000 USD need an approved purchase order before the invoice date; three "
            "quotes are required above 25,000 USD; invoices are paid only after a three-way match."
        ),
    ),
    (
        "POL-FIN-003",
        "Month-End Close and Reconciliation",
        "Controller",
        "Finance",
        "2026-01-19",
        12,
        (
            "Bank, AR, AP, inventory and payroll accounts are reconciled within five business days of "
            "month end; every reconciling item over 1,000 USD is explained and reviewed by a second person."
        ),
    ),
    (
        "POL-FIN-004",
        "Delegation of Authority and Payment Approval",
        "Finance Director",
        "Finance",
        "2025-12-08",
        12,
        (
            "Payments up to 25,000 USD are approved by the Controller, up to 100,000 USD by the Finance "
            "Director and above that by the CEO; vendor bank detail changes require call-back verification."
        ),
    ),
    (
        "POL-FIN-005",
        "Revenue Recognition",
        "Controller",
        "Finance",
        "2026-05-04",
        24,
        (
            "Product revenue is recognised on shipment under the customer's Incoterms; credit notes and "
            "unapplied customer cash are reviewed weekly by the AR Specialist."
        ),
    ),
    (
        "POL-INV-001",
        "Cycle Counting and Inventory Adjustments",
        "Logistics Manager",
        "Inventory",
        "2025-10-06",
        12,
        (
            "A-class SKUs are counted monthly and all others quarterly; adjustments above 2,000 USD need "
            "the Controller's approval; count variances above 5 percent are investigated within ten days."
        ),
    ),
    (
        "POL-INV-002",
        "Supplier Onboarding and Evaluation",
        "Logistics Manager",
        "Inventory",
        "2026-03-02",
        24,
        (
            "New suppliers pass a financial, quality and sanctions check; suppliers with on-time delivery "
            "below 90 percent are placed on a corrective action plan."
        ),
    ),
    (
        "POL-INV-003",
        "Obsolete and Slow-Moving Stock",
        "Inventory Controller",
        "Inventory",
        "2025-05-20",
        24,
        (
            "Stock without movement for 12 months is reserved at 50 percent and at 100 percent after "
            "24 months; write-offs need the Finance Director's approval."
        ),
    ),
    (
        "POL-CMP-001",
        "Segregation of Duties",
        "Finance Director",
        "Compliance",
        "2026-06-08",
        12,
        (
            "No one may both create vendors and approve payments, or both run payroll and approve payroll "
            "changes; exceptions are logged with a compensating review."
        ),
    ),
    (
        "POL-CMP-002",
        "Information Security and Access Review",
        "IT Manager",
        "Compliance",
        "2025-07-14",
        12,
        (
            "ERP access is removed within one business day of termination; user access is recertified "
            "quarterly by system owners; privileged accounts use multi-factor authentication."
        ),
    ),
    (
        "POL-CMP-003",
        "Records Retention",
        "Controller",
        "Compliance",
        "2025-01-27",
        24,
        (
            "Financial records, payroll registers and tax filings are retained for seven years; audit "
            "working papers for ten years; destruction is logged."
        ),
    ),
    (
        "POL-CMP-004",
        "Anti-Bribery and Corruption",
        "Chief Operating Officer",
        "Compliance",
        "2026-09-14",
        12,
        (
            "Gifts above 100 USD to or from customers, suppliers or officials are declared in the gift "
            "register; facilitation payments are prohibited."
        ),
    ),
]

# finding id, area, severity, status, opened, due, description, owner title
FINDINGS = [
    (
        "AF-2026-001",
        "Accounts Payable",
        "high",
        "remediated",
        "2026-02-09",
        "2026-04-30",
        "Two duplicate supplier payments totalling 18,420 USD were not detected by the AP system.",
        "Controller",
    ),
    (
        "AF-2026-002",
        "Payroll",
        "medium",
        "remediated",
        "2026-02-09",
        "2026-05-29",
        "Payroll changes for four employees were entered and approved by the same person.",
        "HR Director",
    ),
    (
        "AF-2026-003",
        "Inventory",
        "medium",
        "open",
        "2026-03-16",
        "2026-06-30",
        "Cycle count variances above 5 percent at WH-RNO were adjusted without investigation notes.",
        "Logistics Manager",
    ),
    (
        "AF-2026-004",
        "Access Management",
        "critical",
        "open",
        "2026-04-20",
        "2026-07-31",
        "Terminated employee {terminated} kept active ERP access for 21 days after separation.",
        "IT Manager",
    ),
    (
        "AF-2026-005",
        "Bank Reconciliation",
        "high",
        "open",
        "2026-05-11",
        "2026-08-31",
        "The bank reconciliation was completed 19 days after month end and had no reviewer sign-off.",
        "Controller",
    ),
    (
        "AF-2026-006",
        "Procurement",
        "medium",
        "open",
        "2026-05-11",
        "2026-11-30",
        "Seven purchases above 5,000 USD were ordered before a purchase order was approved.",
        "Finance Director",
    ),
    (
        "AF-2026-007",
        "Accounts Payable",
        "critical",
        "open",
        "2026-06-22",
        "2026-11-15",
        "Three vendor bank detail changes were processed without call-back verification.",
        "Finance Director",
    ),
    (
        "AF-2026-008",
        "Revenue",
        "low",
        "remediated",
        "2026-03-02",
        "2026-04-15",
        "Credit notes were issued without a documented reason code.",
        "AR Specialist",
    ),
    (
        "AF-2026-009",
        "Payroll",
        "high",
        "open",
        "2026-07-13",
        "2026-12-31",
        "Overtime above 16 hours per month was paid without department head approval on file.",
        "Plant Manager",
    ),
    (
        "AF-2026-010",
        "Access Management",
        "medium",
        "remediated",
        "2026-01-26",
        "2026-03-31",
        "Quarterly ERP user access recertification was not performed for Q4 2025.",
        "IT Manager",
    ),
    (
        "AF-2026-011",
        "Inventory",
        "low",
        "open",
        "2026-08-03",
        "2026-12-15",
        "Slow-moving stock reserve was calculated on a spreadsheet without version control.",
        "Inventory Controller",
    ),
    (
        "AF-2026-012",
        "Expense Reports",
        "low",
        "remediated",
        "2026-04-06",
        "2026-06-30",
        "Twelve expense claims were submitted more than 30 days after the expense date.",
        "Senior Accountant",
    ),
    (
        "AF-2026-013",
        "General Ledger",
        "medium",
        "open",
        "2026-08-24",
        "2026-10-15",
        "Manual journal entries above 10,000 USD were posted without attached support.",
        "Controller",
    ),
    (
        "AF-2026-014",
        "Treasury",
        "high",
        "remediated",
        "2026-03-30",
        "2026-06-30",
        "Signatory list at the bank still included a former Finance employee.",
        "Finance Director",
    ),
    (
        "AF-2026-015",
        "Accounts Receivable",
        "medium",
        "open",
        "2026-09-21",
        "2026-12-31",
        "Unapplied customer cash is not reviewed weekly as required by POL-FIN-005.",
        "AR Specialist",
    ),
    (
        "AF-2026-016",
        "Inventory",
        "high",
        "open",
        "2026-10-05",
        "2027-01-31",
        "Allocations above on-hand quantity were accepted for sales orders without a backorder flag.",
        "Logistics Manager",
    ),
    (
        "AF-2026-017",
        "Information Security",
        "low",
        "open",
        "2026-10-12",
        "2027-02-28",
        "Two service accounts on the ERP database do not use multi-factor authentication.",
        "Security Analyst",
    ),
    (
        "AF-2026-018",
        "Payroll",
        "medium",
        "remediated",
        "2026-06-01",
        "2026-08-31",
        "Benefit deduction rates were not updated for two employees after plan changes.",
        "Payroll Accountant",
    ),
]


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if value is None else value for value in row])


def generate(out_dir: Path) -> list[Path]:
    rng = random.Random(SEED)
    out_dir.mkdir(parents=True, exist_ok=True)

    employees = make_employees(rng)
    payroll = make_payroll(rng, employees)
    leave = make_leave_balances(rng, employees)
    stock = make_stock(rng)
    ar = make_ar_invoices(rng)
    ap = make_ap_invoices(rng)
    entries, september = make_journal(rng, ar, ap, payroll)
    budget = make_budget(rng, entries)
    by_title = {e.title: e for e in employees}
    terminated = next(e for e in employees if e.status == "terminated")

    written: list[Path] = []

    def out(name: str, header: list[str], rows: list[list[object]]) -> None:
        write_csv(out_dir / name, header, rows)
        written.append(out_dir / name)

    # HR
    out(
        "employees.csv",
        [
            "employee_id",
            "name",
            "department",
            "cost_center",
            "title",
            "hire_date",
            "status",
            "fte",
            "annual_salary",
            "manager_id",
        ],
        [
            [
                e.employee_id,
                e.name,
                e.department,
                e.cost_center,
                e.title,
                e.hire_date.isoformat(),
                e.status,
                f"{e.fte:.1f}",
                e.annual_salary,
                e.manager_id,
            ]
            for e in employees
        ],
    )
    out(
        "payroll_2026_10.csv",
        [
            "employee_id",
            "period",
            "cost_center",
            "base_pay",
            "overtime_hours",
            "overtime_pay",
            "gross",
            "tax",
            "benefits",
            "net",
        ],
        [
            [
                p.employee_id,
                PERIOD,
                p.cost_center,
                fmt(p.base_pay),
                f"{p.overtime_hours:.1f}",
                fmt(p.overtime_pay),
                fmt(p.gross),
                fmt(p.tax),
                fmt(p.benefits),
                fmt(p.net),
            ]
            for p in payroll
        ],
    )
    out(
        "leave_balances.csv",
        ["employee_id", "vacation_days", "sick_days", "pending_requests"],
        [[emp_id, f"{vac:.1f}", f"{sick:.1f}", pending] for emp_id, vac, sick, pending in leave],
    )

    # Inventory
    out(
        "suppliers.csv",
        ["supplier_id", "name", "lead_time_days", "on_time_rate", "country"],
        [list(s) for s in SUPPLIERS],
    )
    out(
        "stock_levels.csv",
        ["sku", "description", "warehouse", "on_hand", "allocated", "unit_cost", "category"],
        [
            [s.sku, s.description, s.warehouse, s.on_hand, s.allocated, fmt(s.unit_cost), s.category]
            for s in stock
        ],
    )
    out(
        "reorder_points.csv",
        ["sku", "reorder_point", "reorder_qty", "supplier_id"],
        [[s.sku, s.reorder_point, s.reorder_qty, s.supplier_id] for s in stock],
    )

    # Finance: opening balances make the subledgers tie out to the ledger at month end.
    def open_at_september_end(inv: Invoice) -> bool:
        return inv.issue_date < PERIOD_START and (inv.paid_date is None or inv.paid_date >= PERIOD_START)

    lines = [line for entry in entries for line in entry.lines]

    def movement(account: str) -> Decimal:
        return sum((ln.debit - ln.credit for ln in lines if ln.account == account), Decimal(0))

    valuation = sum((s.unit_cost * s.on_hand for s in stock), Decimal(0))
    opening = {
        "1000": BANK_OPENING_BALANCE,
        "1100": sum((i.amount for i in ar if open_at_september_end(i)), Decimal(0)),
        "1200": valuation - movement("1200"),
        "2000": sum((i.amount for i in ap if open_at_september_end(i)), Decimal(0)),
        "2200": september["2200"],
        "2300": september["2300"],
    }
    assets = opening["1000"] + opening["1100"] + opening["1200"]
    opening["3000"] = assets - opening["2000"] - opening["2200"] - opening["2300"]
    assert opening["1200"] > 0 and opening["3000"] > 0
    out(
        "chart_of_accounts.csv",
        ["account", "account_name", "account_type", "normal_balance", "opening_balance"],
        [
            [number, name, kind, normal, fmt(opening.get(number, Decimal(0)))]
            for number, name, kind, normal in CHART_OF_ACCOUNTS
        ],
    )

    gl_rows = []
    for number, entry in enumerate(entries, start=1):
        for line in entry.lines:
            gl_rows.append(
                [
                    f"JE-2610-{number:04d}",
                    line.date.isoformat(),
                    line.account,
                    ACCOUNT_NAMES[line.account],
                    line.cost_center,
                    fmt(line.debit),
                    fmt(line.credit),
                    line.description,
                    line.source,
                ]
            )
    out(
        "general_ledger.csv",
        [
            "entry_id",
            "date",
            "account",
            "account_name",
            "cost_center",
            "debit",
            "credit",
            "description",
            "source",
        ],
        gl_rows,
    )

    bank: list[tuple[date, int, str, str, Decimal]] = []
    for order, entry in enumerate(entries):
        if entry.bank is None:
            continue
        cash = next(line for line in entry.lines if line.account == "1000")
        bank_date, text, reference = entry.bank
        bank.append((bank_date, order, text, reference, cash.debit - cash.credit))
    unposted = next(i for i in ar if i.counterparty == UNPOSTED_WIRE_CUSTOMER and i.status == "overdue")
    bank.append(
        (
            UNPOSTED_WIRE_DATE,
            len(entries),
            f"WIRE IN {UNPOSTED_WIRE_CUSTOMER.upper()}",
            unposted.invoice_id,
            unposted.amount,
        )
    )
    bank.append(
        (SERVICE_CHARGE_DATE, len(entries) + 1, "ACCOUNT ANALYSIS SERVICE CHARGE", "", -SERVICE_CHARGE)
    )
    bank.sort(key=lambda row: (row[0], row[1]))
    cash_amounts = [ln.debit - ln.credit for ln in lines if ln.account == "1000"]
    assert unposted.amount not in cash_amounts and -SERVICE_CHARGE not in cash_amounts
    balance = BANK_OPENING_BALANCE
    bank_rows = []
    for number, (bank_date, _, text, reference, amount) in enumerate(bank, start=1):
        balance += amount
        bank_rows.append(
            [f"BK-2610-{number:03d}", bank_date.isoformat(), text, reference, fmt(amount), fmt(balance)]
        )
    out(
        "bank_statement_2026_10.csv",
        ["txn_id", "date", "description", "reference", "amount", "balance"],
        bank_rows,
    )

    invoices = sorted(ar + ap, key=lambda i: (i.issue_date, i.invoice_id))
    out(
        "invoices.csv",
        [
            "invoice_id",
            "type",
            "counterparty",
            "issue_date",
            "due_date",
            "amount",
            "currency",
            "status",
            "po_number",
        ],
        [
            [
                i.invoice_id,
                i.type,
                i.counterparty,
                i.issue_date.isoformat(),
                i.due_date.isoformat(),
                fmt(i.amount),
                "USD",
                i.status,
                i.po_number,
            ]
            for i in invoices
        ],
    )
    out(
        "budget_2026.csv",
        ["cost_center", "account", "month", "budget_amount"],
        [[cc, account, month, fmt(amount)] for cc, account, month, amount in budget],
    )

    # Compliance
    out(
        "policies.csv",
        ["policy_id", "title", "owner", "module", "last_reviewed", "review_cycle_months", "summary"],
        [
            [pid, title, by_title[owner].name, module, reviewed, cycle, summary]
            for pid, title, owner, module, reviewed, cycle, summary in POLICIES
        ],
    )
    out(
        "audit_findings.csv",
        ["finding_id", "area", "severity", "status", "opened", "due", "description", "owner"],
        [
            [
                fid,
                area,
                severity,
                status,
                opened,
                due,
                text.format(terminated=terminated.employee_id),
                by_title[owner].name,
            ]
            for fid, area, severity, status, opened, due, text, owner in FINDINGS
        ],
    )
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=f"Generate the {COMPANY} sample ERP data.")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="directory to write the CSV files to (default: next to this script)",
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    main()
