"""What the scripted model answers: the reply rules, apart from how a reply is streamed.

``ScriptedModel`` (``_model``) keeps the conversation (``_items``); ``ResponseStreams``
(``_responses``) asks for a ``Reply`` and hands it to the builder that turns it into wire
events (``_response_builders``). This module holds the decision in between, as pure
functions of the configuration, the session and the conversation's items, so each rule can be
read (and tested) without a running model:

- a text containing ``silence_phrase`` → ``silent`` (a v2 model calls the silence tool);
- v2: declared tools the text names (``tool_triggers`` phrases, names after
  ``tool_call_word``) → ``tools``, in the order they appear;
- ``trigger_phrase`` → ``handoff`` (v1 ``handoff.requested``, v2 the handoff tool);
- ``recall_phrase`` → the previous user text the conversation holds;
- tool results → spoken back (a handoff's output as is, a host tool's with its name);
- MCP tools the text names, and answers to MCP approval requests → ``mcp`` (``_mcp``);
- anything else → ``f"{reply_prefix}{text}."``.

Invariants: nothing here mutates its arguments; unknown or malformed session values (a
``tools`` entry that is not a function object, a ``tool_choice`` naming an undeclared tool)
read as absent, never as an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from duplex.protocol import ProtocolVersion

from ._config import SimulatorConfig
from ._mcp import McpCall, McpOffer
from ._session_shape import item_text

__all__ = [
    "Reply",
    "arguments_for",
    "decide",
    "forced_tool",
    "handoff_tool",
    "last_user_text",
    "tool_names",
]

Event = dict[str, Any]
_WORD: Final = re.compile(r"[\w.\-]+")


@attrs.frozen
class Reply:
    """What the model decided to do about its input."""

    kind: Literal["say", "handoff", "silent", "tools", "mcp"]
    text: str
    tools: tuple[str, ...] = ()
    mcp: tuple[McpCall, ...] = ()


def decide(
    pending: Sequence[Event],
    tools: Sequence[str],
    *,
    config: SimulatorConfig,
    version: ProtocolVersion,
    items: Mapping[str, Event],
    order: Sequence[str],
    handoff: str | None,
    mcp: Mapping[str, McpOffer] | None = None,
) -> Reply:
    """What to do about the unanswered input: speak a text, hand off a prompt, call the
    silence tool or the tools the user named (``mcp``: the MCP servers' tools, by name)."""
    outputs: list[Event] = []
    for item in reversed(pending):
        if item.get("type") in ("function_call_output", "mcp_approval_response"):
            outputs.insert(0, item)
            continue
        if outputs:
            break
        text = _turn_text(item)
        if text is not None:
            return _reply_to_text(text, tools, config, version, items, order, mcp or {})
    approvals = _approved_calls(outputs, items)
    if approvals:
        return Reply("mcp", "", mcp=approvals)
    if outputs:
        return Reply("say", _say_outputs(outputs, items, handoff))
    return Reply("say", "I am listening.")


def _reply_to_text(
    text: str,
    tools: Sequence[str],
    config: SimulatorConfig,
    version: ProtocolVersion,
    items: Mapping[str, Event],
    order: Sequence[str],
    mcp: Mapping[str, McpOffer],
) -> Reply:
    lowered = text.lower()
    if config.silence_phrase and config.silence_phrase.lower() in lowered:
        return Reply("silent", text)
    if version is ProtocolVersion.V2:
        named = _named_tools(text, [*tools, *(n for n in mcp if n not in tools)], config)
        if named and named[0] in mcp and named[0] not in tools:
            # The first tool named is an MCP server's: this turn calls MCP tools only.
            calls = tuple(
                McpCall(
                    mcp[n].server_label,
                    n,
                    arguments_for(n, text, config, None),
                    needs_approval=mcp[n].needs_approval,
                )
                for n in named
                if n in mcp and n not in tools
            )
            return Reply("mcp", text, mcp=calls)
        named = [n for n in named if n in tools]
        if named:
            return Reply("tools", text, tuple(named))
    if config.trigger_phrase.lower() in lowered:
        return Reply("handoff", text)
    if config.recall_phrase and config.recall_phrase.lower() in lowered:
        return Reply("say", _recall(text, items, order))
    return Reply("say", f"{config.reply_prefix}{text}.")


def _named_tools(text: str, tools: Sequence[str], config: SimulatorConfig) -> list[str]:
    """Declared tools the text asks for: ``tool_triggers`` phrases, and tool names after
    ``tool_call_word`` (``"call a and b"``), in the order they appear."""
    found: list[tuple[int, str]] = []
    lowered = text.lower()
    for phrase, tool in config.tool_triggers.items():
        at = lowered.find(phrase.lower())
        if at >= 0 and tool in tools:
            found.append((at, tool))
    word = config.tool_call_word.lower()
    if word:
        words = [(m.start(), m.group().rstrip(".")) for m in _WORD.finditer(text)]
        after = next((i for i, (_, w) in enumerate(words) if w.lower() == word), None)
        if after is not None:
            found.extend((pos, w) for pos, w in words[after + 1 :] if w in tools)
    names: list[str] = []
    for _, tool in sorted(found):
        if tool not in names:
            names.append(tool)
    return names


def _recall(text: str, items: Mapping[str, Event], order: Sequence[str]) -> str:
    """The previous user text the conversation holds (before the one asking)."""
    seen_current = False
    for item_id in reversed(order):
        item = items.get(item_id) or {}
        if item.get("type") != "message" or item.get("role") != "user":
            continue
        said = item_text(item)
        if said is None:
            continue
        if not seen_current and said == text:
            seen_current = True
            continue
        return f"Before that you said: {said}."
    return "You have not said anything before."


def _approved_calls(answers: Sequence[Event], items: Mapping[str, Event]) -> tuple[McpCall, ...]:
    """The MCP calls the client's approval answers decide: each answered request's call,
    approved or not (answers to unknown requests are ignored)."""
    calls: list[McpCall] = []
    for answer in answers:
        if answer.get("type") != "mcp_approval_response":
            continue
        request = items.get(str(answer.get("approval_request_id")))
        if request is None or request.get("type") != "mcp_approval_request":
            continue
        calls.append(
            McpCall(
                str(request.get("server_label")),
                str(request.get("name")),
                str(request.get("arguments") or "{}"),
                approval_request_id=str(request["id"]),
                approved=answer.get("approve") is True,
            )
        )
    return tuple(calls)


def _say_outputs(outputs: Sequence[Event], items: Mapping[str, Event], handoff: str | None) -> str:
    """The reply to tool results: a handoff's output is spoken as is; a host tool's
    result is mentioned with the tool's name."""
    calls = {
        i.get("call_id"): i.get("name") for i in items.values() if i.get("type") == "function_call"
    }
    said: list[str] = []
    for out in outputs:
        text = str(out.get("output") or "")
        name = calls.get(out.get("call_id"))
        if name is None or name == handoff:
            said = [text]  # the handoff (or v1 handoff.append) reply: only the latest
            continue
        said.append(f"{name} returned {text}.")
    return " ".join(said)


def tool_names(session: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> list[str]:
    """The function tools in effect: the response's ``tools`` override, else the session's."""
    tools = (overrides or {}).get("tools")
    if not isinstance(tools, list):
        tools = session.get("tools") or []
    return [
        str(t.get("name")) for t in tools if isinstance(t, dict) and t.get("type") == "function"
    ]


def handoff_tool(session: Mapping[str, Any], config: SimulatorConfig) -> str | None:
    """The session's handoff tool: ``handoff_tool_name`` if declared, else any function
    tool with a ``prompt`` parameter (codex's later ``background_agent``), else none."""
    if config.handoff_tool_name in tool_names(session):
        return config.handoff_tool_name
    for tool in session.get("tools") or []:
        params = tool.get("parameters") if isinstance(tool, dict) else None
        props = params.get("properties") if isinstance(params, dict) else None
        if isinstance(props, dict) and "prompt" in props:
            return str(tool.get("name"))
    return None


def arguments_for(tool: str, text: str, config: SimulatorConfig, handoff: str | None) -> str:
    """The ``arguments`` JSON of a scripted call: the tool's ``tool_arguments`` template
    with ``{text}`` filled in, ``{"prompt": text}`` for the handoff tool, else ``{}``."""
    template = config.tool_arguments.get(tool)
    if template is None:
        return _json_dumps({"prompt": text}) if tool == handoff else "{}"
    return template.replace("{text}", json.dumps(text, ensure_ascii=False)[1:-1])


def forced_tool(choice: Any, tools: Sequence[str], config: SimulatorConfig) -> str | None:
    """The tool ``tool_choice`` makes the model call: the named function, or with
    ``"required"`` the first declared tool that is not the silence tool."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        return name if isinstance(name, str) and name in tools else None
    if choice == "required":
        return next((t for t in tools if t != config.silence_tool_name), None)
    return None


def last_user_text(pending: Sequence[Event]) -> str:
    """The latest text among the unanswered items (``""`` when none has any)."""
    for item in reversed(pending):
        text = _turn_text(item)
        if text is not None:
            return text
    return ""


def _turn_text(item: Event) -> str | None:
    """The text of an unanswered item the model replies to. A system message is an
    instruction, not a turn: never answered (a client's re-anchoring note after a resume
    is one)."""
    if item.get("role") == "system":
        return None
    return item_text(item)


def _json_dumps(value: Any) -> str:
    """Compact JSON, as the server writes ``arguments``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
