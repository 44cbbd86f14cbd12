"""The directory's writes on the loop's thread: one transaction per turn, all-or-nothing, checkpoints elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime

import pytest
import structlog

from ivr.auth.model import Purpose, Ticket, TicketStatus
from ivr.directory.sqlite import CHECKPOINT_EVERY, SqliteDirectory
from ivr.events import CloudEvent, EventType


def event(call: str, sequence: int = 1) -> CloudEvent:
    """A ``call.started`` of ``call``."""
    return CloudEvent(
        type=EventType.CALL_STARTED.value,
        source="test",
        subject=call,
        time=datetime(2026, 11, 17, 15, tzinfo=UTC).isoformat(),
        sequence=sequence,
        data={"caller": "+15550000001", "started_at": "2026-11-17T15:00:00+00:00"},
    )


def outbox_ids(path) -> list[str]:
    """The outbox's event ids in ``seq`` order, read by a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:  # sqlite3's own "with" commits, it does not close
        return [row[0] for row in conn.execute("SELECT event_id FROM outbox ORDER BY seq")]


@pytest.fixture
async def directory(tmp_path):
    """A directory in a real SQLite file, with every statement it runs counted by kind."""
    opened = await SqliteDirectory.open(tmp_path / "ivr.db")
    opened.statements = []
    opened._db.set_trace_callback(opened.statements.append)
    yield opened
    await opened.close()


async def test_writes_queued_in_one_turn_share_one_transaction_and_keep_their_order(directory, tmp_path):
    """Fifty calls writing at once: one COMMIT, one INSERT statement, the rows in the order they were written."""
    events = [event(f"call-{n:02d}") for n in range(50)]
    await asyncio.gather(*(directory.add_events([e]) for e in events))

    assert sum(s == "COMMIT" for s in directory.statements) == 1
    assert sum(s.startswith("INSERT INTO outbox") for s in directory.statements) == 50  # one executemany
    assert sum(s.startswith("BEGIN") for s in directory.statements) == 1
    assert outbox_ids(tmp_path / "ivr.db") == [e.id for e in events]


async def test_a_failing_write_fails_its_whole_group_and_the_next_group_goes_in(directory, tmp_path):
    """A ticket ID already taken breaks the group it is in: none of its rows are kept, every writer hears why."""
    at = datetime(2026, 11, 17, 15, tzinfo=UTC)
    ticket = Ticket(
        id="9000001", customer_id="C-1", contract_id="K-1", status=TicketStatus.OPEN, purpose=Purpose.TECHNICAL
    )
    first = event("call-a")
    await directory.create_ticket(ticket, call_id="call-a", at=at, events=[first])
    results = await asyncio.gather(
        directory.add_events([event("call-c")]),
        directory.create_ticket(ticket, call_id="call-b", at=at, events=[event("call-b")]),
        return_exceptions=True,
    )

    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert outbox_ids(tmp_path / "ivr.db") == [first.id]
    later = event("call-d")
    await directory.add_events([later])
    assert outbox_ids(tmp_path / "ivr.db") == [first.id, later.id]


async def test_a_lookup_sees_the_write_committed_before_it(directory):
    """A failure recorded is counted by the very next lookup of the caller's failures."""
    at = datetime(2026, 11, 17, 15, tzinfo=UTC)
    assert await directory.failures("+15550000009", at) == []
    await directory.record_failure("+15550000009", at, [event("call-f")])
    assert await directory.failures("+15550000009", at) == [at]


async def test_the_database_file_takes_the_log_only_at_a_checkpoint_every_so_many_commits(directory, tmp_path):
    """Automatic checkpoints are off; the directory's own passive one runs after CHECKPOINT_EVERY commits."""
    db = tmp_path / "ivr.db"
    size = db.stat().st_size
    for n in range(CHECKPOINT_EVERY - 1):
        await directory.add_events([event(f"call-{n:04d}")])
    assert db.stat().st_size == size, "a checkpoint ran before its time"
    assert directory._checkpoint is None

    await directory.add_events([event("call-last")])
    assert directory._checkpoint is not None
    await directory._checkpoint
    assert db.stat().st_size > size
    assert len(outbox_ids(db)) == CHECKPOINT_EVERY


async def test_a_failed_checkpoint_is_logged_and_the_writes_go_on(directory, tmp_path, monkeypatch):
    """The log keeps every commit when a checkpoint fails: a warning, no error for the writers, the next one retries."""

    async def fail(*_args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(directory._scans, "execute", fail)
    with structlog.testing.capture_logs() as logs:
        for n in range(CHECKPOINT_EVERY):
            await directory.add_events([event(f"call-{n:04d}")])
        await directory._checkpoint
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["checkpoint failed; the next one retries"]
    await directory.add_events([event("call-after")])
    assert len(outbox_ids(tmp_path / "ivr.db")) == CHECKPOINT_EVERY + 1
