"""``client_event_types``: the server role's accepted tags, derived from the parser tables."""

from __future__ import annotations

import orjson
import pytest

from duplex.protocol import UnknownEvent, client_event_types, parse_client_event


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_listed_client_event_types_are_exactly_the_ones_the_parser_maps(version: str) -> None:
    listed = client_event_types(version)
    assert list(listed) == sorted(listed)
    for tag in listed:
        parsed = parse_client_event(orjson.dumps({"type": tag}), version)
        assert not isinstance(parsed, UnknownEvent), tag
    parsed = parse_client_event('{"type":"scooby.dooby.doo"}', version)
    assert isinstance(parsed, UnknownEvent)


def test_v1_accepts_session_create_and_handoff_append_and_v2_does_not() -> None:
    v1, v2 = set(client_event_types("v1")), set(client_event_types("v2"))
    assert v1 - v2 == {"session.create", "conversation.handoff.append"}
    assert v2 <= v1
