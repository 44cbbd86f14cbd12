"""Every event the shipped scenarios emit crosses a real broker schema-valid, once, in order per call."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest

from ivr.bus.schemas import validate
from ivr.replay.runner import replay
from ivr.replay.scenario import discover
from ivr.settings import Settings
from tests.integration.conftest import WAIT, collector

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.broker


async def test_every_scenario_event_is_schema_valid_and_arrives_once(private_broker):
    """Replaying scenarios/ over a broker, a subscriber gets every event of every call, each valid."""
    config = private_broker.config
    async with collector(config, "ivr/v1/#", client_id="contract-watcher") as seen:
        results, unreadable = await replay(discover([REPO / "scenarios"]), settings=Settings(broker=config))
        assert not unreadable
        assert all(r.passed for r in results), [r.scenario.path.name for r in results if not r.passed]
        emitted = {e.id: e for r in results for c in r.calls for e in c.record.events}
        async with asyncio.timeout(WAIT):
            while not emitted.keys() <= seen.keys():
                await asyncio.sleep(0.05)
    ivr_events = {
        k: v
        for k, v in seen.items()
        if v[0]["type"] not in {"ivr.ledger.incident_deducted", "ivr.ledger.deduction_rejected"}
    }
    assert ivr_events.keys() == emitted.keys()
    assert all(len(copies) == 1 for copies in seen.values()), "an event arrived twice on a healthy broker"
    for copies in seen.values():
        validate(copies[0])
    by_call = defaultdict(list)
    for event_id in emitted:
        event = seen[event_id][0]
        by_call[event["subject"]].append(event["sequence"])
    for call, sequences in by_call.items():
        assert sorted(sequences) == list(range(1, len(sequences) + 1)), f"gap in {call}: {sorted(sequences)}"
    ledger_events = [v[0] for v in seen.values() if v[0]["type"].startswith("ivr.ledger.")]
    assert ledger_events, "the ledger announced nothing"
    deductions = sum(1 for e in ledger_events if e["type"] == "ivr.ledger.incident_deducted")
    assert deductions == sum(n for r in results for c in r.calls for n in c.deducted.values())
