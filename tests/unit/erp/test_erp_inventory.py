"""Inventory tools against values computed directly from the CSV files."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from include.erp.tools.finance import get_ledger_balance
from include.erp.tools.inventory import get_reorder_candidates, get_stock_levels, get_supplier_lead_times

D = Decimal


def f(value: Decimal) -> float:
    return float(value.quantize(D("0.01"), rounding=ROUND_HALF_UP))


def value(item: dict[str, str]) -> Decimal:
    return D(item["unit_cost"]) * int(item["on_hand"])


def test_stock_levels_company(rows) -> None:
    stock = rows("stock_levels.csv")
    result = get_stock_levels()
    assert result["sku_count"] == 80
    assert result["totals"]["on_hand"] == sum(int(s["on_hand"]) for s in stock)
    assert result["totals"]["allocated"] == sum(int(s["allocated"]) for s in stock)
    assert result["totals"]["available"] == result["totals"]["on_hand"] - result["totals"]["allocated"]
    total = sum((value(s) for s in stock), D(0))
    assert result["totals"]["value"] == f(total) == 936823.52
    assert result["totals"]["value"] == get_ledger_balance("1200")["closing_balance"]
    assert sum(D(str(w["value"])) for w in result["by_warehouse"]) == total
    assert sum(D(str(c["value"])) for c in result["by_category"]) == total
    assert len(result["items"]) == 20 and result["truncated"] is True
    top = sorted(stock, key=lambda s: (-value(s), s["sku"]))[:20]
    assert [i["sku"] for i in result["items"]] == [s["sku"] for s in top]
    assert result["over_allocated_skus"] == [
        s["sku"] for s in stock if int(s["on_hand"]) < int(s["allocated"])
    ]


@pytest.mark.parametrize(
    ("warehouse", "category"), [("WH-RNO", None), ("wh-dal", "hydraulics"), (None, "Bearings")]
)
def test_stock_levels_filters(rows, warehouse, category) -> None:
    expected = [
        s
        for s in rows("stock_levels.csv")
        if (warehouse is None or s["warehouse"] == warehouse.upper())
        and (category is None or s["category"].lower() == category.lower())
    ]
    result = get_stock_levels(warehouse, category)
    assert result["sku_count"] == len(expected) > 0
    assert result["totals"]["value"] == f(sum((value(s) for s in expected), D(0)))
    assert {i["sku"] for i in result["items"]} <= {s["sku"] for s in expected}


def test_stock_levels_errors() -> None:
    with pytest.raises(
        ValueError, match="unknown warehouse 'WH-NYC'; valid warehouses: WH-CHI, WH-DAL, WH-RNO"
    ):
        get_stock_levels("WH-NYC")
    with pytest.raises(ValueError) as excinfo:
        get_stock_levels(category="Widgets")
    assert "unknown category 'Widgets'" in str(excinfo.value) and "Bearings" in str(excinfo.value)


def _expected_candidates(rows, warehouse: str | None = None) -> dict[str, dict[str, object]]:
    stock = {s["sku"]: s for s in rows("stock_levels.csv")}
    suppliers = {s["supplier_id"]: s for s in rows("suppliers.csv")}
    expected = {}
    for r in rows("reorder_points.csv"):
        s = stock[r["sku"]]
        available = int(s["on_hand"]) - int(s["allocated"])
        point, qty = int(r["reorder_point"]), int(r["reorder_qty"])
        if available >= point or (warehouse and s["warehouse"] != warehouse):
            continue
        suggested = max(1, math.ceil((point - available) / qty)) * qty
        lead = int(suppliers[r["supplier_id"]]["lead_time_days"])
        expected[r["sku"]] = {
            "available": available,
            "suggested_qty": suggested,
            "estimated_cost": f(D(s["unit_cost"]) * suggested),
            "supplier_id": r["supplier_id"],
            "lead_time_days": lead,
            "expected_arrival": (date(2026, 10, 31) + timedelta(days=lead)).isoformat(),
        }
    return expected


def test_reorder_candidates(rows) -> None:
    expected = _expected_candidates(rows)
    result = get_reorder_candidates()
    assert result["candidate_count"] == len(expected) == 12
    got = {c["sku"]: c for c in result["candidates"]}
    assert set(got) == set(expected)
    for sku, exp in expected.items():
        for key, val in exp.items():
            assert got[sku][key] == val, (sku, key)
        assert got[sku]["available"] + got[sku]["suggested_qty"] >= got[sku]["reorder_point"]
    total = sum(D(str(e["estimated_cost"])) for e in expected.values())
    assert result["total_estimated_cost"] == f(total)
    assert sum(D(str(s["estimated_cost"])) for s in result["by_supplier"]) == total
    # the over-allocated SKU is the most urgent; the SKU sitting exactly on its reorder point is not listed
    assert result["candidates"][0]["available"] < 0
    assert "MOT-1004" not in got


def test_reorder_candidates_by_warehouse(rows) -> None:
    expected = _expected_candidates(rows, "WH-CHI")
    result = get_reorder_candidates("WH-CHI")
    assert {c["sku"] for c in result["candidates"]} == set(expected)
    assert all(c["warehouse"] == "WH-CHI" for c in result["candidates"])


def test_supplier_lead_times(rows) -> None:
    suppliers = rows("suppliers.csv")
    result = get_supplier_lead_times()
    assert result["supplier_count"] == len(suppliers)
    assert result["average_lead_time_days"] == round(sum(int(s["lead_time_days"]) for s in suppliers) / 10, 1)
    assert result["suppliers"][0]["supplier_id"] == "SUP-004"
    assert result["suppliers_below_90pct_on_time"] == sorted(
        (s["supplier_id"] for s in suppliers if float(s["on_time_rate"]) < 0.9),
        key=lambda sid: -int(next(s for s in suppliers if s["supplier_id"] == sid)["lead_time_days"]),
    )
    reorder = rows("reorder_points.csv")
    for row in result["suppliers"]:
        assert row["skus_supplied"] == sum(1 for r in reorder if r["supplier_id"] == row["supplier_id"])
    assert sum(r["skus_below_reorder_point"] for r in result["suppliers"]) == 12


def test_supplier_lead_times_single_and_open_ap(rows) -> None:
    open_ap = sum(
        (
            D(i["amount"])
            for i in rows("invoices.csv")
            if i["counterparty"] == "Tri-County Industrial Supply" and i["status"] != "paid"
        ),
        D(0),
    )
    for key in ("SUP-010", "sup-010", "Tri-County Industrial Supply"):
        result = get_supplier_lead_times(key)
        assert result["supplier_count"] == 1
        row = result["suppliers"][0]
        assert (row["supplier_id"], row["lead_time_days"], row["on_time_rate"]) == ("SUP-010", 3, 0.96)
        assert row["open_ap_amount"] == f(open_ap)


def test_unknown_supplier_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as excinfo:
        get_supplier_lead_times("SUP-099")
    message = str(excinfo.value)
    assert "unknown supplier 'SUP-099'" in message
    assert (
        "SUP-001 (Keystone Steel Supply)" in message and "SUP-010 (Tri-County Industrial Supply)" in message
    )
