"""``dialect(version)``: each dialect's capabilities, by name (SPEC §2)."""

from __future__ import annotations

import attrs
import pytest

from duplex.protocol import Dialect, LocalProtocolError, ProtocolVersion, dialect

CAPABILITIES = [f.name for f in attrs.fields(Dialect) if f.type in (bool, "bool")]


def test_every_version_has_a_dialect_that_names_it() -> None:
    for version in ProtocolVersion:
        assert dialect(version).version is version
        assert dialect(version.value) is dialect(version)


def test_v2_has_every_capability_and_v1_none() -> None:
    # v1 (quicksilver) answers by itself, keeps items server-side and has no turn control;
    # GA has all of it. A new dialect states each one on its own.
    assert CAPABILITIES  # the table has named capabilities to compare
    assert all(getattr(dialect("v2"), name) is True for name in CAPABILITIES)
    assert all(getattr(dialect("v1"), name) is False for name in CAPABILITIES)


def test_an_unknown_version_is_a_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError, match="unknown protocol version"):
        dialect("v9")
