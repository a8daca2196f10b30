"""Property tests for both parsers (server events and client events) in both dialects (SPEC §2):

- parsing never raises, on any text, any bytes (invalid UTF-8 included) and any JSON-shaped
  value (real field names and real type tags, huge numbers, deep nesting);
- it always returns exactly one event of the right root class;
- a ``ParseFailure`` preview is at most 200 characters and never leaks audio base64;
- ``parse(encode(e)) == e`` for every event class a dialect carries, both roles;
- one logical event encoded in v1 and in v2 parses to the same vocabulary event.

The strategies below build only *representable* values (see each strategy's comment).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from duplex.protocol import (
    FATAL_ERROR_CODES,
    AudioConfig,
    AudioFormat,
    AudioFrame,
    AudioInputConfig,
    AudioInterrupted,
    AudioOut,
    AudioOutputConfig,
    ClientEvent,
    ContentPart,
    ConversationItem,
    ConversationItemAdded,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemTruncated,
    Error,
    FunctionTool,
    HandoffAppend,
    HandoffRequested,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    InputAudioCommitted,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscription,
    LocalProtocolError,
    McpApprovalRequested,
    NoiseReduction,
    NoopRequested,
    OutputAudioBufferClear,
    OutputAudioDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ParseFailure,
    RateLimit,
    RateLimitsUpdated,
    ResponseCancel,
    ResponseCancelled,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreate,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    ToolCallRequested,
    TurnDetection,
    UnknownEvent,
    Usage,
    WireSession,
    _ga_events as ga_events,
    encode_client_event,
    encode_server_event,
    is_fatal_error_code,
    parse_client_event,
    parse_server_event,
)
from duplex.protocol._encode_v1 import V1_SERVER_PAYLOADS
from duplex.protocol._encode_v2 import v2_server_payloads
from duplex.protocol._parse_v1 import V1_CLIENT_HANDLERS, V1_SERVER_HANDLERS
from duplex.protocol._parse_v2 import V2_CLIENT_HANDLERS, V2_SERVER_HANDLERS

VERSIONS = ["v1", "v2"]
PREVIEW_LIMIT = 200
SERVER_TABLES: dict[str, dict[str, Any]] = {"v1": V1_SERVER_HANDLERS, "v2": V2_SERVER_HANDLERS}
CLIENT_TABLES: dict[str, dict[str, Any]] = {"v1": V1_CLIENT_HANDLERS, "v2": V2_CLIENT_HANDLERS}
ALL_TAGS = sorted({*V1_SERVER_HANDLERS, *V2_SERVER_HANDLERS, *V1_CLIENT_HANDLERS,
                   *V2_CLIENT_HANDLERS})  # fmt: skip
FIELD_NAMES = [
    "type", "event_id", "delta", "data", "audio", "sample_rate", "channels", "num_channels",
    "samples_per_channel", "item_id", "response_id", "previous_item_id", "output_index",
    "content_index", "audio_start_ms", "audio_end_ms", "response", "id", "status", "usage",
    "output", "session", "instructions", "voice", "input_audio_format", "conversation_id",
    "item", "role", "content", "text", "transcript", "call_id", "name", "arguments",
    "handoff_id", "input_transcript", "output_text", "error", "message", "code", "param",
    "rate_limits", "limit", "remaining", "reset_seconds", "tools", "tool_choice",
    "output_modalities", "format", "rate", "input", "model", "prompt",
]  # fmt: skip
TOOL_NAMES = ["codex", "remain_silent", "background_agent", "hush"]


def server_root(event: object) -> None:
    assert isinstance(event, ServerEvent), event


def client_root(event: object) -> None:
    assert isinstance(event, ClientEvent | UnknownEvent | ParseFailure), event
    assert not isinstance(event, ServerEvent) or isinstance(event, UnknownEvent | ParseFailure)


def bounded_failure(event: object) -> None:
    if isinstance(event, ParseFailure):
        assert isinstance(event.reason, str)
        assert event.reason
        assert len(event.preview) <= PREVIEW_LIMIT


def parse_both_roles(data: str | bytes, version: str) -> None:
    server_event = parse_server_event(data, version)
    server_root(server_event)
    bounded_failure(server_event)
    if version == "v2":  # the other tables a v2 session can have: no tools, G.711 audio
        other = parse_server_event(
            data, version, handoff_tool_name=None, silence_tool_name=None, audio_format="pcmu"
        )
        server_root(other)
        bounded_failure(other)
    client_event = parse_client_event(data, version)
    client_root(client_event)
    bounded_failure(client_event)


# --- fuzzing: never raises, one event of the right root --------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.text())
def test_parsers_never_raise_on_arbitrary_text(version: str, data: str) -> None:
    parse_both_roles(data, version)


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.binary())
def test_parsers_never_raise_on_arbitrary_bytes(version: str, data: bytes) -> None:
    parse_both_roles(data, version)


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.binary().map(lambda b: b'{"type":"error","message":"' + b + b'"}'))
def test_parsers_never_raise_on_invalid_utf8_inside_a_json_string(
    version: str, data: bytes
) -> None:
    parse_both_roles(data, version)


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.text().map(lambda t: t.encode("utf-16")) | st.sampled_from([b"\xff", b"\xc3("]))
def test_parsers_never_raise_on_non_utf8_encodings(version: str, data: bytes) -> None:
    parse_both_roles(data, version)


json_leaves: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: beyond 64 bits included
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats()  # NaN and infinities serialise to tokens orjson rejects
    | st.text(max_size=12)
    | st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
    | st.sampled_from(ALL_TAGS)
    | st.sampled_from(TOOL_NAMES)
)
json_keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=5)
    ),
    max_leaves=25,
)
type_values: st.SearchStrategy[Any] = st.sampled_from(ALL_TAGS) | json_leaves
json_frames: st.SearchStrategy[Any] = (
    st.builds(
        lambda kind, body: {**body, "type": kind},
        type_values,
        st.dictionaries(json_keys, json_values, max_size=8),
    )
    | st.builds(lambda body: body, st.dictionaries(json_keys, json_values, max_size=4))
    | json_values
)


@pytest.mark.parametrize("version", VERSIONS)
@given(frame=json_frames)
def test_parsers_never_raise_on_json_shaped_values(version: str, frame: Any) -> None:
    parse_both_roles(json.dumps(frame), version)


@pytest.mark.parametrize("version", VERSIONS)
@given(frame=json_frames)
def test_parsers_never_raise_on_json_shaped_bytes(version: str, frame: Any) -> None:
    parse_both_roles(json.dumps(frame, ensure_ascii=False).encode(), version)


# (type, the field whose required shape the nesting breaks), server and client tags
DEEP_TARGETS = [
    ("session.updated", "session"),
    ("error", "error"),
    ("conversation.item.added", "item"),
    ("conversation.item.done", "item"),
    ("rate_limits.updated", "rate_limits"),
    ("conversation.handoff.requested", "handoff_id"),
    ("response.output_audio.delta", "delta"),
    ("session.update", "session"),
    ("conversation.item.create", "item"),
    ("response.create", "response"),
]
# orjson encodes 255 levels and decodes 1024; Python's repr stops near the recursion limit.
DEEP_LEVELS = [0, 1, 254, 255, 256, 257, 500, 900, 950, 990, 1000, 1010, 1020, 1022, 1023, 1024]


@st.composite
def deep_frames(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from(DEEP_LEVELS) | st.integers(min_value=0, max_value=3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"item":', "}")]))
    leaf = draw(st.sampled_from(["1", '"x"', "null", '{"type":"message"}', "[]"]))
    nested = opener * depth + leaf + closer * depth
    where = draw(st.sampled_from(["target", "random", "top"]))
    if where == "top":
        return nested
    if where == "target":
        kind, key = draw(st.sampled_from(DEEP_TARGETS))
    else:
        kind, key = draw(st.sampled_from(ALL_TAGS)), draw(st.sampled_from(FIELD_NAMES))
    return json.dumps({"type": kind})[:-1] + f',"{key}":' + nested + "}"


@pytest.mark.parametrize("version", VERSIONS)
@given(data=deep_frames())
def test_parsers_never_raise_on_deep_nesting(version: str, data: str) -> None:
    # Note: hypothesis raises the recursion limit while a test runs, so recursion-limit bugs
    # only show up in the plain example test below (…_1000_level_nesting_in_a_required_field).
    parse_both_roles(data, version)


# --- previews never leak audio -------------------------------------------------------------

WINDOW = 16


def failing_frames_with_audio(version: str) -> st.SearchStrategy[tuple[str, str]]:
    """(frame text, audio base64) where the frame fails to parse in ``version`` (as a server
    or as a client frame) and carries the audio somewhere."""
    audio_tag = (
        "conversation.output_audio.delta" if version == "v1" else "response.output_audio.delta"
    )

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, str]:
        pcm = draw(st.binary(min_size=24, max_size=3000))
        b64 = base64.b64encode(pcm).decode()
        # Truncated text (shape 8) is drawn more often: its leak needs a cut inside the value.
        shape = draw(st.integers(min_value=0, max_value=8) | st.just(8))
        frame: Any
        if shape == 0:  # audio delta with a mistyped shape
            frame = {"type": audio_tag, "delta": b64, "sample_rate": 24000, "channels": "2"}
        elif shape == 1:  # v1's older "data" spelling with a mistyped sample rate
            frame = {"type": audio_tag, "data": b64, "sample_rate": "x", "channels": 1}
        elif shape == 2:  # audio delta of an odd byte count: a partial PCM16 sample
            odd = pcm if len(pcm) % 2 else pcm[:-1]
            b64 = base64.b64encode(odd).decode()
            frame = {"type": audio_tag, "delta": b64, "sample_rate": 24000, "channels": 1}
        elif shape == 3:  # no type at all
            frame = {"delta": b64, "audio": b64, "data": b64}
        elif shape == 4:  # audio nested in an item whose type is mistyped
            part = {"type": "input_audio", "audio": b64}
            frame = {"type": "conversation.item.added", "item": {"type": 5, "content": [part]}}
        elif shape == 5:  # a non-object holding audio
            frame = [b64, {"delta": b64}]
        elif shape == 6:  # client append whose audio is not base64
            frame = {"type": "input_audio_buffer.append", "audio": b64 + "!"}
        elif shape == 7:  # audio in an unexpected, nested place of a failing event
            frame = {"type": "conversation.item.added", "item": {"x": {"delta": b64}}}
        else:  # truncated JSON text: the text path of the preview
            text = json.dumps({"type": audio_tag, "item_id": "i", "delta": b64})
            start = text.index(b64)  # cuts inside the audio value are the interesting ones
            cut = draw(
                st.integers(min_value=start + 1, max_value=min(start + 40, len(text) - 1))
                | st.integers(min_value=1, max_value=len(text) - 1)
            )
            return text[:cut], b64
        return json.dumps(frame), b64

    return build()


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.data())
def test_parse_failure_preview_is_bounded_and_never_contains_audio_base64(
    version: str, data: st.DataObject
) -> None:
    text, b64 = data.draw(failing_frames_with_audio(version))
    windows = {b64[i : i + WINDOW] for i in range(len(b64) - WINDOW + 1)}
    results = [parse_server_event(text, version), parse_client_event(text, version)]
    # Every shape is rejected by at least one role's parser.
    assert any(isinstance(r, ParseFailure) for r in results), results
    for event in results:
        if isinstance(event, ParseFailure):
            assert len(event.preview) <= PREVIEW_LIMIT
            leaked = [w for w in windows if w in event.preview]
            assert not leaked, (event.preview, leaked[:3])


# --- representable values --------------------------------------------------------------------

# Text that survives JSON: no lone surrogates.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
ids = texts.filter(bool)  # v2 function-call ids fall back on each other when empty
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


json_scalars = st.none() | st.booleans() | int64 | floats | texts
json_data: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(texts, json_data, max_size=4)


@st.composite
def audio_frames(draw: st.DrawFn) -> AudioFrame:
    # Whole PCM16 frames only: the parsers reject partial samples.
    channels = draw(st.integers(min_value=1, max_value=8))
    sample_rate = draw(st.sampled_from([8000, 16000, 24000, 48000]) | st.integers(1, 2**31))
    n = draw(st.integers(min_value=0, max_value=64))
    pcm = draw(st.binary(min_size=n * 2 * channels, max_size=n * 2 * channels))
    return AudioFrame(pcm, sample_rate, channels)


content_parts = st.builds(
    ContentPart, type=texts, text=opt(texts), transcript=opt(texts), audio=opt(texts)
)
conversation_items = st.builds(
    ConversationItem,
    type=texts,
    id=opt(texts),
    role=opt(texts),
    status=opt(texts),
    content=opt(st.lists(content_parts, max_size=3).map(tuple)),
    call_id=opt(texts),
    name=opt(texts),
    arguments=opt(texts),
    output=opt(texts),
)
usages = st.builds(
    Usage,
    total_tokens=opt(int64),
    input_tokens=opt(int64),
    output_tokens=opt(int64),
    input_token_details=opt(json_objects),
    output_token_details=opt(json_objects),
)
metadatas = st.dictionaries(texts, texts, max_size=3)  # response metadata: string pairs
rate_limits = st.builds(
    RateLimit, name=texts, limit=opt(int64), remaining=opt(int64), reset_seconds=opt(floats)
)
error_codes = opt(st.sampled_from(sorted(FATAL_ERROR_CODES)) | texts)
# A stripped, non-blank request survives v2's argument extraction unchanged.
handoff_texts = texts.map(str.strip).filter(bool)


def errors() -> st.SearchStrategy[Error]:
    # ``fatal`` is not on the wire: the parser derives it from the code.
    return st.builds(
        lambda message, code, event_id, error_type, param: Error(
            message, code, event_id, is_fatal_error_code(code), error_type, param
        ),
        texts,
        error_codes,
        opt(texts),
        texts,  # error_type: required on the wire (the encoder fills in a missing one)
        opt(texts),
    )


def unknown_events(*tables: dict[str, Any]) -> st.SearchStrategy[UnknownEvent]:
    # The payload is the whole decoded object, ``type`` included.
    kinds = texts.filter(lambda t: all(t not in table for table in tables))
    return st.builds(
        lambda kind, body: UnknownEvent(kind, {**body, "type": kind}), kinds, json_objects
    )


def handoffs(*, v2: bool) -> st.SearchStrategy[HandoffRequested]:
    # active_transcript is filled by the accumulator, never by the parser.
    if v2:
        return st.builds(HandoffRequested, ids, ids, handoff_texts)
    return st.builds(HandoffRequested, texts, texts, texts)


def server_strategies(*, v2_safe: bool) -> dict[type[ServerEvent], st.SearchStrategy[Any]]:
    """One strategy per vocabulary class both dialects carry (v2-representable if asked)."""
    return {
        SessionCreated: st.builds(SessionCreated, opt(texts)),
        SessionUpdated: st.builds(SessionUpdated, opt(texts), opt(texts)),
        InputAudioSpeechStarted: st.builds(InputAudioSpeechStarted, opt(texts), opt(int64)),
        InputAudioSpeechStopped: st.builds(InputAudioSpeechStopped, opt(texts), opt(int64)),
        InputAudioCommitted: st.builds(InputAudioCommitted, opt(texts), opt(texts)),
        InputTranscriptDelta: st.builds(InputTranscriptDelta, texts, opt(texts)),
        InputTranscriptDone: st.one_of(
            st.builds(InputTranscriptDone, texts, opt(texts)),
            st.builds(InputTranscriptDone, texts, opt(texts), usages),
            st.builds(
                InputTranscriptDone,
                texts,
                opt(texts),
                audio_seconds=st.floats(min_value=0, max_value=1e6),
            ),
        ),
        OutputTranscriptDelta: st.builds(OutputTranscriptDelta, texts, opt(texts), opt(texts)),
        OutputTranscriptDone: st.builds(OutputTranscriptDone, texts, opt(texts), opt(texts)),
        AudioOut: st.builds(AudioOut, audio_frames(), opt(texts), opt(texts)),
        ResponseCreated: st.builds(ResponseCreated, opt(texts), opt(metadatas)),
        ResponseCancelled: st.builds(ResponseCancelled, opt(texts)),
        ResponseDone: st.builds(
            ResponseDone,
            opt(texts),
            opt(texts),
            opt(usages),
            opt(metadatas),
            opt(texts),
            opt(texts),
        ),
        ConversationItemAdded: st.builds(ConversationItemAdded, conversation_items),
        ConversationItemDone: st.builds(ConversationItemDone, texts),
        ConversationItemTruncated: st.builds(ConversationItemTruncated, texts, int64, int64),
        ConversationItemDeleted: st.builds(ConversationItemDeleted, texts),
        HandoffRequested: handoffs(v2=v2_safe),
        RateLimitsUpdated: st.builds(
            RateLimitsUpdated, st.lists(rate_limits, max_size=3).map(tuple)
        ),
        Error: errors(),
    }


def ga_strategy(cls: type[ServerEvent]) -> st.SearchStrategy[Any]:
    """A strategy for a flat GA event class, derived from its attrs fields (annotations are
    strings: ``from __future__ import annotations`` in ``_ga_events``)."""
    kinds: dict[str, st.SearchStrategy[Any]] = {
        "str": texts,
        "str | None": opt(texts),
        "int": int64,
        "float": floats,
        "ConversationItem": conversation_items,
        "ContentPart": content_parts,
    }
    fields: Any = attrs.fields(cls)  # type: ignore[arg-type]
    return st.builds(cls, *[kinds[str(f.type)] for f in fields])


GA_CLASSES: list[type[ServerEvent]] = [
    OutputAudioDone,
    *(
        cls
        for name in ga_events.__all__
        if isinstance(cls := getattr(ga_events, name), type) and issubclass(cls, ServerEvent)
    ),
]
# A host tool is any function name other than the session's handoff/silence tools.
host_tool_names = texts.filter(lambda t: t not in TOOL_NAMES)


def v2_only_strategies() -> dict[type[ServerEvent], st.SearchStrategy[Any]]:
    found: dict[type[ServerEvent], st.SearchStrategy[Any]] = {
        cls: ga_strategy(cls) for cls in GA_CLASSES
    }
    found[ToolCallRequested] = st.builds(
        ToolCallRequested, ids, host_tool_names, texts, ids, opt(texts)
    )
    found[McpApprovalRequested] = st.builds(McpApprovalRequested, ids, texts, texts, texts)
    return found


V1_SERVER_STRATEGIES: dict[type[ServerEvent], st.SearchStrategy[Any]] = {
    **server_strategies(v2_safe=False),
    UnknownEvent: unknown_events(V1_SERVER_HANDLERS),
}
V2_SERVER_STRATEGIES: dict[type[ServerEvent], st.SearchStrategy[Any]] = {
    **server_strategies(v2_safe=True),
    NoopRequested: st.builds(NoopRequested, ids, ids),
    **v2_only_strategies(),
    UnknownEvent: unknown_events(V2_SERVER_HANDLERS),
}
SHARED_SERVER_STRATEGIES: dict[type[ServerEvent], st.SearchStrategy[Any]] = {
    **server_strategies(v2_safe=True),
    UnknownEvent: unknown_events(V1_SERVER_HANDLERS, V2_SERVER_HANDLERS),
}
SERVER_STRATEGIES = {"v1": V1_SERVER_STRATEGIES, "v2": V2_SERVER_STRATEGIES}
SERVER_PAYLOADS: dict[str, dict[type[ServerEvent], Any]] = {
    "v1": V1_SERVER_PAYLOADS,
    "v2": v2_server_payloads("codex", "remain_silent"),
}
SERVER_CLASSES: list[type[ServerEvent]] = sorted(
    {*V1_SERVER_STRATEGIES, *V2_SERVER_STRATEGIES}, key=lambda c: c.__name__
)
TOOL_NAME_PAIRS = [("codex", "remain_silent"), ("background_agent", "hush")]


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_strategies_cover_every_server_event_class_the_dialect_encodes(
    version: str,
) -> None:
    assert set(SERVER_STRATEGIES[version]) == set(SERVER_PAYLOADS[version])


def test_every_vocabulary_class_with_a_wire_form_round_trips_in_some_dialect() -> None:
    import duplex.protocol._events as events_module

    vocabulary = {
        cls
        for module in (events_module, ga_events)
        for name in module.__all__
        if isinstance(cls := getattr(module, name), type)
        and issubclass(cls, ServerEvent)
        and cls is not ServerEvent
    }
    covered = set(V1_SERVER_STRATEGIES) | set(V2_SERVER_STRATEGIES)
    # ParseFailure is not a wire event; AudioInterrupted is built by the engine.
    assert vocabulary - covered == {ParseFailure, AudioInterrupted}


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_built_audio_interrupted_has_no_wire_form(version: str) -> None:
    with pytest.raises(LocalProtocolError, match="cannot be encoded"):
        encode_server_event(AudioInterrupted("item_1", 640), version)


def _server_events(version: str) -> st.SearchStrategy[ServerEvent]:
    return st.one_of(*SERVER_STRATEGIES[version].values())


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.data())
def test_server_event_round_trips_through_encode_and_parse(
    version: str, data: st.DataObject
) -> None:
    event = data.draw(_server_events(version))
    handoff_tool, silence_tool = data.draw(st.sampled_from(TOOL_NAME_PAIRS))
    text = encode_server_event(
        event, version, handoff_tool_name=handoff_tool, silence_tool_name=silence_tool
    )
    parsed = parse_server_event(
        text, version, handoff_tool_name=handoff_tool, silence_tool_name=silence_tool
    )
    assert parsed == event


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cls", SERVER_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25)
@given(data=st.data())
def test_each_server_event_class_round_trips(
    version: str, cls: type[ServerEvent], data: st.DataObject
) -> None:
    strategy = SERVER_STRATEGIES[version].get(cls)
    if strategy is None:
        with pytest.raises(Exception, match="cannot be encoded"):
            encode_server_event(data.draw(SERVER_STRATEGIES["v2"][cls]), version)
        return
    event = data.draw(strategy)
    assert parse_server_event(encode_server_event(event, version), version) == event


@given(data=st.data())
def test_logical_event_encoded_in_v1_and_v2_parses_to_the_same_vocabulary_event(
    data: st.DataObject,
) -> None:
    event = data.draw(st.one_of(*SHARED_SERVER_STRATEGIES.values()))
    from_v1 = parse_server_event(encode_server_event(event, "v1"), "v1")
    from_v2 = parse_server_event(encode_server_event(event, "v2"), "v2")
    assert from_v1 == from_v2 == event


# --- client events -------------------------------------------------------------------------

audio_formats = st.builds(AudioFormat, type=texts, rate=int64)
NULLABLE_INPUT = ("noise_reduction", "transcription", "turn_detection")


def with_nulls(audio_in: AudioInputConfig) -> st.SearchStrategy[AudioInputConfig]:
    """Mark some absent fields as explicit JSON nulls (GA's "off"), in wire order."""
    absent = [name for name in NULLABLE_INPUT if getattr(audio_in, name) is None]
    if not absent:
        return st.just(audio_in)
    return st.sets(st.sampled_from(absent)).map(
        lambda chosen: attrs.evolve(audio_in, nulls=tuple(n for n in NULLABLE_INPUT if n in chosen))
    )


string_or_object = texts | json_objects
session_configs = st.builds(
    WireSession,
    type=texts,
    id=opt(texts),
    model=opt(texts),
    instructions=opt(texts),
    conversation_id=opt(texts),
    output_modalities=opt(st.lists(texts, max_size=2).map(tuple)),
    audio=opt(
        st.builds(
            AudioConfig,
            input=opt(
                st.builds(
                    AudioInputConfig,
                    format=opt(audio_formats),
                    noise_reduction=opt(st.builds(NoiseReduction, type=texts)),
                    transcription=opt(
                        st.builds(
                            InputTranscription, model=texts, language=opt(texts), prompt=opt(texts)
                        )
                    ),
                    turn_detection=opt(
                        st.builds(
                            TurnDetection,
                            type=texts,
                            threshold=opt(floats),
                            prefix_padding_ms=opt(int64),
                            silence_duration_ms=opt(int64),
                            idle_timeout_ms=opt(int64),
                            create_response=opt(st.booleans()),
                            interrupt_response=opt(st.booleans()),
                            eagerness=opt(texts),
                        )
                    ),
                ).flatmap(with_nulls)
            ),
            output=opt(
                st.builds(
                    AudioOutputConfig,
                    format=opt(audio_formats),
                    voice=opt(string_or_object),
                    speed=opt(floats),
                )
            ),
        )
    ),
    tools=opt(
        st.lists(
            st.builds(
                FunctionTool,
                name=texts,
                description=opt(texts),
                parameters=opt(json_objects),
                type=texts,
            ),
            max_size=3,
        ).map(tuple)
    ),
    tool_choice=opt(string_or_object),
    max_output_tokens=opt(int64 | texts),
    truncation=opt(string_or_object),
    tracing=opt(string_or_object),
    prompt=opt(json_objects),
    include=opt(st.lists(texts, max_size=2).map(tuple)),
    reasoning=opt(json_objects),
)
event_ids = opt(texts)


def client_strategies(*, v1: bool) -> dict[type[ClientEvent], st.SearchStrategy[Any]]:
    found: dict[type[ClientEvent], st.SearchStrategy[Any]] = {
        SessionUpdate: st.builds(SessionUpdate, session=session_configs, event_id=event_ids),
        InputAudioBufferAppend: st.builds(
            InputAudioBufferAppend, audio=st.binary(max_size=300), event_id=event_ids
        ),
        InputAudioBufferCommit: st.builds(InputAudioBufferCommit, event_id=event_ids),
        InputAudioBufferClear: st.builds(InputAudioBufferClear, event_id=event_ids),
        OutputAudioBufferClear: st.builds(OutputAudioBufferClear, event_id=event_ids),
        ConversationItemCreate: st.builds(
            ConversationItemCreate,
            item=conversation_items,
            previous_item_id=opt(texts),
            event_id=event_ids,
        ),
        ConversationItemTruncate: st.builds(
            ConversationItemTruncate,
            item_id=texts,
            content_index=int64,
            audio_end_ms=int64,
            event_id=event_ids,
        ),
        ConversationItemDelete: st.builds(
            ConversationItemDelete, item_id=texts, event_id=event_ids
        ),
        ConversationItemRetrieve: st.builds(
            ConversationItemRetrieve, item_id=texts, event_id=event_ids
        ),
        ResponseCreate: st.builds(ResponseCreate, response=opt(json_objects), event_id=event_ids),
        ResponseCancel: st.builds(ResponseCancel, response_id=opt(texts), event_id=event_ids),
    }
    if v1:
        found[SessionCreate] = st.builds(SessionCreate, session=session_configs, event_id=event_ids)
        found[HandoffAppend] = st.builds(
            HandoffAppend, handoff_id=texts, output_text=texts, event_id=event_ids
        )
    return found


CLIENT_STRATEGIES = {"v1": client_strategies(v1=True), "v2": client_strategies(v1=False)}
CLIENT_CLASSES: list[type[ClientEvent]] = sorted(CLIENT_STRATEGIES["v1"], key=lambda c: c.__name__)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_round_trip_strategies_cover_every_client_event_the_dialect_accepts(
    version: str,
) -> None:
    assert {cls.TYPE for cls in CLIENT_STRATEGIES[version]} == set(CLIENT_TABLES[version])


@pytest.mark.parametrize("version", VERSIONS)
@given(data=st.data())
def test_client_event_round_trips_through_encode_and_parse(
    version: str, data: st.DataObject
) -> None:
    event = data.draw(st.one_of(*CLIENT_STRATEGIES[version].values()))
    parsed = parse_client_event(encode_client_event(event, version), version)
    assert parsed == event


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cls", CLIENT_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_client_event_class_round_trips(
    version: str, cls: type[ClientEvent], data: st.DataObject
) -> None:
    strategy = CLIENT_STRATEGIES[version].get(cls)
    if strategy is None:  # v1-only events cannot be encoded in v2
        with pytest.raises(Exception, match="only in the v1 dialect"):
            encode_client_event(data.draw(CLIENT_STRATEGIES["v1"][cls]), version)
        return
    event = data.draw(strategy)
    assert parse_client_event(encode_client_event(event, version), version) == event


@given(data=st.data())
def test_client_event_encoded_in_v1_and_v2_parses_to_the_same_event(data: st.DataObject) -> None:
    event = data.draw(st.one_of(*CLIENT_STRATEGIES["v2"].values()))
    from_v1 = parse_client_event(encode_client_event(event, "v1"), "v1")
    from_v2 = parse_client_event(encode_client_event(event, "v2"), "v2")
    assert from_v1 == from_v2 == event


# --- regressions found by the properties (failing until protocol/ is fixed) ------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_client_session_round_trip_keeps_g711_format_without_rate(version: str) -> None:
    # AudioFormat documents that G.711 formats carry no rate (rate=None), but the encoder
    # omits None and the parser then fills the class default 24000 back in.
    event = SessionUpdate(
        session=WireSession(
            type="realtime",
            audio=AudioConfig(
                input=AudioInputConfig(format=AudioFormat(type="audio/pcmu", rate=None))
            ),
        )
    )
    assert parse_client_event(encode_client_event(event, version), version) == event


@pytest.mark.parametrize("version", VERSIONS)
def test_error_event_with_deeply_nested_error_value_is_still_an_error(version: str) -> None:
    # codex §5.2: with no message anywhere, Error carries the JSON of ``error``. orjson can
    # decode 1024 levels but only encode 255, so the handler's re-serialisation fails.
    nested = "[" * 300 + "]" * 300
    event = parse_server_event('{"type":"error","error":' + nested + "}", version)
    assert isinstance(event, Error), event
    assert event.message


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_audio_frame_preview_drops_the_partial_base64_run(version: str) -> None:
    # A frame cut inside its audio value (under the 800-char scan limit) leaves a trailing
    # base64 run shorter than the 32-char elision threshold: up to 31 audio chars leak.
    b64 = base64.b64encode(bytes(range(1, 24))).decode()  # 32 chars
    text = '{"type":"response.output_audio.delta","delta":"' + b64[:28]
    event = parse_server_event(text, version)
    assert isinstance(event, ParseFailure)
    assert b64[:12] not in event.preview, event.preview


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("kind", "key"), DEEP_TARGETS)
def test_parsers_never_raise_on_1000_level_nesting_in_a_required_field(
    version: str, kind: str, key: str
) -> None:
    # orjson decodes up to 1024 levels; rendering the ParseFailure preview of such a frame
    # falls back to repr(), which hits Python's recursion limit and escaped the parser.
    data = json.dumps({"type": kind})[:-1] + f',"{key}":' + "[" * 1000 + "]" * 1000 + "}"
    parse_both_roles(data, version)


# --- helpers used above must themselves be sound ---------------------------------------------


def _check(fn: Callable[[object], None], value: object) -> bool:
    try:
        fn(value)
    except AssertionError:
        return False
    return True


def test_root_class_checks_reject_the_wrong_root() -> None:
    assert _check(server_root, UnknownEvent("x", {"type": "x"}))
    assert not _check(server_root, InputAudioBufferCommit())
    assert _check(client_root, InputAudioBufferCommit())
    assert not _check(client_root, SessionCreated())
