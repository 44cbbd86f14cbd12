"""R8, R9: where a call is routed: queue, priority, and the English-only notice of premier outside office hours."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.auth.model import CallerKind, Plan, Purpose, Severity
from ivr.auth.routing import SALES_QUEUE, english_only, priority, queue_for

#: Most severe first.
BY_SEVERITY = [Severity.A, Severity.B, Severity.C, Severity.D]


@pytest.mark.parametrize("plan", list(Plan))
def test_priority_rises_with_severity(plan):
    """For any plan, a more severe ticket gets a strictly higher priority."""
    values = [priority(s, plan) for s in BY_SEVERITY]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("plan", [Plan.STANDARD, Plan.PER_INCIDENT, Plan.COMPLIMENTARY])
def test_premier_adds_one(severity, plan):
    """The premier plan ranks one above every other plan at the same severity."""
    assert priority(severity, Plan.PREMIER) == priority(severity, plan) + 1


@pytest.mark.parametrize(
    ("severity", "plan", "expected"),
    [
        (Severity.A, Plan.PREMIER, 5),
        (Severity.A, Plan.STANDARD, 4),
        (Severity.B, Plan.STANDARD, 3),
        (Severity.C, Plan.STANDARD, 2),
        (Severity.D, Plan.STANDARD, 1),
        (Severity.D, Plan.PREMIER, 2),
    ],
)
def test_priority_values(severity, plan, expected):
    """Priorities run 1 (D, not premier) to 5 (A, premier)."""
    assert priority(severity, plan) == expected


def test_priorities_stay_within_one_to_five():
    """Every combination lands in 1..5."""
    assert {priority(s, p) for s, p in itertools.product(Severity, Plan)} == {1, 2, 3, 4, 5}


@pytest.mark.parametrize(("kind", "purpose"), list(itertools.product(CallerKind, Purpose)))
def test_one_queue_per_kind_and_purpose(kind, purpose):
    """Support calls queue by caller kind and purpose, never on the sales queue."""
    assert queue_for(kind, purpose) == f"{kind.value}-{purpose.value}"
    assert queue_for(kind, purpose) != SALES_QUEUE


def test_queues_are_distinct():
    """The four support queues are four different queues."""
    assert len({queue_for(k, p) for k, p in itertools.product(CallerKind, Purpose)}) == 4


EST = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("plan", "routed_at", "told"),
    [
        pytest.param(Plan.PREMIER, datetime(2026, 11, 17, 19, 59, 59, tzinfo=EST), False, id="premier-19:59:59"),
        pytest.param(Plan.PREMIER, datetime(2026, 11, 17, 20, 0, tzinfo=EST), True, id="premier-20:00"),
        pytest.param(Plan.PREMIER, datetime(2026, 11, 17, 7, 59, 59, tzinfo=EST), True, id="premier-07:59:59"),
        pytest.param(Plan.PREMIER, datetime(2026, 11, 17, 8, 0, tzinfo=EST), False, id="premier-08:00"),
        pytest.param(Plan.PREMIER, datetime(2026, 11, 21, 12, 0, tzinfo=EST), True, id="premier-saturday"),
        pytest.param(Plan.PREMIER, datetime(2026, 11, 18, 0, 30, tzinfo=UTC), False, id="premier-utc-is-19:30-est"),
        pytest.param(Plan.STANDARD, datetime(2026, 11, 21, 12, 0, tzinfo=EST), False, id="standard-saturday"),
        pytest.param(Plan.PER_INCIDENT, datetime(2026, 11, 17, 22, 0, tzinfo=EST), False, id="per-incident-22:00"),
    ],
)
def test_english_only_is_premier_outside_weekday_office_hours(plan, routed_at, told):
    """R8: only premier support, routed outside Monday-Friday 08:00-20:00 US Eastern, is in English only."""
    assert english_only(plan, routed_at) is told
