"""G.711 plumbing (SPEC §3.4): telephony sessions pass μ-law / A-law bytes through untranscoded,
with durations (and so barge-in milliseconds) computed for 8 kHz one-byte samples."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, strategies as st

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    LocalProtocolError,
    ParseFailure,
    ServerEventParser,
    duration_ms,
    encode_server_event,
    encoding_of,
    parse_server_event,
    pcm_bytes_for_ms,
)

G711 = ["pcmu", "pcma"]


@pytest.mark.parametrize("encoding", G711)
def test_g711_frame_duration_counts_one_byte_per_8khz_sample(encoding: str) -> None:
    frame = AudioFrame(b"\xff" * 160, 8000, 1, encoding)
    assert frame.duration_ms == 20.0
    assert frame.samples_per_channel == 160
    assert frame.bytes_per_sample == 1
    assert pcm_bytes_for_ms(20, 8000, 1, encoding) == 160
    assert duration_ms(160, 8000, 1, encoding) == 20.0


def test_pcm16_frame_arithmetic_is_unchanged() -> None:
    assert AudioFrame(b"\x00" * 960).duration_ms == 20.0
    assert pcm_bytes_for_ms(20) == 960


def test_unknown_audio_format_is_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="unknown audio format"):
        encoding_of("opus")
    with pytest.raises(LocalProtocolError, match="unknown audio format"):
        ServerEventParser("v2", audio_format="opus")
    with pytest.raises(LocalProtocolError, match="only PCM16"):
        ServerEventParser("v1", audio_format="pcmu")
    with pytest.raises(LocalProtocolError, match="unknown audio format"):
        parse_server_event("{}", "v2", audio_format=["pcmu"])  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", G711)
def test_g711_session_audio_delta_is_passed_through_undecoded(encoding: str) -> None:
    payload = bytes(range(160))
    frame = {
        "type": "response.output_audio.delta",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(payload).decode(),
    }
    event = parse_server_event(json.dumps(frame), "v2", audio_format=encoding)
    assert event == AudioOut(AudioFrame(payload, 8000, 1, encoding), "i", "r")


def test_g711_delta_with_invalid_base64_is_a_parse_failure() -> None:
    frame = {"type": "response.output_audio.delta", "delta": "not base64!"}
    event = parse_server_event(json.dumps(frame), "v2", audio_format="pcmu")
    assert isinstance(event, ParseFailure)
    assert "base64" in event.reason


def test_pcm16_session_still_rejects_a_partial_sample() -> None:
    frame = {"type": "response.output_audio.delta", "delta": base64.b64encode(b"abc").decode()}
    assert isinstance(parse_server_event(json.dumps(frame), "v2"), ParseFailure)


def test_v1_cannot_encode_g711_audio() -> None:
    with pytest.raises(LocalProtocolError, match="only PCM16"):
        encode_server_event(AudioOut(AudioFrame(b"\x00", 8000, 1, "pcmu")), "v1")


@pytest.mark.parametrize("encoding", G711)
@given(data=st.binary(max_size=400), item_id=st.none() | st.text(min_size=1, max_size=8))
def test_g711_audio_round_trips_in_a_g711_session(
    encoding: str, data: bytes, item_id: str | None
) -> None:
    event = AudioOut(AudioFrame(data, 8000, 1, encoding), item_id, "resp")
    text = encode_server_event(event, "v2")
    assert "sample_rate" not in json.loads(text)  # GA never states G.711's rate
    assert parse_server_event(text, "v2", audio_format=encoding) == event
