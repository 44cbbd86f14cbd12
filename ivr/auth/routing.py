"""Where an authorized call goes (R1, R8, R9): a queue, a priority, and whether English only is said.

The priority rises with severity and with the premier plan; premier phone support outside weekday
office hours is in English only, and the caller is told so before being put through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ivr.auth.model import US_EASTERN, CallerKind, Plan, Purpose, Severity, SupportHours

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["OFFICE_HOURS", "SALES_QUEUE", "english_only", "priority", "queue_for"]

SALES_QUEUE = "sales"
#: Weekday office hours, US Eastern: outside them premier phone support is in English only (R8).
OFFICE_HOURS: Final = SupportHours(tz=US_EASTERN)

_SEVERITY_WEIGHT = {Severity.A: 4, Severity.B: 3, Severity.C: 2, Severity.D: 1}


def queue_for(kind: CallerKind, purpose: Purpose) -> str:
    """The agents' queue for a support call: one per caller kind and purpose."""
    return f"{kind}-{purpose}"


def priority(severity: Severity, plan: Plan) -> int:
    """Routing priority, 1 (lowest) to 5: severity A-D gives 4-1, and the premier plan adds 1 (R9)."""
    return _SEVERITY_WEIGHT[severity] + (1 if plan is Plan.PREMIER else 0)


def english_only(plan: Plan, routed_at: datetime) -> bool:
    """R8: premier phone support outside weekday office hours is in English only.

    Judged at the moment the call is routed, when the caller reaches an agent, not when it was
    authorized: a call authorized at 19:59:58 and routed at 20:00:02 is told.
    """
    return plan is Plan.PREMIER and not OFFICE_HOURS.is_open(routed_at)
