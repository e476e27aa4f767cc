"""Compliance tools: policy lookup, audit findings and overdue policy reviews."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from ..store import AS_OF, Policy, get_data
from ._common import as_of, limit

SEVERITIES = ("critical", "high", "medium", "low")
FINDING_STATUSES = ("open", "remediated", "all")
UPCOMING_REVIEW_DAYS = 60


def _policy_row(policy: Policy, on: date) -> dict[str, Any]:
    due = policy.next_review_due
    return {
        "policy_id": policy.policy_id,
        "title": policy.title,
        "owner": policy.owner,
        "module": policy.module,
        "last_reviewed": policy.last_reviewed.isoformat(),
        "review_cycle_months": policy.review_cycle_months,
        "next_review_due": due.isoformat(),
        "review_overdue": due < on,
        "summary": policy.summary,
    }


def lookup_policy(query: str) -> dict[str, Any]:
    """Search company policies by id, title or summary text (case-insensitive).

    A policy matches when every word of the query occurs in its id, title or summary. Returns the
    matching policies with owner, review dates and summary; when nothing matches, lists all policy
    ids and titles instead.

    Args:
        query: Policy id (for example "POL-FIN-003") or words to look for (for example "overtime").
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty policy id or search text")
    data = get_data()
    terms = query.casefold().split()
    matches = [
        policy
        for policy in data.policies
        if all(term in f"{policy.policy_id} {policy.title} {policy.summary}".casefold() for term in terms)
    ]
    shown, truncated = limit(matches)
    result: dict[str, Any] = {
        "query": query,
        "as_of": as_of(),
        "match_count": len(matches),
        "policies": [_policy_row(p, AS_OF) for p in shown],
        "truncated": truncated,
    }
    if not matches:
        result["available_policies"] = [{"policy_id": p.policy_id, "title": p.title} for p in data.policies][
            :20
        ]
    return result


def get_audit_findings(severity: str | None = None, status: str = "open") -> dict[str, Any]:
    """List internal audit findings, most severe first, with days past their remediation due date.

    Args:
        severity: Only this severity: "low", "medium", "high" or "critical". Leave empty for all.
        status: "open" (default), "remediated" or "all".
    """
    if severity is not None:
        if not isinstance(severity, str) or severity.strip().lower() not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}; valid severities: {', '.join(SEVERITIES)}")
        severity = severity.strip().lower()
    if not isinstance(status, str) or status.strip().lower() not in FINDING_STATUSES:
        raise ValueError(f"unknown status {status!r}; valid statuses: {', '.join(FINDING_STATUSES)}")
    status = status.strip().lower()

    data = get_data()
    findings = [
        f
        for f in data.audit_findings
        if (severity is None or f.severity == severity) and (status == "all" or f.status == status)
    ]
    rank = {name: index for index, name in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (rank.get(f.severity, len(rank)), f.due, f.finding_id))

    def days_past_due(due: date, finding_status: str) -> int:
        return max(0, (AS_OF - due).days) if finding_status == "open" else 0

    counts = Counter(f.severity for f in findings)
    shown, truncated = limit(findings)
    return {
        "as_of": as_of(),
        "severity": severity or "all",
        "status": status,
        "count": len(findings),
        "by_severity": {name: counts[name] for name in SEVERITIES},
        "open_past_due": sum(1 for f in findings if days_past_due(f.due, f.status) > 0),
        "findings": [
            {
                "finding_id": f.finding_id,
                "area": f.area,
                "severity": f.severity,
                "status": f.status,
                "opened": f.opened.isoformat(),
                "due": f.due.isoformat(),
                "days_past_due": days_past_due(f.due, f.status),
                "owner": f.owner,
                "description": f.description,
            }
            for f in shown
        ],
        "truncated": truncated,
    }


def get_overdue_policy_reviews(as_of: str = "2026-10-31") -> dict[str, Any]:
    """List policies whose periodic review is overdue on a date, and those due within the next 60 days.

    A review is due review_cycle_months after the policy was last reviewed; it is overdue when that
    date is before as_of.

    Args:
        as_of: Date to check against, in YYYY-MM-DD format. Defaults to the period end, "2026-10-31".
    """
    try:
        on = date.fromisoformat(as_of.strip()) if isinstance(as_of, str) else None
    except ValueError:
        on = None
    if on is None:
        raise ValueError(f"as_of must be a date in YYYY-MM-DD format, e.g. '2026-10-31'; got {as_of!r}")

    data = get_data()
    overdue = sorted(
        (p for p in data.policies if p.next_review_due < on),
        key=lambda p: (p.next_review_due, p.policy_id),
    )
    upcoming = sorted(
        (p for p in data.policies if 0 <= (p.next_review_due - on).days <= UPCOMING_REVIEW_DAYS),
        key=lambda p: (p.next_review_due, p.policy_id),
    )
    return {
        "as_of": on.isoformat(),
        "policy_count": len(data.policies),
        "overdue_count": len(overdue),
        "overdue": [
            {
                "policy_id": p.policy_id,
                "title": p.title,
                "owner": p.owner,
                "module": p.module,
                "last_reviewed": p.last_reviewed.isoformat(),
                "next_review_due": p.next_review_due.isoformat(),
                "days_overdue": (on - p.next_review_due).days,
            }
            for p in overdue[:20]
        ],
        "due_within_60_days": [
            {
                "policy_id": p.policy_id,
                "title": p.title,
                "owner": p.owner,
                "next_review_due": p.next_review_due.isoformat(),
            }
            for p in upcoming[:20]
        ],
    }
