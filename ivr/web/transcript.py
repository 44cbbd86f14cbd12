"""A walked call as a transcript a trainer can print or mail: one self-contained HTML page.

A saved scenario is for the replay tool; a trainer handing a walk to a class needs it readable:
the keys pressed, each prompt as the caller heard it, each decision with its rule's sentence and
the data that decided it, and the events, in the order they happened and at the call's own
(simulated) time. Everything that reaches the page goes through :func:`ivr.secrets.scrub`, so a
support code or license key typed on the call appears masked to its last 2 digits.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ivr.callers import HangUp, Key, NoInput
from ivr.engine import NO_INPUT_TIMEOUT
from ivr.secrets import scrub

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from ivr.events import CloudEvent
    from ivr.ledger.storage import Entry as LedgerEntry
    from ivr.web.panel import Entry
    from ivr.web.recording import Taken

__all__ = ["Row", "Transcript"]

#: An event's fields worth a line of their own (the events panel shows the same ones).
EVENT_FIELDS: Final = (
    "outcome",
    "reason",
    "rule",
    "method",
    "queue",
    "priority",
    "ticket",
    "contract",
    "balance_after",
)
_STYLE: Final = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1c2b33; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } .meta { color: #5f6f78; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1rem; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid #d5dde2; }
th { font-size: .8rem; color: #5f6f78; font-weight: 600; }
td.time, td.kind, code { font-family: ui-monospace, monospace; font-size: .85rem; white-space: nowrap; }
tr.decision td.kind { color: #1565c0; } tr.granted td.kind { color: #2e7d32; } tr.denied td.kind { color: #c62828; }
tr.ledger td.kind { color: #e65100; } .sentence { color: #5f6f78; display: block; }
table.summary { width: auto; } table.summary th { padding-right: 1.5rem; }
.foot { color: #5f6f78; font-size: .8rem; }
@media print { body { margin: 0; max-width: none; } tr { break-inside: avoid; } }
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the transcript: when (the call's clock), what kind, and its text (scrubbed when written)."""

    at: str  # HH:MM:SS on the call's clock, or "" before the call's clock started
    kind: str  # prompt, keys, decision, event, ledger
    text: str  # plain text; escaped when written
    note: str = ""  # a second line: a rule's sentence, an event's fields
    css: str = ""


@dataclass(slots=True)
class Transcript:
    """The rows of one call, added as it goes, written out as HTML at its end."""

    rows: list[Row] = field(default_factory=list)

    def prompt(self, at: datetime | None, name: str, text: str) -> None:
        """A prompt the caller heard."""
        self.rows.append(Row(_clock(at), "prompt", text, name))

    def taken(self, at: datetime | None, taken: Taken) -> None:
        """An input the IVR took: keys typed at one prompt are joined on one line."""
        got = taken.input
        if isinstance(got, Key):
            last = self.rows[-1] if self.rows else None
            if last is not None and last.kind == "keys" and last.note == taken.state and not last.text.endswith("#"):
                self.rows[-1] = Row(last.at, "keys", last.text + got.key, taken.state)
            else:
                self.rows.append(Row(_clock(at), "keys", got.key, taken.state))
        elif isinstance(got, NoInput):
            self.rows.append(Row(_clock(at), "keys", f"(silence, {NO_INPUT_TIMEOUT:g} s)", taken.state))
        elif isinstance(got, HangUp):
            self.rows.append(Row(_clock(at), "keys", "(hung up)", taken.state))

    def decision(self, at: datetime | None, entry: Entry) -> None:
        """A branch with its rule: granted, denied or a branch of the flow."""
        verdict = "branch" if entry.granted is None else "granted" if entry.granted else "denied"
        reason = f" ({entry.reason})" if entry.reason else ""
        text = f"{entry.rule} {verdict}{reason} at {entry.state}: {entry.detail}"
        self.rows.append(Row(_clock(at), "decision", text, entry.sentence, verdict))

    def event(self, event: CloudEvent) -> None:
        """One of the call's events, at the time it carries."""
        fields = " ".join(f"{k}={event.data[k]}" for k in EVENT_FIELDS if event.data.get(k) is not None)
        self.rows.append(Row(event.time[11:19], "event", f"#{event.sequence} {event.type}", fields))

    def ledger(self, at: datetime | None, entry: LedgerEntry) -> None:
        """What the ledger did with the call's ticket (R7)."""
        left = "unlimited" if entry.balance_after is None else f"{entry.balance_after} left"
        reason = f" ({entry.reason})" if entry.reason else ""
        text = f"{entry.outcome}{reason}: contract {entry.contract_id}, ticket {entry.ticket_id}, {left}"
        self.rows.append(Row(_clock(at), "ledger", text, "the ledger's answer to the ticket (R7)"))

    def html(self, *, title: str, meta: str, summary: Mapping[str, object]) -> str:
        """The whole page: a heading, the call's summary, and the rows in order."""
        esc = html.escape
        facts = "".join(
            f"<tr><th>{esc(k)}</th><td><code>{esc(scrub(str(v)))}</code></td></tr>"
            for k, v in summary.items()
            if v not in (None, "", {})
        )
        rows = "".join(
            f'<tr class="{esc(r.kind)} {esc(r.css)}"><td class="time">{esc(r.at)}</td>'
            f'<td class="kind">{esc(r.kind)}</td>'
            f"<td>{esc(scrub(r.text))}{f'<span class=sentence>{esc(scrub(r.note))}</span>' if r.note else ''}</td></tr>"
            for r in self.rows
        )
        return (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n<p class=meta>{esc(scrub(meta))}</p>\n"
            f'<table class="summary">{facts}</table>\n'
            "<table><thead><tr><th>time</th><th>what</th><th>as heard, pressed and decided</th></tr></thead>\n"
            f"<tbody>{rows}</tbody></table>\n"
            "<p class=foot>Times are the call's own clock. Support codes and license keys are masked to their "
            "last 2 digits. Saved from the ivr trainer console.</p>\n</body>\n</html>\n"
        )


def _clock(at: datetime | None) -> str:
    return "" if at is None else f"{at:%H:%M:%S}"
