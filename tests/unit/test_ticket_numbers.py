"""New ticket IDs: one numbering per IVR, or a share of one numbering for IVRs splitting the callers."""

from __future__ import annotations

import pytest

from ivr.directory.rows import FIRST_NEW_TICKET
from ivr.directory.sqlite import SqliteDirectory


async def test_ivrs_sharing_the_numbering_never_make_the_same_id(tmp_path):
    """Three directories on one world, each taking its share, number tickets apart from each other."""
    made: list[list[int]] = []
    for shard in range(3):
        directory = await SqliteDirectory.open(tmp_path / f"ivr-{shard}.db")
        try:
            directory.share_ticket_numbers(shard, 3)
            made.append([int(await directory.next_ticket_id()) for _ in range(50)])
        finally:
            await directory.close()
    assert made[0][:2] == [FIRST_NEW_TICKET, FIRST_NEW_TICKET + 3]
    assert made[2][0] == FIRST_NEW_TICKET + 2
    every = [n for numbers in made for n in numbers]
    assert len(set(every)) == len(every) == 150


async def test_alone_an_ivr_numbers_one_after_another(tmp_path):
    """Without sharing, IDs follow each other; a share that does not exist is refused."""
    directory = await SqliteDirectory.open(tmp_path / "ivr.db")
    try:
        assert [await directory.next_ticket_id() for _ in range(3)] == [str(FIRST_NEW_TICKET + i) for i in range(3)]
        with pytest.raises(ValueError, match="shard 3 of 3"):
            directory.share_ticket_numbers(3, 3)
    finally:
        await directory.close()
