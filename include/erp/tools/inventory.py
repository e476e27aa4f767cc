"""Inventory tools: stock levels and valuation, reorder candidates and supplier lead times."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ..store import AS_OF, ErpData, StockItem, Supplier, get_data
from ._common import as_of, limit, money, resolve


def _resolve_warehouse(data: ErpData, warehouse: str) -> str:
    names = sorted({item.warehouse for item in data.stock})
    return resolve(warehouse, {name: name for name in names}, "warehouse", names)


def _resolve_category(data: ErpData, category: str) -> str:
    names = sorted({item.category for item in data.stock})
    return resolve(category, {name: name for name in names}, "category", names)


def _resolve_supplier(data: ErpData, supplier_id: str) -> Supplier:
    by_id = {s.supplier_id: s for s in data.suppliers}
    options = {s.supplier_id: s.supplier_id for s in data.suppliers} | {
        s.name: s.supplier_id for s in data.suppliers
    }
    valid = [f"{s.supplier_id} ({s.name})" for s in data.suppliers]
    return by_id[resolve(supplier_id, options, "supplier", valid)]


def _summary(items: list[StockItem], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[StockItem]] = {}
    for item in items:
        groups.setdefault(getattr(item, key), []).append(item)
    rows = [
        {
            key: name,
            "skus": len(group),
            "on_hand": sum(i.on_hand for i in group),
            "value": money(sum((i.value for i in group), Decimal(0))),
        }
        for name, group in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row["value"], row[key]))


def get_stock_levels(warehouse: str | None = None, category: str | None = None) -> dict[str, Any]:
    """Get on-hand, allocated and available stock and its value at unit cost, by warehouse and category.

    Totals and the warehouse/category breakdowns cover every matching SKU; at most 20 SKUs are
    listed, highest stock value first. Available = on hand - allocated (negative when over-allocated).

    Args:
        warehouse: Warehouse code, one of "WH-DAL", "WH-CHI" or "WH-RNO". Leave empty for all.
        category: Product category, for example "Bearings" or "Hydraulics". Leave empty for all.
    """
    data = get_data()
    selected_wh = _resolve_warehouse(data, warehouse) if warehouse else None
    selected_cat = _resolve_category(data, category) if category else None
    items = [
        item
        for item in data.stock
        if (selected_wh is None or item.warehouse == selected_wh)
        and (selected_cat is None or item.category == selected_cat)
    ]
    items.sort(key=lambda item: (-item.value, item.sku))
    shown, truncated = limit(items)
    return {
        "as_of": as_of(),
        "warehouse": selected_wh or "all",
        "category": selected_cat or "all",
        "currency": "USD",
        "sku_count": len(items),
        "totals": {
            "on_hand": sum(i.on_hand for i in items),
            "allocated": sum(i.allocated for i in items),
            "available": sum(i.available for i in items),
            "value": money(sum((i.value for i in items), Decimal(0))),
        },
        "over_allocated_skus": [i.sku for i in items if i.available < 0],
        "by_warehouse": _summary(items, "warehouse"),
        "by_category": _summary(items, "category"),
        "items": [
            {
                "sku": i.sku,
                "description": i.description,
                "warehouse": i.warehouse,
                "category": i.category,
                "on_hand": i.on_hand,
                "allocated": i.allocated,
                "available": i.available,
                "unit_cost": money(i.unit_cost),
                "value": money(i.value),
            }
            for i in shown
        ],
        "truncated": truncated,
    }


def suggested_quantity(available: int, reorder_point: int, reorder_qty: int) -> int:
    """The smallest multiple of reorder_qty that lifts available stock to at least the reorder point."""
    if reorder_qty <= 0:
        return max(0, reorder_point - available)
    return max(1, math.ceil((reorder_point - available) / reorder_qty)) * reorder_qty


def get_reorder_candidates(warehouse: str | None = None) -> dict[str, Any]:
    """List SKUs whose available stock (on hand - allocated) is below their reorder point.

    Each candidate has a suggested order quantity (the smallest multiple of its reorder quantity
    that brings available stock back to the reorder point), its estimated cost, the supplier and the
    supplier's lead time with the expected arrival date if ordered at period end. Most urgent first
    (lowest available / reorder point); totals cover every candidate.

    Args:
        warehouse: Warehouse code, one of "WH-DAL", "WH-CHI" or "WH-RNO". Leave empty for all.
    """
    data = get_data()
    selected = _resolve_warehouse(data, warehouse) if warehouse else None
    points = {r.sku: r for r in data.reorder_points}
    suppliers = {s.supplier_id: s for s in data.suppliers}

    rows = []
    for item in data.stock:
        point = points.get(item.sku)
        if point is None or (selected is not None and item.warehouse != selected):
            continue
        if item.available >= point.reorder_point:
            continue
        supplier = suppliers.get(point.supplier_id)
        quantity = suggested_quantity(item.available, point.reorder_point, point.reorder_qty)
        lead_time = supplier.lead_time_days if supplier else None
        rows.append(
            {
                "sku": item.sku,
                "description": item.description,
                "warehouse": item.warehouse,
                "category": item.category,
                "on_hand": item.on_hand,
                "allocated": item.allocated,
                "available": item.available,
                "reorder_point": point.reorder_point,
                "reorder_qty": point.reorder_qty,
                "suggested_qty": quantity,
                "unit_cost": money(item.unit_cost),
                "estimated_cost": money(item.unit_cost * quantity),
                "supplier_id": point.supplier_id,
                "supplier_name": supplier.name if supplier else None,
                "lead_time_days": lead_time,
                "expected_arrival": (AS_OF + timedelta(days=lead_time)).isoformat()
                if lead_time is not None
                else None,
                "_urgency": item.available / point.reorder_point if point.reorder_point else 0.0,
            }
        )
    rows.sort(key=lambda row: (row["_urgency"], -(row["lead_time_days"] or 0), row["sku"]))
    for row in rows:
        del row["_urgency"]

    by_supplier: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_supplier.setdefault(
            row["supplier_id"],
            {
                "supplier_id": row["supplier_id"],
                "name": row["supplier_name"],
                "skus": 0,
                "estimated_cost": Decimal(0),
                "lead_time_days": row["lead_time_days"],
            },
        )
        entry["skus"] += 1
        entry["estimated_cost"] += Decimal(str(row["estimated_cost"]))
    supplier_rows = sorted(by_supplier.values(), key=lambda e: (-e["estimated_cost"], e["supplier_id"]))
    for entry in supplier_rows:
        entry["estimated_cost"] = money(entry["estimated_cost"])

    shown, truncated = limit(rows)
    return {
        "as_of": as_of(),
        "warehouse": selected or "all",
        "currency": "USD",
        "candidate_count": len(rows),
        "total_estimated_cost": money(sum((Decimal(str(r["estimated_cost"])) for r in rows), Decimal(0))),
        "max_lead_time_days": max((r["lead_time_days"] or 0 for r in rows), default=0),
        "by_supplier": supplier_rows[:20],
        "candidates": shown,
        "truncated": truncated,
    }


def get_supplier_lead_times(supplier_id: str | None = None) -> dict[str, Any]:
    """Get suppliers' lead times and on-time delivery rates, with the SKUs each supplies.

    For each supplier: country, lead time in days, on-time rate (0-1), number of SKUs supplied,
    how many of them are below their reorder point, and the supplier's unpaid AP invoice amount.
    Slowest supplier first.

    Args:
        supplier_id: Supplier id (for example "SUP-004") or supplier name. Leave empty for all suppliers.
    """
    data = get_data()
    selected = _resolve_supplier(data, supplier_id) if supplier_id else None
    stock = {item.sku: item for item in data.stock}
    suppliers = [s for s in data.suppliers if selected is None or s.supplier_id == selected.supplier_id]

    rows = []
    for supplier in suppliers:
        points = [p for p in data.reorder_points if p.supplier_id == supplier.supplier_id]
        below = [p for p in points if p.sku in stock and stock[p.sku].available < p.reorder_point]
        open_ap = sum(
            (
                inv.amount
                for inv in data.invoices
                if inv.type == "AP"
                and inv.counterparty == supplier.name
                and inv.status in ("open", "overdue")
            ),
            Decimal(0),
        )
        rows.append(
            {
                "supplier_id": supplier.supplier_id,
                "name": supplier.name,
                "country": supplier.country,
                "lead_time_days": supplier.lead_time_days,
                "on_time_rate": supplier.on_time_rate,
                "skus_supplied": len(points),
                "skus_below_reorder_point": len(below),
                "open_ap_amount": money(open_ap),
            }
        )
    rows.sort(key=lambda row: (-row["lead_time_days"], row["supplier_id"]))
    count = len(rows)
    return {
        "supplier_count": count,
        "average_lead_time_days": round(sum(r["lead_time_days"] for r in rows) / count, 1) if count else None,
        "suppliers_below_90pct_on_time": [r["supplier_id"] for r in rows if r["on_time_rate"] < 0.9],
        "suppliers": rows[:20],
    }
