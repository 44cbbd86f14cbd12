"""The trainer's view of a room: each trainee of a session, their call as it goes, the branches walked.

A trainer running a class on ``?session=NAME`` opens ``?room=NAME`` to watch it, read-only. The
session's world keeps a :class:`Roster`: per trainee (a page of the session, named by its
``&trainee=NAME`` or numbered in the order they joined), the call now running — persona, state,
last prompt, last decision, outcome — and every branch of the flow (an arrow of the diagram) their
calls have walked so far: path coverage for people, as ``ivr replay --coverage`` is for scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ivr.states.diagram import edges

__all__ = ["Roster", "Trainee"]


@dataclass(slots=True)
class Trainee:
    """One trainee of the session: their call now, and every branch their calls have walked."""

    name: str
    calls: int = 0
    walked: set[tuple[str, str]] = field(default_factory=set)
    call: dict[str, Any] = field(default_factory=dict)  # the current (or last) call: persona, state, prompt...

    def to_json(self) -> dict[str, Any]:
        """The trainee as the room view shows them."""
        return {"name": self.name, "calls": self.calls, "walked": sorted(self.walked), "call": self.call}


@dataclass(slots=True)
class Roster:
    """The trainees of one session world, in the order they joined."""

    trainees: dict[str, Trainee] = field(default_factory=dict)
    joined: int = 0  # pages that have joined, for the next trainee's number

    def join(self, name: str | None) -> str:
        """A page joins: its trainee's name (given, or the next number); a name seen before is theirs again."""
        self.joined += 1
        label = name or f"trainee {self.joined}"
        self.trainees.setdefault(label, Trainee(label))
        return label

    def report(self, trainee: str, message: dict[str, Any]) -> bool:
        """A message one of ``trainee``'s calls sent its page; whether the room's picture changed."""
        who = self.trainees.setdefault(trainee, Trainee(trainee))
        kind = message["type"]
        if kind == "state":
            if message["call_id"] != who.call.get("call_id"):
                who.calls += 1
                who.call = {"call_id": message["call_id"], "persona": message["persona"]}
            who.walked.update(pairwise(message["path"]))
            who.call["state"] = message["state"]
        elif kind == "prompt":
            who.call["prompt"] = message["text"]
        elif kind == "decision":
            verdict = "branch" if message["granted"] is None else "granted" if message["granted"] else "denied"
            who.call["decision"] = f"{message['rule']} {verdict}: {message['detail']}"
        elif kind == "ended":
            who.call["outcome"] = message["outcome"]
        else:
            return False
        return True

    def snapshot(self, session: str) -> dict[str, Any]:
        """The room view's message: every trainee, and how many branches the flow has."""
        return {
            "type": "room",
            "session": session,
            "branches": len(edges()),
            "trainees": [t.to_json() for t in self.trainees.values()],
        }
