"""URLs, request headers and the WebRTC call body for connecting to a realtime server.

Everything here is a pure function of its arguments (codex-realtime.md §3, §8.2; SPEC §2).

Invariants:
- The websocket URL is ``<base>/realtime`` with the path normalised as codex does: an empty
  path becomes ``/v1/realtime``; ``…/realtime`` is kept (``…/realtime/`` loses the slash);
  ``…/v1`` and ``…/v1/`` gain ``realtime``; any other path is left alone. ``http``/``https``
  become ``ws``/``wss``; ``ws``/``wss`` are kept; any other scheme is a
  ``LocalProtocolError``.
- Query order: whatever query the base URL already has (verbatim), then ``intent``, then
  ``model``, then the provider's ``query_params``, then ``call_id`` (sideband join only).
  The intent follows SPEC §2, not codex's "v2 never sends an intent":

  ====  ==============  ============================  ===============
  ver   mode            intent                        model
  ====  ==============  ============================  ===============
  v1    conversational  ``quicksilver``               if given
  v1    transcription   ``transcription``             if given
  v2    conversational  (none)                        if given
  v2    transcription   ``transcription``             never
  ====  ==============  ============================  ===============

  A sideband join (``call_id`` given) keeps the intent, never carries a model, and puts
  ``call_id`` last.
- Provider ``query_params`` never override what the dialect decides: ``intent`` is always
  dropped, ``model`` is dropped whenever the URL already has a model *or* must not carry one
  (v2 transcription, sideband join), and ``call_id`` is dropped on a sideband join. Codex only
  drops ``model`` when it added one itself; dropping it where the dialect forbids a model
  keeps the table above true whatever the provider configuration says.
- Appended query values are ``application/x-www-form-urlencoded`` exactly as the WHATWG
  serializer (Rust's ``url`` crate) writes them: space is ``+``, only ``*-._`` and
  alphanumerics stay literal.
- A fragment in the base URL is dropped: RFC 6455 §3 forbids fragments in websocket URIs.
- No exception message built here contains a URL, a header value or an API key: the URL may
  carry credentials in its userinfo and header values carry bearer tokens. Messages name the
  offending *part* (the scheme, the header name) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import SplitResult, quote_plus, urlsplit, urlunsplit

import orjson

from ._enums import ProtocolVersion, SessionMode, coerce_version
from ._errors import LocalProtocolError

__all__ = [
    "DEFAULT_MULTIPART_BOUNDARY",
    "QUICKSILVER_ALPHA_HEADER",
    "call_id_from_location",
    "merge_headers",
    "multipart_call_body",
    "realtime_calls_url",
    "realtime_headers",
    "realtime_websocket_url",
]

DEFAULT_MULTIPART_BOUNDARY: Final = "duplex-realtime-call-boundary"

#: the header (name, value) v1 sessions send to opt into the quicksilver backend (codex §3.4)
QUICKSILVER_ALPHA_HEADER: Final = ("openai-alpha", "quicksilver=v1")

_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

_CALL_ID_PREFIX: Final = "rtc_"
# Bounds the server-provided Location echoed in an error, so a hostile server cannot make
# the message (and every log line that carries it) arbitrarily large.
_LOCATION_PREVIEW_CHARS: Final = 200

# RFC 7230 token characters: all a header name may hold, and what a boundary may hold
# unquoted in a Content-Type parameter.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, space and tab. Rejecting CR/LF/NUL here stops header injection, and
# rejecting it *before* the HTTP library sees the value keeps a bearer token out of that
# library's error message.
_HEADER_VALUE_RE: Final = re.compile(r"[\t\x20-\x7e]*")
# RFC 2046 §5.1.1 ``bchars`` (space allowed, but not last), 1–70 characters.
_BOUNDARY_RE: Final = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def realtime_websocket_url(
    base_url: str,
    *,
    version: ProtocolVersion | str,
    mode: SessionMode | str = "conversational",
    model: str | None = None,
    query_params: Mapping[str, str] | None = None,
    call_id: str | None = None,
) -> str:
    """The websocket URL of a realtime session at ``base_url`` (see the module docstring).

    ``model`` ``None`` or ``""`` means "no model". ``call_id`` turns the URL into a sideband
    join of an existing WebRTC call (codex §8.2 step 5).
    """
    ver = coerce_version(version)
    session_mode = _coerce_mode(mode)
    if call_id is not None and not call_id:
        raise LocalProtocolError("realtime call id must not be empty")

    parts = _split(base_url)
    scheme = _WS_SCHEMES.get(parts.scheme)
    if scheme is None:
        raise LocalProtocolError(f"unsupported realtime api_url scheme: {parts.scheme}")
    _require_host(parts)

    if session_mode is SessionMode.TRANSCRIPTION:
        intent: str | None = "transcription"
    elif ver is ProtocolVersion.V1:
        intent = "quicksilver"
    else:
        intent = None
    model_allowed = call_id is None and not (
        ver is ProtocolVersion.V2 and session_mode is SessionMode.TRANSCRIPTION
    )
    url_model = model if (model and model_allowed) else None

    pairs: list[tuple[str, str]] = []
    if intent is not None:
        pairs.append(("intent", intent))
    if url_model is not None:
        pairs.append(("model", url_model))
    if query_params:
        for key, value in query_params.items():
            if key == "intent":
                continue
            if key == "model" and (url_model is not None or not model_allowed):
                continue
            if key == "call_id" and call_id is not None:
                continue
            pairs.append((key, value))
    if call_id is not None:
        pairs.append(("call_id", call_id))

    path = _normalise_realtime_path(parts.path)
    return urlunsplit((scheme, parts.netloc, path, _join_query(parts.query, pairs), ""))


def realtime_calls_url(base_url: str, *, query_params: Mapping[str, str] | None = None) -> str:
    """The HTTP(S) URL to POST a WebRTC call offer to: ``<base>/realtime/calls``.

    Accepts the same base URLs as ``realtime_websocket_url`` (``ws``→``http``,
    ``wss``→``https``) and a websocket URL already ending in ``/realtime``, so one configured
    base serves both legs. Paths: empty → ``/v1/realtime/calls``; ``…/realtime/calls`` is
    kept; ``…/realtime`` and ``…/v1`` are extended; any other path (e.g. codex's
    ``/backend-api/codex``) gets ``/realtime/calls`` appended, as codex's HTTP client joins
    paths. The base URL's own query is dropped — it is websocket-shaped (``intent``,
    ``model``) and codex's call POST carries none; ``query_params`` (e.g. an Azure
    ``api-version``) are appended instead.
    """
    parts = _split(base_url)
    scheme = _HTTP_SCHEMES.get(parts.scheme)
    if scheme is None:
        raise LocalProtocolError(f"unsupported realtime api_url scheme: {parts.scheme}")
    _require_host(parts)

    path = parts.path
    if path in ("", "/"):
        path = "/v1/realtime/calls"
    elif path.endswith("/realtime/calls/"):
        path = path[:-1]
    elif path.endswith("/realtime/calls"):
        pass
    elif path.endswith(("/realtime", "/realtime/")):
        path = path.rstrip("/") + "/calls"
    else:
        # "/v1", "/v1/" and any other prefix alike: codex's HTTP client joins paths.
        path = path.rstrip("/") + "/realtime/calls"
    pairs = list(query_params.items()) if query_params else []
    return urlunsplit((scheme, parts.netloc, path, _join_query("", pairs), ""))


def call_id_from_location(location: str | None) -> str:
    """The WebRTC call id in the ``Location`` header of a call-creation response.

    As codex (``realtime_call.rs``): drop the query, then take the right-most path segment
    that starts with ``rtc_`` and has more after it, so ``/v1/realtime/calls/rtc_test`` and
    ``/v1/realtime/calls/calls/rtc_backend_test`` both work, as does an absolute URL. The
    fragment is dropped too (codex never sees one). Only a missing header (``None``) is
    "missing"; an empty one "does not contain a call id".
    """
    if location is None:
        raise LocalProtocolError("realtime call response missing Location")
    path = location.split("?", 1)[0].split("#", 1)[0]
    for segment in reversed(path.split("/")):
        if segment.startswith(_CALL_ID_PREFIX) and len(segment) > len(_CALL_ID_PREFIX):
            return segment
    preview = location
    if len(preview) > _LOCATION_PREVIEW_CHARS:
        preview = preview[:_LOCATION_PREVIEW_CHARS] + "…"
    raise LocalProtocolError(f"realtime call Location does not contain a call id: {preview}")


def merge_headers(
    provider: Mapping[str, str] | None,
    extra: Mapping[str, str] | None,
    default: Mapping[str, str] | None,
) -> dict[str, str]:
    """Merge request headers with codex's ``merge_request_headers`` precedence.

    ``extra`` overrides ``provider``; ``default`` only fills names still absent. Names are
    compared case-insensitively and returned lower-case (HTTP/1.1 names are
    case-insensitive; h11 and the ``http`` crate both lower-case them). Within one mapping,
    two spellings of the same name resolve to the later one. Values are not validated here;
    ``realtime_headers`` validates the values it builds.
    """
    merged: dict[str, str] = {}
    for source in (provider, extra):
        if source:
            for name, value in source.items():
                merged[name.lower()] = value
    if default:
        for name, value in default.items():
            merged.setdefault(name.lower(), value)
    return merged


def realtime_headers(
    *,
    api_key: str | None,
    session_id: str | None = None,
    extra: Mapping[str, str] | None = None,
    version: ProtocolVersion | str,
) -> dict[str, str]:
    """The "extra" headers of a realtime connection (codex ``realtime_request_headers``).

    - ``authorization: Bearer <api_key>`` when a key is given (leading/trailing whitespace is
      stripped, as a key read from a file often ends in a newline; a blank key is an error
      rather than a silently unauthenticated request). Pass ``None`` for the WebRTC call leg
      when auth is added elsewhere.
    - ``x-session-id: <session_id>`` when given.
    - ``openai-alpha: quicksilver=v1`` for v1 (codex S-JUN), nothing for v2.
    - ``extra`` entries, lower-cased. The three headers above are decided by typed arguments,
      so they override a same-named ``extra`` entry: a stray ``Authorization`` in a provider
      config cannot replace the key the caller passed explicitly.

    Every name must be an RFC 7230 token and every value visible ASCII, space or tab; a
    violation raises ``LocalProtocolError`` naming the header but never showing its value.
    Feed the result to ``merge_headers`` as its ``extra`` argument.
    """
    ver = coerce_version(version)
    headers: dict[str, str] = {}
    if extra:
        for name, value in extra.items():
            _check_header(name, value)
            headers[name.lower()] = value
    if ver is ProtocolVersion.V1:
        headers[QUICKSILVER_ALPHA_HEADER[0]] = QUICKSILVER_ALPHA_HEADER[1]
    if session_id is not None:
        _check_header("x-session-id", session_id)
        headers["x-session-id"] = session_id
    if api_key is not None:
        key = api_key.strip()
        if not key:
            raise LocalProtocolError("realtime api key is empty")
        if not _HEADER_VALUE_RE.fullmatch(key):
            raise LocalProtocolError(
                "realtime api key contains characters not allowed in a header value"
            )
        headers["authorization"] = f"Bearer {key}"
    return headers


def multipart_call_body(
    sdp: str,
    session: Mapping[str, Any],
    *,
    boundary: str = DEFAULT_MULTIPART_BOUNDARY,
) -> tuple[str, bytes]:
    """``(content_type, body)`` of the WebRTC call POST: the offer plus the initial session.

    The layout is byte-for-byte codex's (``realtime_call.rs``; codex §8.2): a ``sdp`` part
    (``application/sdp``) and a ``session`` part (``application/json``, compact orjson), each
    followed by CRLF, then the closing delimiter and CRLF. The SDP is sent verbatim (it
    normally already ends in CRLF). ``session`` is sent as given — codex strips the session
    ``id`` before posting; do that in the caller.

    The boundary must be 1–70 RFC 2046 characters and must not occur in either part; it is
    quoted in the content type only when it is not an RFC 7230 token.
    """
    if not _BOUNDARY_RE.fullmatch(boundary):
        raise LocalProtocolError(
            "multipart boundary must be 1-70 characters of [0-9A-Za-z'()+_,-./:=? ] "
            "and must not end with a space"
        )
    try:
        session_json = orjson.dumps(session if isinstance(session, dict) else dict(session))
    except TypeError as exc:
        # orjson.JSONEncodeError is a TypeError; its message names the type, not the value.
        raise LocalProtocolError(f"realtime call session is not JSON-serialisable: {exc}") from None
    sdp_bytes = sdp.encode("utf-8")
    delimiter = b"--" + boundary.encode("ascii")
    if delimiter in sdp_bytes or delimiter in session_json:
        raise LocalProtocolError(
            "multipart boundary occurs inside the SDP or the session; choose another boundary"
        )
    body = b"".join(
        (
            delimiter,
            b'\r\nContent-Disposition: form-data; name="sdp"\r\n',
            b"Content-Type: application/sdp\r\n\r\n",
            sdp_bytes,
            b"\r\n",
            delimiter,
            b'\r\nContent-Disposition: form-data; name="session"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            session_json,
            b"\r\n",
            delimiter,
            b"--\r\n",
        )
    )
    shown = boundary if _TOKEN_RE.fullmatch(boundary) else f'"{boundary}"'
    return f"multipart/form-data; boundary={shown}", body


def _coerce_mode(mode: SessionMode | str) -> SessionMode:
    if isinstance(mode, SessionMode):
        return mode
    try:
        return SessionMode(mode)
    except ValueError:
        raise LocalProtocolError(
            f"unknown session mode {mode!r}; expected 'conversational' or 'transcription'"
        ) from None


def _split(base_url: str) -> SplitResult:
    try:
        return urlsplit(base_url.strip())
    except ValueError:
        # urlsplit's message may quote the URL, which may carry credentials.
        raise LocalProtocolError("failed to parse realtime api_url") from None


def _require_host(parts: SplitResult) -> None:
    if not parts.netloc:
        raise LocalProtocolError("realtime api_url has no host")


def _normalise_realtime_path(path: str) -> str:
    if path in ("", "/"):
        return "/v1/realtime"
    if path.endswith("/realtime"):
        return path
    if path.endswith("/realtime/"):
        return path.rstrip("/")
    if path.endswith("/v1"):
        return path + "/realtime"
    if path.endswith("/v1/"):
        return path + "realtime"
    return path


def _form_encode(text: str) -> str:
    # quote_plus keeps "~" literal (RFC 3986 unreserved); WHATWG form encoding escapes it.
    return quote_plus(text, safe="*").replace("~", "%7E")


def _join_query(existing: str, pairs: Iterable[tuple[str, str]]) -> str:
    encoded = "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in pairs)
    if not existing:
        return encoded
    if not encoded:
        return existing
    return f"{existing}&{encoded}"


def _check_header(name: str, value: str) -> None:
    if not _TOKEN_RE.fullmatch(name):
        raise LocalProtocolError(f"invalid header name {name[:64]!r}")
    if not _HEADER_VALUE_RE.fullmatch(value):
        raise LocalProtocolError(
            f"header {name!r} has a value with characters not allowed in a header value"
        )
