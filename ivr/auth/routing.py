"""Where an authorized call goes (R1, R9): a queue, and a priority that rises with severity and plan."""

from __future__ import annotations

from ivr.auth.model import CallerKind, Plan, Purpose, Severity

__all__ = ["SALES_QUEUE", "priority", "queue_for"]

SALES_QUEUE = "sales"

_SEVERITY_WEIGHT = {Severity.A: 4, Severity.B: 3, Severity.C: 2, Severity.D: 1}


def queue_for(kind: CallerKind, purpose: Purpose) -> str:
    """The agents' queue for a support call: one per caller kind and purpose."""
    return f"{kind}-{purpose}"


def priority(severity: Severity, plan: Plan) -> int:
    """Routing priority, 1 (lowest) to 5: severity A-D gives 4-1, and the premier plan adds 1 (R9)."""
    return _SEVERITY_WEIGHT[severity] + (1 if plan is Plan.PREMIER else 0)
