"""The console server over its WebSocket: personas, whole calls, events by subject, bad input, clean-up."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ivr.bus.base import BusUnavailableError
from ivr.bus.broker import EmbeddedBroker, free_port
from ivr.bus.url import BrokerConfig
from ivr.cli import main
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.console import MAX_CALLS
from tests.conftest import DEFAULT_WORLD_PATH
from tests.web.conftest import WAIT, event_of, of_type, receive, until

CODE_KEYS = ["2", "1", "2", *"1234500001#", "2"]  # technical, consumer, support code, severity B


def start(ws, persona, *, at="2026-11-17T10:00", zone="America/New_York"):
    """Place a call and return its id (the hello is read first if still pending)."""
    ws.send_json({"type": "call", "persona": persona, "at": at, "zone": zone})
    started, _ = until(ws, lambda m: m["type"] in ("started", "error"))
    assert started["type"] == "started", started
    return started["call_id"]


def press(ws, keys):
    """Send keys one message each, as the keypad does."""
    for key in keys:
        ws.send_json({"type": "key", "key": key})


def finish(ws, *also):
    """Read until the call has ended and every predicate in ``also`` has matched; all messages read."""
    waiting = [of_type("ended"), *also]
    seen: list[dict] = []
    deadline = time.monotonic() + WAIT
    while waiting:
        try:
            message = receive(ws, max(0.1, deadline - time.monotonic()))
        except pytest.fail.Exception:
            kinds = [m["event"]["type"] if m["type"] == "event" else m.get("message", m["type"]) for m in seen]
            pytest.fail(f"{len(waiting)} awaited message(s) never came; the page got {kinds}")
        if message["type"] != "timer":
            seen.append(message)
        waiting = [p for p in waiting if not p(message)]
    return seen


def replay_saved(tmp_path, text, name="walk.yaml"):
    """Save a scenario as a trainer would, in a folder of its own, and replay it in-process."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir(exist_ok=True)
    path = scenarios / name
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(main, ["replay", "--in-process", str(path)])


def wait_for(condition, timeout=WAIT):
    """Poll ``condition`` (state owned by the server's thread) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_hello_lists_every_persona_with_its_description(client, world):
    """A new page is told each persona of the fixture world (id, description, number) and the flow's diagram."""
    with client.websocket_connect("/ws") as ws:
        hello = receive(ws)
    assert hello["type"] == "hello"
    assert [p["id"] for p in hello["personas"]] == list(world.personas)
    anna = next(p for p in hello["personas"] if p["id"] == "anna-code")
    assert anna == {
        "id": "anna-code",
        "description": "consumer, support code ********01, 5 incidents (R4)",
        "caller": "+15550100001",
        "reveals": "support code",
    }
    assert hello["fixture"] == "default"
    assert hello["diagram"].startswith("flowchart TD")
    assert "abandoned" in hello["diagram_all"]


def test_page_and_assets_are_served_locally(client):
    """The page and every asset (script, styles, Mermaid) come from the server itself: no internet needed."""
    page = client.get("/")
    assert page.status_code == 200
    for asset in ("/static/console.js", "/static/console.css", "/static/mermaid.min.js"):
        assert f'"{asset}"' in page.text
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")


def test_a_whole_call_by_messages(client, tmp_path):
    """A support-code call: states, prompts, decisions, bus events with the deduction, and a scenario that replays."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        call_id = start(ws, "anna-code")
        press(ws, CODE_KEYS)
        seen = finish(ws, event_of("ivr.ledger.incident_deducted"), event_of("ivr.call.ended"))
    states = [m["state"] for m in seen if m["type"] == "state"]
    assert states[0] == "main_menu"
    assert states[-1] == "routed"
    assert "code_entry" in states
    last = [m for m in seen if m["type"] == "state"][-1]
    assert "class routed current" in last["diagram"]
    prompts = [m["name"] for m in seen if m["type"] == "prompt"]
    assert prompts[:2] == ["main_menu", "caller_kind"]
    assert prompts[-2:] == ["case_number", "connecting"]
    rules = [(m["rule"], m["granted"]) for m in seen if m["type"] == "decision"]
    assert rules == [("R4", True), ("R10", True), ("R9", None)]
    r4 = next(m for m in seen if m["type"] == "decision" and m["rule"] == "R4")
    assert r4["sentence"].startswith("Support code: exactly 10 digits")
    assert "********01" in r4["detail"]
    assert "1234500001" not in r4["detail"]
    events = [m["event"] for m in seen if m["type"] == "event"]
    assert {e["subject"] for e in events} == {call_id}
    assert [e["type"] for e in events if not e["type"].startswith("ivr.ledger.")] == [
        "ivr.call.started",
        "ivr.auth.granted",
        "ivr.ticket.created",
        "ivr.call.routed",
        "ivr.call.ended",
    ]
    deducted = next(e for e in events if e["type"] == "ivr.ledger.incident_deducted")
    assert deducted["data"]["contract"] == "K-ANNA-STD"
    assert deducted["specversion"] == "1.0"
    ended = next(m for m in seen if m["type"] == "ended")
    assert (ended["outcome"], ended["rule"], ended["queue"], ended["priority"]) == (
        "routed",
        "R4",
        "consumer-technical",
        3,
    )
    assert ended["deducted"] == {"K-ANNA-STD": 1}
    text = ended["scenario"]
    assert 'fixture: "default"' in text
    assert '  - press: "1234500001#"' in text
    assert '  deducted: {"K-ANNA-STD": 1}' in text
    result = replay_saved(tmp_path, text)
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output


def test_silence_is_saved_as_a_no_input(client, tmp_path):
    """The Silence button fires the no-input timer at once; the walk saves it as `silence: 5`, and it replays."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        start(ws, "sales")
        ws.send_json({"type": "silence"})
        _, seen = until(ws, of_type("prompt", name="no_input"))
        press(ws, "1")
        seen += finish(ws)
    ended = seen[-1]
    assert ended["outcome"] == "sales"
    assert [m["rule"] for m in seen if m["type"] == "decision"] == ["input", "R1"]
    assert "  - silence: 5" in ended["scenario"]
    assert "  prompts: [main_menu, no_input, main_menu, connecting_sales]" in ended["scenario"]
    result = replay_saved(tmp_path, ended["scenario"])
    assert result.exit_code == 0, result.output


def test_an_expired_countdown_is_saved_and_pause_holds_it(client, tmp_path, monkeypatch):
    """A paused countdown does not fire; resumed, it runs out into a no-input, saved as `silence: 5`."""
    monkeypatch.setattr("ivr.engine.NO_INPUT_TIMEOUT", 0.4)
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        start(ws, "sales")
        until(ws, lambda m: m["type"] == "timer" and m["remaining"] is not None)
        ws.send_json({"type": "pause"})
        until(ws, lambda m: m["type"] == "timer" and m["paused"])
        time.sleep(0.8)
        ws.send_json({"type": "resume"})
        _, seen = until(ws, of_type("prompt", name="no_input"))
        assert not any(m["type"] == "prompt" and m["name"] == "no_input" for m in seen[:-1])
        press(ws, "1")
        ended = finish(ws)[-1]
    assert ended["scenario"].count("  - silence: 5") == 1
    monkeypatch.undo()
    result = replay_saved(tmp_path, ended["scenario"])
    assert result.exit_code == 0, result.output


def test_unknown_persona_is_refused_and_starts_nothing(client, app):
    """An unknown persona gets a message naming the known ones, and no call is started."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_json({"type": "call", "persona": "nobody", "at": "2026-11-17T10:00"})
        error = receive(ws)
        assert error["type"] == "error"
        assert "unknown persona 'nobody'" in error["message"]
        assert "anna-code" in error["message"]
        assert app.state.console.calls == {}
        ws.send_json({"type": "key", "key": "1"})
        assert "no call in progress" in receive(ws)["message"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("not json", "not a JSON message"),
        ('{"type": "key", "key": "x"}', "not a phone key: 'x'"),
        ('{"type": "dial"}', "unknown message type 'dial'"),
        ('{"type": "call", "persona": "sales", "at": "tomorrow"}', "'at' is not a date and time"),
        ('{"type": "call", "persona": "sales", "at": "2026-11-17T10:00", "zone": "Mars/Base"}', "unknown time zone"),
        ('{"type": "hangup"}', "no call in progress"),
    ],
)
def test_bad_messages_get_a_clear_error(client, app, message, expected):
    """Malformed or out-of-place messages are answered with what was wrong; nothing starts."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_text(message)
        error = receive(ws)
    assert error["type"] == "error"
    assert expected in error["message"]
    assert app.state.console.calls == {}


def test_a_second_call_while_one_runs_is_refused(client, app):
    """A double click on Call places one call: the second request is refused while the first runs."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        first = {"type": "call", "persona": "anna-code", "at": "2026-11-17T10:00"}
        ws.send_json(first)
        ws.send_json(first)
        _, seen = until(ws, of_type("error"))
        assert len([m for m in seen if m["type"] == "started"]) == 1
        assert "one call at a time" in seen[-1]["message"]
        assert len(app.state.console.calls) == 1
        ws.send_json({"type": "hangup"})
        ended = finish(ws)[-1]
        assert ended["outcome"] == "abandoned"
        wait_for(lambda: app.state.console.calls == {})
        ws.send_json({"type": "key", "key": "1"})
        assert "the call has ended" in until(ws, of_type("error"))[0]["message"]


def test_a_dropped_page_hangs_up_and_cleans_up(client, app):
    """Closing the WebSocket mid-call hangs the call up; its task ends and its private world's files are removed."""
    console = app.state.console
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        start(ws, "anna-code")
        press(ws, ["2", "1", "2", "1", "2", "3"])
        until(ws, of_type("prompt", name="enter_code"))
        (run,) = console.calls.values()
    wait_for(lambda: run.done)
    assert run.call is not None
    assert run.call.outcome == "abandoned"
    assert console.calls == {}
    assert console.sessions == set()
    wait_for(lambda: list(console.workdir.iterdir()) == [])  # the page's private world went with it
    assert run.task is not None
    assert not run.task.cancelled()


@pytest.mark.parametrize(
    ("url", "tickets"),
    [
        ("/ws", {"2000001"}),  # a world each: each numbers its own tickets
        ("/ws?session=shared", {"2000001", "2000002"}),  # one world: one ticket numbering
    ],
    ids=["worlds-of-their-own", "one-session-world"],
)
def test_trainees_do_not_see_each_others_calls(client, url, tickets):
    """Two pages calling at once, in worlds of their own or one session's: each sees only its own call."""
    with client.websocket_connect(url) as one, client.websocket_connect(url) as two:
        receive(one)
        receive(two)
        first = start(one, "anna-code")
        second = start(two, "globex-key")
        press(one, CODE_KEYS)
        press(two, ["2", "2", "3", *"40000002#", "3"])
        seen_one = finish(one, event_of("ivr.ledger.incident_deducted"), event_of("ivr.call.ended"))
        seen_two = finish(two, event_of("ivr.ledger.incident_deducted"), event_of("ivr.call.ended"))
    assert first != second
    for seen, own, contract in ((seen_one, first, "K-ANNA-STD"), (seen_two, second, "K-GLOBEX-STD")):
        assert {m["call_id"] for m in seen if "call_id" in m} == {own}
        events = [m["event"] for m in seen if m["type"] == "event"]
        assert {e["subject"] for e in events} == {own}
        assert [e["data"]["contract"] for e in events if e["type"] == "ivr.ledger.incident_deducted"] == [contract]
    assert {next(m["ticket"] for m in seen if m["type"] == "ended") for seen in (seen_one, seen_two)} == tickets


def test_a_page_from_another_site_is_refused(client):
    """A WebSocket opened by another site's page (its Origin) is closed before any message."""
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/ws", headers={"origin": "http://elsewhere.example"}),
    ):
        pass
    assert refused.value.code == 1008


def test_calls_beyond_the_limit_are_refused(client, app, monkeypatch):
    """A server at its limit of running calls says so instead of starting one more."""
    monkeypatch.setattr("ivr.web.console.MAX_CALLS", 0)
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_json({"type": "call", "persona": "sales", "at": "2026-11-17T10:00"})
        error = receive(ws)
    assert "busy" in error["message"]
    assert MAX_CALLS > 0


def test_a_broker_that_does_not_answer_stops_the_server_with_a_clear_error(monkeypatch):
    """With --broker pointing at nothing, the console does not start and says which broker it waited for."""
    monkeypatch.setattr("ivr.web.console.BROKER_TIMEOUT", 0.5)
    nowhere = BrokerConfig(host="127.0.0.1", port=free_port())
    app = create_app(fixture=DEFAULT_WORLD_PATH, settings=Settings(broker=nowhere))
    expected = rf"no MQTT broker answers at mqtt://127.0.0.1:{nowhere.port}"
    with pytest.raises(BusUnavailableError, match=expected), TestClient(app):
        pass


def test_serve_refuses_a_missing_or_broken_fixture(tmp_path):
    """`ivr serve` with a fixture it cannot read exits 2 naming the file (and the line), before listening."""
    runner = CliRunner()
    missing = runner.invoke(main, ["serve", "--fixture", str(tmp_path / "nowhere.yaml")])
    assert missing.exit_code == 2
    assert "nowhere.yaml: no such fixture file" in missing.output
    assert "Traceback" not in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("customers:\n  - {id: C-X, name: X, kind: robot}\n", encoding="utf-8")
    result = runner.invoke(main, ["serve", "--fixture", str(broken)])
    assert result.exit_code == 2
    assert "broken.yaml:2" in result.output
    assert "'kind' is 'robot'" in result.output


def test_serve_with_a_broker_that_does_not_answer_says_so():
    """`ivr serve --broker URL` with nothing there exits 1 naming the broker, instead of a traceback."""
    port = free_port()
    result = CliRunner().invoke(main, ["serve", "--broker", f"mqtt://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"Error: no MQTT broker answers at mqtt://127.0.0.1:{port}" in result.output
    assert "--broker URL or IVR_BROKER" in result.output


@pytest.mark.parametrize(
    ("instance", "why"),
    [
        ("a b", "makes no event source"),  # its worlds' sources would carry the space
        ("x" * 110, "makes no event source"),  # with a world's suffix, longer than a source may be
        ("ivr+console", "none empty and without wildcards"),
        ("ivr-console/", "none empty and without wildcards"),
    ],
)
def test_serve_refuses_a_name_its_worlds_cannot_be_named_under(instance, why):
    """`ivr serve --instance` names its worlds' sources and statuses: a name that makes neither is a usage error."""
    result = CliRunner().invoke(main, ["serve", "--instance", instance])
    assert result.exit_code == 2
    assert "Invalid value for '--instance'" in result.output
    assert why in result.output


def test_the_console_says_online_on_its_retained_status_topic_and_offline_after(tmp_path):
    """The long-running IVR (the console) keeps ivr/v2/status/ivr-console: online while up, offline after."""

    async def retained(config: BrokerConfig) -> bytes:
        async with aiomqtt.Client(config.host, config.port, protocol=aiomqtt.ProtocolVersion.V311) as c:
            await c.subscribe("ivr/v2/status/ivr-console", qos=1)
            async with asyncio.timeout(WAIT):
                async for message in c.messages:
                    return bytes(message.payload)  # type: ignore[arg-type]
        return b""

    async def run() -> tuple[bytes, bytes]:
        async with EmbeddedBroker() as broker:
            app = create_app(fixture=DEFAULT_WORLD_PATH, settings=Settings(broker=broker.config))
            async with app.router.lifespan_context(app):
                while_up = await retained(broker.config)
            return while_up, await retained(broker.config)

    while_up, after = asyncio.run(run())
    assert (while_up, after) == (b"online", b"offline")


def test_session_worlds_beyond_the_limit_are_refused(client, monkeypatch):
    """A page naming a new session world when the server keeps its maximum is told so; known ones still open."""
    monkeypatch.setattr("ivr.web.console.MAX_WORLDS", 1)
    with client.websocket_connect("/ws?session=first") as ws:
        assert receive(ws)["world"]["name"] == "first"
    with client.websocket_connect("/ws?session=second") as ws:
        refused = receive(ws)
        assert refused == {
            "type": "error",
            "message": "the console keeps 1 session worlds already: join one of them, or restart the server",
        }
    with client.websocket_connect("/ws?session=first") as ws:
        assert receive(ws)["world"]["name"] == "first"


def test_a_bad_session_name_is_refused_saying_what_a_name_may_be(client):
    """?session= with a name that is not one: a clear error, and the page is closed."""
    with client.websocket_connect("/ws?session=../etc") as ws:
        assert receive(ws)["message"].startswith("not a session name: '../etc' (1-40 letters, digits")
