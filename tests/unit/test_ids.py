"""Event ids: the text the ``uuid`` module would give, made without its objects."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from ivr.ids import random_id, stable_id


@given(namespace=st.uuids(), name=st.text())
def test_a_stable_id_is_uuid5_of_the_name(namespace, name):
    """Any namespace, any text (non-ASCII and empty included): the same id as ``uuid.uuid5``."""
    assert stable_id(namespace, name) == str(uuid.uuid5(namespace, name))


def test_a_random_id_is_a_version_4_uuid_in_canonical_text():
    """Version 4, the RFC 4122 variant, lower-case canonical text; ten thousand of them all different."""
    ids = [random_id() for _ in range(10_000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
