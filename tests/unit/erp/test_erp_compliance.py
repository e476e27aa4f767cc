"""Compliance tools against values computed directly from the CSV files."""

from __future__ import annotations

import calendar
from datetime import date

import pytest

from include.erp.tools.compliance import get_audit_findings, get_overdue_policy_reviews, lookup_policy

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def next_review(policy: dict[str, str]) -> date:
    last = date.fromisoformat(policy["last_reviewed"])
    months = last.month - 1 + int(policy["review_cycle_months"])
    year, month = last.year + months // 12, months % 12 + 1
    return date(year, month, min(last.day, calendar.monthrange(year, month)[1]))


def test_lookup_policy_by_id_title_and_summary() -> None:
    by_id = lookup_policy("pol-fin-003")
    assert [p["policy_id"] for p in by_id["policies"]] == ["POL-FIN-003"]
    by_title = lookup_policy("Segregation of Duties")
    assert [p["policy_id"] for p in by_title["policies"]] == ["POL-CMP-001"]
    by_summary = lookup_policy("OVERTIME")
    assert [p["policy_id"] for p in by_summary["policies"]] == ["POL-HR-003"]
    assert by_summary["policies"][0]["next_review_due"] == "2026-11-03"
    assert by_summary["policies"][0]["review_overdue"] is False


def test_lookup_policy_all_words_must_match(rows) -> None:
    expected = [
        p["policy_id"]
        for p in rows("policies.csv")
        if all(w in f"{p['policy_id']} {p['title']} {p['summary']}".lower() for w in ("approval", "finance"))
    ]
    result = lookup_policy("approval finance")
    assert [p["policy_id"] for p in result["policies"]] == expected
    assert result["match_count"] == len(expected) >= 1


def test_lookup_policy_without_match_lists_policies(rows) -> None:
    result = lookup_policy("cryptocurrency")
    assert result["match_count"] == 0 and result["policies"] == []
    assert [p["policy_id"] for p in result["available_policies"]] == [
        p["policy_id"] for p in rows("policies.csv")
    ]
    with pytest.raises(ValueError, match="non-empty"):
        lookup_policy("   ")


def test_open_findings(rows) -> None:
    expected = [f for f in rows("audit_findings.csv") if f["status"] == "open"]
    result = get_audit_findings()
    assert result["status"] == "open" and result["severity"] == "all"
    assert result["count"] == len(expected) == 11
    assert result["by_severity"] == {
        s: sum(1 for f in expected if f["severity"] == s) for s in ("critical", "high", "medium", "low")
    }
    ordered = sorted(expected, key=lambda f: (SEVERITY_ORDER[f["severity"]], f["due"], f["finding_id"]))
    assert [f["finding_id"] for f in result["findings"]] == [f["finding_id"] for f in ordered]
    past_due = [f for f in expected if date.fromisoformat(f["due"]) < date(2026, 10, 31)]
    assert result["open_past_due"] == len(past_due) == 4
    access = next(f for f in result["findings"] if f["finding_id"] == "AF-2026-004")
    assert access["days_past_due"] == (date(2026, 10, 31) - date(2026, 7, 31)).days == 92


def test_findings_filters(rows) -> None:
    critical = get_audit_findings("CRITICAL", "all")
    assert [f["finding_id"] for f in critical["findings"]] == [
        f["finding_id"] for f in rows("audit_findings.csv") if f["severity"] == "critical"
    ]
    remediated = get_audit_findings(status="remediated")
    assert remediated["count"] == sum(1 for f in rows("audit_findings.csv") if f["status"] == "remediated")
    assert all(f["days_past_due"] == 0 for f in remediated["findings"])
    assert get_audit_findings(status="all")["count"] == 18


def test_findings_errors() -> None:
    with pytest.raises(
        ValueError, match="unknown severity 'severe'; valid severities: critical, high, medium, low"
    ):
        get_audit_findings("severe")
    with pytest.raises(ValueError, match="unknown status 'closed'; valid statuses: open, remediated, all"):
        get_audit_findings(status="closed")


def test_overdue_policy_reviews(rows) -> None:
    on = date(2026, 10, 31)
    expected = sorted(
        (p for p in rows("policies.csv") if next_review(p) < on),
        key=lambda p: (next_review(p), p["policy_id"]),
    )
    result = get_overdue_policy_reviews()
    assert result["as_of"] == "2026-10-31"
    assert result["overdue_count"] == len(expected) == 5
    assert [p["policy_id"] for p in result["overdue"]] == [p["policy_id"] for p in expected]
    for row, p in zip(result["overdue"], expected):
        assert row["days_overdue"] == (on - next_review(p)).days
    assert [p["policy_id"] for p in result["due_within_60_days"]] == ["POL-HR-003", "POL-FIN-004"]


def test_overdue_policy_reviews_other_dates(rows) -> None:
    policies = rows("policies.csv")
    for on in (date(2026, 1, 1), date(2027, 12, 31)):
        result = get_overdue_policy_reviews(on.isoformat())
        assert result["overdue_count"] == sum(1 for p in policies if next_review(p) < on)
    assert get_overdue_policy_reviews("2026-01-01")["overdue_count"] == 0
    assert get_overdue_policy_reviews("2027-12-31")["overdue_count"] == 14
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        get_overdue_policy_reviews("31/10/2026")
