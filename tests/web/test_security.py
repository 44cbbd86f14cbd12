"""The console's defences: codes and keys only on the card that asks, security headers, binary frames refused."""

from __future__ import annotations

import json
import re

from ivr.web.app import SECURITY_HEADERS
from tests.web.conftest import of_type, receive, until


def whole_secrets(world) -> list[str]:
    """Every support code and license key of the world, whole."""
    return [*world.support_codes, *world.license_keys]


def leaked(messages, world) -> list[str]:
    """The codes and keys found whole anywhere in ``messages`` (as the page receives them, JSON)."""
    text = json.dumps(messages)
    return [s for s in whole_secrets(world) if s in text]


def test_the_page_gets_no_whole_code_until_a_card_asks_for_its_own(client, world):
    """Hello and a call send codes and keys masked; "show" sends that one persona's code, and only it."""
    with client.websocket_connect("/ws") as ws:
        hello = receive(ws)
        ws.send_json({"type": "call", "persona": "anna-code", "at": "2026-11-17T10:00"})
        _, seen = until(ws, of_type("prompt"))
        ws.send_json({"type": "hangup"})
        _, ended = until(ws, of_type("ended"))
        status, _ = until(ws, of_type("world"))  # the world after the call: what its personas hold now
        assert leaked([hello, *seen, *ended, status], world) == []
        anna = next(p for p in hello["personas"] if p["id"] == "anna-code")
        assert "********01" in anna["description"]
        assert anna["reveals"] == "support code"

        ws.send_json({"type": "reveal", "persona": "anna-code"})
        secret = receive(ws)
        ws.send_json({"type": "reveal", "persona": "globex-key"})
        key = receive(ws)
        ws.send_json({"type": "reveal", "persona": "sales"})
        nothing = receive(ws)
    assert secret == {
        "type": "secret",
        "persona": "anna-code",
        "secrets": [{"kind": "support code", "digits": "1234500001"}],
    }
    assert leaked([secret], world) == ["1234500001"]
    assert key["secrets"] == [{"kind": "license key", "digits": "40000002"}]
    assert nothing["secrets"] == []
    assert next(p for p in hello["personas"] if p["id"] == "sales")["reveals"] is None


def test_asking_for_an_unknown_personas_code_says_which_exist(client):
    """A reveal naming no persona is answered with the known ones, and no secret."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_json({"type": "reveal", "persona": "nobody"})
        error = receive(ws)
    assert error["type"] == "error"
    assert "unknown persona 'nobody'" in error["message"]


def test_pages_and_their_files_carry_the_security_headers(client):
    """The page, its script, styles and Mermaid: a CSP with no framing and no inline script, nosniff, DENY."""
    for path in ("/", "/static/console.js", "/static/console.css", "/static/mermaid.min.js"):
        answer = client.get(path)
        assert answer.status_code == 200
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (path, name)
    policy = dict(part.strip().split(" ", 1) for part in SECURITY_HEADERS["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert client.get("/").headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_no_inline_script_or_style_for_the_policy_to_block(client):
    """Everything the page runs is a file from /static: no inline script, handler or style element."""
    page = client.get("/").text
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert re.findall(r"\son[a-z]+=", page) == []
    assert "<style" not in page
    assert " style=" not in page


def test_a_binary_frame_gets_a_clear_error_and_the_page_goes_on(client, app):
    """A binary WebSocket frame is answered with what to send instead; the connection still works after it."""
    with client.websocket_connect("/ws") as ws:
        receive(ws)
        ws.send_bytes(b'{"type": "call", "persona": "sales", "at": "2026-11-17T10:00"}')
        error = receive(ws)
        ws.send_json({"type": "hangup"})
        after = receive(ws)
    assert error == {"type": "error", "message": "binary frames are not accepted: send each message as JSON text"}
    assert "no call in progress" in after["message"]
    assert app.state.console.calls == {}
