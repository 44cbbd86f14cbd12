"""Time zones as a caller hears them: "US Eastern time", never the IANA name "America/New_York".

Prompts are read aloud, and an IANA key read aloud is noise to a caller; the names here are the
ones a support centre says. A zone with no spoken name here is said as its city ("Tokyo time").
"""

from __future__ import annotations

from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["SPOKEN", "spoken"]

#: The zones the trainer console offers, with what a caller hears for each.
SPOKEN: Final = {
    "America/New_York": "US Eastern time",
    "America/Chicago": "US Central time",
    "America/Denver": "US Mountain time",
    "America/Los_Angeles": "US Pacific time",
    "Europe/London": "UK time",
    "Europe/Berlin": "Central European time",
    "UTC": "UTC",
}


def spoken(zone: ZoneInfo | str) -> str:
    """What a caller hears for ``zone``: its name in :data:`SPOKEN`, else its city's name and "time"."""
    key = zone if isinstance(zone, str) else zone.key
    known = SPOKEN.get(key)
    if known is not None:
        return known
    return f"{key.rsplit('/', 1)[-1].replace('_', ' ')} time"
