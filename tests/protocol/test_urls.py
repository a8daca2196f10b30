"""URL, header, Location and multipart building (codex-realtime.md §3, §8.2, §11.1, §11.5)."""

from __future__ import annotations

import orjson
import pytest

from duplex.protocol._enums import ProtocolVersion, SessionMode
from duplex.protocol._errors import LocalProtocolError
from duplex.protocol._urls import (
    DEFAULT_MULTIPART_BOUNDARY,
    call_id_from_location,
    merge_headers,
    multipart_call_body,
    realtime_calls_url,
    realtime_headers,
    realtime_websocket_url,
)

# --- codex methods.rs URL/header tests, same inputs and expectations ----------------------


def test_merge_request_headers_matches_http_precedence() -> None:
    merged = merge_headers(
        {"originator": "provider-originator", "x-priority": "provider"},
        {"x-priority": "extra"},
        {
            "originator": "default-originator",
            "x-priority": "default",
            "x-default-only": "default-only",
        },
    )

    assert merged["originator"] == "provider-originator"
    assert merged["x-priority"] == "extra"
    assert merged["x-default-only"] == "default-only"


def test_websocket_url_from_http_base_defaults_to_ws_path() -> None:
    url = realtime_websocket_url("http://127.0.0.1:8011", version="v1")
    assert url == "ws://127.0.0.1:8011/v1/realtime?intent=quicksilver"


def test_websocket_url_from_ws_base_defaults_to_ws_path() -> None:
    url = realtime_websocket_url("wss://example.com", version="v1", model="realtime-test-model")
    assert url == "wss://example.com/v1/realtime?intent=quicksilver&model=realtime-test-model"


def test_websocket_url_from_v1_base_appends_realtime_path() -> None:
    url = realtime_websocket_url("https://api.openai.com/v1", version="v1", model="snapshot")
    assert url == "wss://api.openai.com/v1/realtime?intent=quicksilver&model=snapshot"


def test_websocket_url_from_nested_v1_base_appends_realtime_path() -> None:
    url = realtime_websocket_url("https://example.com/openai/v1", version="v1", model="snapshot")
    assert url == "wss://example.com/openai/v1/realtime?intent=quicksilver&model=snapshot"


def test_websocket_url_preserves_existing_realtime_path_and_extra_query_params() -> None:
    url = realtime_websocket_url(
        "https://example.com/v1/realtime?foo=bar",
        version=ProtocolVersion.V1,
        mode=SessionMode.CONVERSATIONAL,
        model="snapshot",
        query_params={"trace": "1", "intent": "ignored"},
    )
    assert url == "wss://example.com/v1/realtime?foo=bar&intent=quicksilver&model=snapshot&trace=1"


def test_websocket_url_v1_transcription_mode_switches_intent() -> None:
    # Differs from codex `websocket_url_v1_ignores_transcription_mode` (which expects
    # `?intent=quicksilver`): SPEC §2 says the v1 transcription mode uses intent=transcription.
    url = realtime_websocket_url("https://example.com", version="v1", mode="transcription")
    assert url == "wss://example.com/v1/realtime?intent=transcription"


def test_websocket_url_omits_intent_for_realtime_v2_conversational_mode() -> None:
    url = realtime_websocket_url(
        "https://example.com/v1/realtime?foo=bar",
        version="v2",
        model="snapshot",
        query_params={"trace": "1", "intent": "ignored"},
    )
    assert url == "wss://example.com/v1/realtime?foo=bar&model=snapshot&trace=1"


def test_websocket_url_v2_transcription_mode_uses_transcription_intent() -> None:
    # Differs from codex `websocket_url_omits_intent_for_realtime_v2_transcription_mode`
    # (which expects no query at all): SPEC §2 gives v2 transcription `?intent=transcription`.
    url = realtime_websocket_url("https://example.com", version="v2", mode="transcription")
    assert url == "wss://example.com/v1/realtime?intent=transcription"


def test_websocket_url_for_call_id_joins_existing_realtime_session() -> None:
    url = realtime_websocket_url("https://api.openai.com/v1", version="v2", call_id="rtc_test")
    assert url == "wss://api.openai.com/v1/realtime?call_id=rtc_test"


# --- core integration test URIs (codex §3.3 / §11.3) --------------------------------------


def test_websocket_url_for_v1_sideband_join_keeps_intent_and_drops_model() -> None:
    url = realtime_websocket_url(
        "http://127.0.0.1:8011/v1",
        version="v1",
        model="realtime-test-model",
        call_id="rtc_core_test",
    )
    assert url == "ws://127.0.0.1:8011/v1/realtime?intent=quicksilver&call_id=rtc_core_test"


def test_websocket_url_for_v1_start_has_intent_then_model() -> None:
    url = realtime_websocket_url("http://127.0.0.1:8011", version="v1", model="realtime-test-model")
    assert url == "ws://127.0.0.1:8011/v1/realtime?intent=quicksilver&model=realtime-test-model"


def test_websocket_url_for_default_v2_start_has_only_model() -> None:
    url = realtime_websocket_url("http://127.0.0.1:8011", version="v2", model="gpt-realtime-1.5")
    assert url == "ws://127.0.0.1:8011/v1/realtime?model=gpt-realtime-1.5"


# --- further URL rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://example.com/", "wss://example.com/v1/realtime"),
        ("https://example.com/v1/", "wss://example.com/v1/realtime"),
        ("https://example.com/v1/realtime/", "wss://example.com/v1/realtime"),
        ("https://example.com/custom/path", "wss://example.com/custom/path"),
        ("ws://localhost:9000/v1/realtime", "ws://localhost:9000/v1/realtime"),
        ("HTTPS://example.com", "wss://example.com/v1/realtime"),
    ],
)
def test_websocket_url_normalises_path_like_codex(base: str, expected: str) -> None:
    assert realtime_websocket_url(base, version="v2") == expected


def test_websocket_url_v2_transcription_never_carries_a_model() -> None:
    url = realtime_websocket_url(
        "https://example.com",
        version="v2",
        mode="transcription",
        model="gpt-realtime",
        query_params={"model": "from-provider", "api-version": "2025"},
    )
    assert url == "wss://example.com/v1/realtime?intent=transcription&api-version=2025"


def test_websocket_url_v1_transcription_keeps_the_model() -> None:
    url = realtime_websocket_url(
        "https://example.com", version="v1", mode="transcription", model="snapshot"
    )
    assert url == "wss://example.com/v1/realtime?intent=transcription&model=snapshot"


def test_websocket_url_keeps_provider_model_when_no_model_was_given() -> None:
    url = realtime_websocket_url(
        "https://example.com", version="v2", query_params={"model": "deployment"}
    )
    assert url == "wss://example.com/v1/realtime?model=deployment"


def test_websocket_url_drops_provider_model_when_a_model_was_given() -> None:
    url = realtime_websocket_url(
        "https://example.com", version="v2", model="snapshot", query_params={"model": "other"}
    )
    assert url == "wss://example.com/v1/realtime?model=snapshot"


def test_websocket_url_sideband_join_puts_call_id_last_and_ignores_provider_model() -> None:
    url = realtime_websocket_url(
        "https://example.com",
        version="v2",
        model="snapshot",
        query_params={"trace": "1", "model": "other", "call_id": "rtc_other"},
        call_id="rtc_abc",
    )
    assert url == "wss://example.com/v1/realtime?trace=1&call_id=rtc_abc"


def test_websocket_url_form_encodes_appended_values_like_whatwg() -> None:
    url = realtime_websocket_url(
        "https://example.com", version="v2", model="a b&c", query_params={"k~": "x*y/z"}
    )
    assert url == "wss://example.com/v1/realtime?model=a+b%26c&k%7E=x*y%2Fz"


def test_websocket_url_drops_fragment() -> None:
    url = realtime_websocket_url("https://example.com/v1#frag", version="v2")
    assert url == "wss://example.com/v1/realtime"


def test_websocket_url_keeps_userinfo_and_port() -> None:
    url = realtime_websocket_url("https://user:pw@example.com:8443/v1", version="v2")
    assert url == "wss://user:pw@example.com:8443/v1/realtime"


def test_websocket_url_rejects_unsupported_scheme() -> None:
    with pytest.raises(LocalProtocolError, match=r"^unsupported realtime api_url scheme: ftp$"):
        realtime_websocket_url("ftp://example.com", version="v1")


def test_websocket_url_rejects_url_without_host() -> None:
    with pytest.raises(LocalProtocolError, match="no host"):
        realtime_websocket_url("https:///v1", version="v1")


def test_websocket_url_errors_never_echo_credentials() -> None:
    with pytest.raises(LocalProtocolError) as info:
        realtime_websocket_url("https://user:sk-secret@[::1/v1", version="v2")
    assert "sk-secret" not in str(info.value)


def test_websocket_url_rejects_unknown_version_and_mode() -> None:
    with pytest.raises(LocalProtocolError, match="unknown protocol version"):
        realtime_websocket_url("https://example.com", version="v9")
    with pytest.raises(LocalProtocolError, match="unknown session mode"):
        realtime_websocket_url("https://example.com", version="v1", mode="karaoke")


def test_websocket_url_rejects_empty_call_id() -> None:
    with pytest.raises(LocalProtocolError, match="call id must not be empty"):
        realtime_websocket_url("https://example.com", version="v2", call_id="")


# --- realtime_calls_url (codex calls.rs / realtime_call.rs) --------------------------------


def test_realtime_calls_url_uses_calls_path() -> None:
    assert (
        realtime_calls_url("wss://api.openai.com/v1/realtime")
        == "https://api.openai.com/v1/realtime/calls"
    )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1/realtime/calls"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1/realtime/calls"),
        ("http://127.0.0.1:8011", "http://127.0.0.1:8011/v1/realtime/calls"),
        ("ws://127.0.0.1:8011/v1/realtime/", "http://127.0.0.1:8011/v1/realtime/calls"),
        ("https://example.com/v1/realtime/calls", "https://example.com/v1/realtime/calls"),
        (
            "https://chatgpt.com/backend-api/codex",
            "https://chatgpt.com/backend-api/codex/realtime/calls",
        ),
    ],
)
def test_realtime_calls_url_normalises_path(base: str, expected: str) -> None:
    assert realtime_calls_url(base) == expected


def test_realtime_calls_url_drops_websocket_query_and_appends_query_params() -> None:
    url = realtime_calls_url(
        "wss://example.com/v1/realtime?intent=quicksilver&model=m",
        query_params={"api-version": "2025-08-28"},
    )
    assert url == "https://example.com/v1/realtime/calls?api-version=2025-08-28"


def test_realtime_calls_url_rejects_unsupported_scheme() -> None:
    with pytest.raises(LocalProtocolError, match=r"^unsupported realtime api_url scheme: file$"):
        realtime_calls_url("file:///tmp/x")


# --- call_id_from_location (codex realtime_call.rs tests) ----------------------------------


def test_call_id_from_location_extracts_last_path_segment() -> None:
    assert call_id_from_location("/v1/realtime/calls/rtc_test") == "rtc_test"


def test_extracts_call_id_from_forwarded_backend_location() -> None:
    assert call_id_from_location("/v1/realtime/calls/calls/rtc_backend_test") == "rtc_backend_test"


def test_call_id_from_location_strips_query_and_accepts_absolute_url() -> None:
    location = "https://api.openai.com/v1/realtime/calls/rtc_abc?intent=quicksilver"
    assert call_id_from_location(location) == "rtc_abc"


def test_errors_when_location_is_missing() -> None:
    with pytest.raises(LocalProtocolError) as info:
        call_id_from_location(None)
    assert str(info.value) == "realtime call response missing Location"


def test_rejects_location_without_call_id() -> None:
    with pytest.raises(LocalProtocolError) as info:
        call_id_from_location("/v1/realtime/calls")
    assert str(info.value) == (
        "realtime call Location does not contain a call id: /v1/realtime/calls"
    )


@pytest.mark.parametrize("location", ["", "/v1/realtime/calls/rtc_", "/rtc_/x", "/v1/rtc"])
def test_call_id_from_location_rejects_segments_that_are_not_call_ids(location: str) -> None:
    with pytest.raises(LocalProtocolError, match="does not contain a call id"):
        call_id_from_location(location)


def test_call_id_from_location_bounds_the_echoed_location() -> None:
    with pytest.raises(LocalProtocolError) as info:
        call_id_from_location("/" + "x" * 10_000)
    assert len(str(info.value)) < 300


# --- multipart_call_body (codex sends_api_session_call_as_multipart_body) ------------------


def test_sends_api_session_call_as_multipart_body() -> None:
    session = {"type": "realtime", "model": "gpt-realtime", "instructions": "hi"}
    content_type, body = multipart_call_body(
        "v=offer\r\n", session, boundary="codex-realtime-call-boundary"
    )

    assert content_type == "multipart/form-data; boundary=codex-realtime-call-boundary"
    session_json = orjson.dumps(session).decode()
    assert body.decode() == (
        "--codex-realtime-call-boundary\r\n"
        'Content-Disposition: form-data; name="sdp"\r\n'
        "Content-Type: application/sdp\r\n"
        "\r\n"
        "v=offer\r\n"
        "\r\n"
        "--codex-realtime-call-boundary\r\n"
        'Content-Disposition: form-data; name="session"\r\n'
        "Content-Type: application/json\r\n"
        "\r\n"
        f"{session_json}\r\n"
        "--codex-realtime-call-boundary--\r\n"
    )


def test_session_form_contains_offer_and_session() -> None:
    content_type, body = multipart_call_body("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", {"model": "m"})
    assert content_type == f"multipart/form-data; boundary={DEFAULT_MULTIPART_BOUNDARY}"
    assert body.startswith(f"--{DEFAULT_MULTIPART_BOUNDARY}\r\n".encode())
    assert body.endswith(f"--{DEFAULT_MULTIPART_BOUNDARY}--\r\n".encode())
    assert b"o=- 1 1 IN IP4 0.0.0.0\r\n" in body
    assert b'{"model":"m"}\r\n' in body


def test_multipart_call_body_encodes_non_ascii_as_utf8() -> None:
    _, body = multipart_call_body("v=0\r\n", {"instructions": "héllo ☃"})
    assert "héllo ☃".encode() in body


def test_multipart_call_body_quotes_a_boundary_that_is_not_a_token() -> None:
    content_type, _ = multipart_call_body("v=0\r\n", {}, boundary="a:b")
    assert content_type == 'multipart/form-data; boundary="a:b"'


@pytest.mark.parametrize("boundary", ["", "x" * 71, "ends-with-space ", 'has"quote', "new\nline"])
def test_multipart_call_body_rejects_invalid_boundary(boundary: str) -> None:
    with pytest.raises(LocalProtocolError, match="boundary"):
        multipart_call_body("v=0\r\n", {}, boundary=boundary)


def test_multipart_call_body_rejects_boundary_that_occurs_in_the_content() -> None:
    with pytest.raises(LocalProtocolError, match="occurs inside"):
        multipart_call_body("v=0\r\n--b\r\n", {}, boundary="b")


def test_multipart_call_body_rejects_unserialisable_session() -> None:
    with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
        multipart_call_body("v=0\r\n", {"x": object()})


# --- realtime_headers (codex realtime_request_headers) -------------------------------------


def test_uses_quicksilver_alpha_header_for_realtime_v1() -> None:
    headers = realtime_headers(api_key="sk-test", session_id="session_1", version="v1")
    assert headers["openai-alpha"] == "quicksilver=v1"


def test_omits_quicksilver_alpha_header_for_realtime_v2() -> None:
    headers = realtime_headers(api_key="sk-test", session_id="session_1", version="v2")
    assert "openai-alpha" not in headers


def test_realtime_headers_carry_bearer_key_and_session_id() -> None:
    headers = realtime_headers(api_key="dummy", session_id="conv_1", version="v2")
    assert headers == {"authorization": "Bearer dummy", "x-session-id": "conv_1"}


def test_realtime_headers_without_key_have_no_authorization() -> None:
    headers = realtime_headers(api_key=None, session_id="conv_1", version="v2")
    assert headers == {"x-session-id": "conv_1"}


def test_realtime_headers_explicit_arguments_override_extra() -> None:
    headers = realtime_headers(
        api_key="sk-real",
        session_id="sess",
        extra={"Authorization": "Bearer stale", "X-Session-Id": "old", "X-Trace": "1"},
        version="v2",
    )
    assert headers == {"authorization": "Bearer sk-real", "x-session-id": "sess", "x-trace": "1"}


def test_realtime_headers_strip_whitespace_around_the_key() -> None:
    headers = realtime_headers(api_key="  sk-file\n", version="v2")
    assert headers["authorization"] == "Bearer sk-file"


def test_realtime_headers_reject_blank_key() -> None:
    with pytest.raises(LocalProtocolError, match="api key is empty"):
        realtime_headers(api_key="  ", version="v2")


def test_realtime_headers_never_echo_a_bad_key() -> None:
    with pytest.raises(LocalProtocolError) as info:
        realtime_headers(api_key="sk-abc\r\nx-evil: 1", version="v2")
    assert "sk-abc" not in str(info.value)


def test_realtime_headers_never_echo_a_bad_extra_value() -> None:
    with pytest.raises(LocalProtocolError) as info:
        realtime_headers(api_key=None, extra={"authorization": "Bearer sk-x\n"}, version="v2")
    assert "sk-x" not in str(info.value)
    assert "authorization" in str(info.value)


def test_realtime_headers_reject_invalid_header_name() -> None:
    with pytest.raises(LocalProtocolError, match="invalid header name"):
        realtime_headers(api_key=None, extra={"bad name": "v"}, version="v2")


def test_realtime_headers_feed_merge_headers_as_extra() -> None:
    extra = realtime_headers(api_key="k", version="v2")
    merged = merge_headers({"Authorization": "Bearer provider"}, extra, {"user-agent": "duplex"})
    assert merged == {"authorization": "Bearer k", "user-agent": "duplex"}
