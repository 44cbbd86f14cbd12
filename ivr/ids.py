"""Event ids as UUID text, made as the ``uuid`` module makes them, without its objects.

Every event needs an id: a random one (version 4) for the IVR's events, and for the ledger's a
stable one (version 5, SHA-1 of the request's key), so an announcement sent again is the same
event. Formatting straight from the bytes skips the ``UUID`` object that ``str(uuid.uuid4())``
builds only to print it, which showed in the ledger's profile (figures in docs/performance.md).
The tests hold both to the ``uuid`` module's output.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid

__all__ = ["random_id", "stable_id"]


def random_id() -> str:
    """A version 4 (random) UUID as text, as ``str(uuid.uuid4())`` gives it."""
    return _text(os.urandom(16), 4)


def stable_id(namespace: uuid.UUID, name: str) -> str:
    """The version 5 UUID of ``name`` in ``namespace`` as text, as ``str(uuid.uuid5(namespace, name))``."""
    return _text(hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()[:16], 5)


def _text(raw: bytes, version: int) -> str:
    octets = bytearray(raw)
    octets[6] = (octets[6] & 0x0F) | (version << 4)
    octets[8] = (octets[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = octets.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
