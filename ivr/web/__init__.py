"""The trainer console: a web page where a trainee walks a call on a phone keypad (`ivr serve`).

Trainers show new agents *why* a caller was sent where. The page shows the flow diagram with the
call's state and path, each branch with its rule and the data that decided it, and the call's
events as they cross the bus; a walk can be saved as a scenario that `ivr replay` passes. Every
call runs on the same system replay builds (`ivr.bootstrap.build_system`), never on a copy.
"""

from __future__ import annotations

from ivr.web.app import create_app

__all__ = ["create_app"]
