"""Handoff text: what a delegation request says, and the fixed texts of handoff replies.

- ``extract_handoff_text`` turns a v2 handoff tool call's ``arguments`` into the request
  text (codex-realtime.md §5.4).
- ``handoff_request_text`` / ``delegation_text`` / ``wrap_delegation_input`` render a
  ``HandoffRequested`` as the ``<realtime_delegation>`` text a host hands its agent (§7.6).
- The constants are the exact strings codex sends back (§2, §4.6, §7.6).

Invariants:
- ``extract_handoff_text`` never raises on any ``str``: invalid JSON, huge numbers, deep
  nesting and lone surrogates all fall back to returning the arguments unchanged.
- Delegation text escapes ``&``, ``<`` and ``>`` (in that order, so nothing is escaped
  twice) and nothing else; it is element content, never an attribute.

Decisions where codex is silent:
- A whitespace-only ``input_transcript`` counts as empty, so delegation falls back to the
  transcript lines instead of delegating a blank request (codex tests only ``""``).
- ``delegation_text`` returns ``""`` when there is nothing to delegate (codex: ``None``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import orjson

from ._events import HandoffRequested
from ._items import TranscriptEntry

__all__ = [
    "AGENT_FINAL_MESSAGE_PREFIX",
    "BACKEND_PREFIX",
    "FINAL_OUTPUT_TEXT",
    "HANDOFF_ARGUMENT_KEYS",
    "STEERING_ACK_TEXT",
    "USER_PREFIX",
    "delegation_text",
    "extract_handoff_text",
    "handoff_request_text",
    "prefix_text",
    "transcript_lines",
    "wrap_delegation_input",
]

#: v1: prefix of the final ``conversation.handoff.append`` output text
AGENT_FINAL_MESSAGE_PREFIX: Final = '"Agent Final Message":\n\n'
#: v2: ``function_call_output`` sent to a second handoff while one is active ("steering")
STEERING_ACK_TEXT: Final = "This was sent to steer the previous background agent task."
#: v2: ``function_call_output`` that closes a handoff once the agent's turn is complete
FINAL_OUTPUT_TEXT: Final = (
    "Background agent finished. Use the preceding [BACKEND] messages as the result."
)
#: v2: prefix of agent progress messages mirrored into the conversation
BACKEND_PREFIX: Final = "[BACKEND] "
#: v2: prefix of user text sent into the conversation
USER_PREFIX: Final = "[USER] "

#: keys of the tool-call arguments object that may hold the request, in priority order
HANDOFF_ARGUMENT_KEYS: Final = ("input_transcript", "input", "text", "prompt", "query")


def extract_handoff_text(arguments: str) -> str:
    """The request text of a handoff tool call's JSON ``arguments`` string.

    Empty → ``""``. A JSON object → the first string among ``HANDOFF_ARGUMENT_KEYS`` that is
    non-empty after trimming, returned *trimmed* (as codex's ``extract_input_transcript``
    does). Anything else — no such key, a non-object, invalid JSON — → ``arguments``
    unchanged, so a model that ignored the schema still gets its words delegated.
    """
    if not arguments:
        return ""
    # Plain-text arguments are common enough (and possibly long) to skip the parser for.
    if not arguments.lstrip().startswith("{"):
        return arguments
    try:
        parsed = orjson.loads(arguments)
    except (ValueError, TypeError, RecursionError):
        # orjson.JSONDecodeError is a ValueError and covers integers beyond 64 bits,
        # nesting beyond its limit and unencodable surrogates.
        return arguments
    if isinstance(parsed, dict):
        for key in HANDOFF_ARGUMENT_KEYS:
            value = parsed.get(key)
            if isinstance(value, str):
                trimmed = value.strip()
                if trimmed:
                    return trimmed
    return arguments


def prefix_text(text: str, prefix: str) -> str:
    """``prefix + text``, unless ``text`` is empty or already starts with ``prefix``
    (codex ``prefix_realtime_text``), so re-sending a message never stacks prefixes."""
    if not text or text.startswith(prefix):
        return text
    return prefix + text


def transcript_lines(entries: Iterable[TranscriptEntry]) -> str:
    """``"role: text"`` per entry, joined by newlines (``""`` for no entries)."""
    return "\n".join(f"{entry.role}: {entry.text}" for entry in entries)


def handoff_request_text(event: HandoffRequested) -> str:
    """What the handoff asks for: ``input_transcript`` if it is not blank, else the
    ``active_transcript`` lines, else ``""`` (codex ``realtime_text_from_handoff_request``)."""
    if event.input_transcript.strip():
        return event.input_transcript
    return transcript_lines(event.active_transcript)


def delegation_text(event: HandoffRequested) -> str:
    """The ``<realtime_delegation>`` text to hand the agent for ``event`` (codex §7.6), or
    ``""`` when the handoff carries neither input nor transcript."""
    request = handoff_request_text(event)
    if not request:
        return ""
    return wrap_delegation_input(request, transcript_lines(event.active_transcript))


def wrap_delegation_input(input_text: str, transcript_delta: str | None = None) -> str:
    """Wrap ``input_text`` (and, if non-empty, ``transcript_delta``) in
    ``<realtime_delegation>``, XML-escaped, exactly as codex's
    ``wrap_realtime_delegation_input`` lays it out."""
    escaped_input = _escape_xml(input_text)
    if transcript_delta:
        return (
            "<realtime_delegation>\n"
            f"  <input>{escaped_input}</input>\n"
            f"  <transcript_delta>{_escape_xml(transcript_delta)}</transcript_delta>\n"
            "</realtime_delegation>"
        )
    return f"<realtime_delegation>\n  <input>{escaped_input}</input>\n</realtime_delegation>"


def _escape_xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
