"""A load run's report: the figures, as JSON for scripts and as a short table for people."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LoadReport", "Progress"]

Latency = dict[str, float | int | None]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands, for the progress line."""

    calls: int
    started: int
    completed: int
    live: int
    seconds: float
    answered: int


@dataclass(slots=True, kw_only=True)
class LoadReport:
    """Everything one `ivr load` run measured; ``ok`` when every call ran and the ledger is exact."""

    mode: str
    seed: int
    broker: str
    calls: int
    concurrency: int
    rate: float
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    peak_live: int = 0
    calls_seconds: float = 0.0  # first call started to last call ended
    total_seconds: float = 0.0  # first call started to the ledger's last answer
    started_at: float = 0.0  # when the first call started (Unix time): to line up `--workers` runs
    events: int = 0
    event_bytes: int = 0
    tickets: int = 0
    deductible: int = 0
    deducted: int = 0
    rejected: int = 0
    key_to_prompt_ms: Latency = field(default_factory=dict)
    ticket_to_answer_ms: Latency = field(default_factory=dict)
    timer_lateness_ms: Latency | None = None
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)  # each worker's report (`--workers`)
    plan_digest: str = ""  # of every call's kind, number and steps: the same seed gives the same
    outcome_digest: str = ""  # of every call's outcome, reason and event count

    @property
    def calls_per_s(self) -> float:
        """Calls completed per second, end to end (until the ledger had answered every ticket)."""
        return self.completed / self.total_seconds if self.total_seconds else 0.0

    @property
    def events_per_s(self) -> float:
        """IVR events emitted (and published) per second, end to end."""
        return self.events / self.total_seconds if self.total_seconds else 0.0

    @property
    def exactly_once(self) -> bool | None:
        """Every deductible ticket has exactly one ledger entry, and the ledger verifies.

        ``None`` when the ledger's file was not at hand to verify (a ledger already running,
        without ``--ledger-db``).
        """
        if not self.verify:
            return None
        answered = self.deductible == self.deducted + self.rejected
        if not self.verify.get("own_ledger", True):  # a ledger already running may hold other runs' entries
            return bool(self.verify.get("ok")) and answered
        applied = self.verify.get("deductions", -1) + self.verify.get("rejections", -1)
        return bool(self.verify.get("ok")) and answered and applied == self.deductible

    @property
    def ok(self) -> bool:
        """Every call completed without error, the ledger answered, and it deducted exactly once if checked."""
        answered = self.deducted + self.rejected == self.deductible
        return self.completed == self.calls and not self.failed and answered and self.exactly_once is not False

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data, with the derived rates."""
        out = asdict(self)
        out["calls_per_s"] = round(self.calls_per_s, 1)
        out["events_per_s"] = round(self.events_per_s, 1)
        out["exactly_once"] = self.exactly_once
        out["ok"] = self.ok
        return out

    def text(self) -> str:
        """A few lines for a terminal."""

        def lat(name: str, figures: Latency | None) -> str:
            if not figures or not figures.get("samples"):
                return f"{name:<28} (no samples)"
            shown = "  ".join(f"{k} {v:.1f} ms" for k, v in figures.items() if k != "samples" and v is not None)
            return f"{name:<28} {shown}  ({figures['samples']:,} samples)"

        verdict = (str(self.verify.get("output") or "").splitlines() or ["not run"])[-1]
        rss = "  ".join(f"{k} {'n/a' if v is None else f'{v:.0f} MB'}" for k, v in self.rss_mb.items())
        lines = [
            f"ivr load ({self.mode}, seed {self.seed}, broker {self.broker})",
            (
                f"{'calls':<28} {self.completed:,} of {self.calls:,} completed, {self.failed} failed, "
                f"peak {self.peak_live:,} live"
            ),
            f"{'outcomes':<28} " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.outcomes.items())),
            f"{'time':<28} calls {self.calls_seconds:.2f} s, until the ledger answered all {self.total_seconds:.2f} s",
            (
                f"{'throughput':<28} {self.calls_per_s:,.0f} calls/s, {self.events_per_s:,.0f} events/s "
                f"({self.events:,} events, mean {self.event_bytes} B)"
            ),
            (
                f"{'ledger':<28} {self.deductible:,} deductible tickets: {self.deducted:,} deducted, "
                f"{self.rejected:,} rejected"
            ),
            lat("keypress -> next prompt", self.key_to_prompt_ms),
            lat("ticket.created -> answer", self.ticket_to_answer_ms),
        ]
        if self.timer_lateness_ms is not None:
            lines.append(lat("no-input timer lateness", self.timer_lateness_ms))
        lines += [
            f"{'peak RSS':<28} {rss}",
            f"{'ivr ledger verify':<28} {verdict}",
            f"{'exactly once':<28} {_yes_no(self.exactly_once)}",
        ]
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)


def _yes_no(answer: bool | None) -> str:
    if answer is None:
        return "not checked (no ledger file: give --ledger-db)"
    return "yes" if answer else "NO"
