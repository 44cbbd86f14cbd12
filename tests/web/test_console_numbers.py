"""The console refuses a call from a persona whose number is no telephone number: an error on the page, no crash."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ivr.bootstrap import console_connection
from ivr.bus.url import BrokerConfig
from ivr.directory.fixtures import Persona, World
from ivr.web.console import Console
from ivr.web.messages import StartCall
from tests.conftest import DEFAULT_WORLD_PATH

AT = datetime(2026, 11, 17, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


async def test_a_persona_with_no_telephone_number_is_refused_with_a_message(tmp_path):
    """A world built in code may hold any number: starting that persona's call is refused, and nothing runs."""
    world = World(personas={"local": Persona(id="local", description="a local number", caller="555 0100")})
    console = Console(
        world=world, fixture=DEFAULT_WORLD_PATH, connection=console_connection(BrokerConfig()), workdir=tmp_path
    )
    sent: list[dict] = []
    session = console.session(sent.append)
    session.apply(StartCall(persona="local", at=AT))
    assert sent == [
        {
            "type": "error",
            "message": "call refused: persona 'local': caller number '555 0100' is not a telephone number "
            "(a local number without its area code)",
        }
    ]
    assert console.calls == {}
    assert session.run is None
