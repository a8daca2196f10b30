"""MCP servers in the scripted model (GA ``{"type": "mcp"}`` tools): what a declared server
offers, which calls wait for the client's approval, and the wire shape of MCP items.

The simulator reaches no MCP server (nothing leaves the machine). Every declared server offers
the tools of ``SimulatorConfig.mcp_tools`` (tool name → the output a call returns), narrowed
by the server's ``allowed_tools`` when that is a list of names. The rest follows the real
service's documented behaviour:

- a ``session.update`` declaring a server label not listed yet lists its tools:
  ``mcp_list_tools.in_progress``, the ``mcp_list_tools`` item, ``mcp_list_tools.completed``;
- approval: GA's default is to ask (``"always"``); ``"never"`` asks for none; a filter object
  asks for the tools named under ``"always"`` and not for those under ``"never"`` (any other
  tool: the default);
- a call that needs approval is an ``mcp_approval_request`` item that ends its response; the
  client answers with an ``mcp_approval_response`` item and asks for a response, which runs
  the approved calls (``mcp_call`` items naming their ``approval_request_id``) and speaks
  their results;
- an ``mcp_call`` streams its arguments (``response.mcp_call_arguments.delta/done``) and
  reports ``response.mcp_call.in_progress`` / ``completed``.

Invariants: pure functions of the session, the configuration and given ids; unknown or
malformed values (a server without a label, an odd ``require_approval``) read as absent or as
the default, never as an error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._config import SimulatorConfig

__all__ = [
    "McpCall",
    "McpOffer",
    "approval_item",
    "call_item",
    "item_events",
    "list_tools_item",
    "mcp_offers",
    "mcp_servers",
    "spoken_results",
]

Event = dict[str, Any]
_APPROVAL_DEFAULT: Final = True  # GA asks unless told not to


@attrs.frozen
class McpOffer:
    """A tool an MCP server of the session offers."""

    server_label: str
    needs_approval: bool


@attrs.frozen
class McpCall:
    """One MCP tool call the model decided on: to ask approval for, or to run."""

    server_label: str
    name: str
    arguments: str
    needs_approval: bool = False
    #: the approval this call answers (a call run after the client approved it)
    approval_request_id: str | None = None
    approved: bool = True


def mcp_servers(
    session: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> list[Event]:
    """The MCP servers in effect: the response's ``tools`` override, else the session's."""
    tools = (overrides or {}).get("tools")
    if not isinstance(tools, list):
        tools = session.get("tools") or []
    return [
        t
        for t in tools
        if isinstance(t, dict) and t.get("type") == "mcp" and isinstance(t.get("server_label"), str)
    ]


def mcp_offers(
    session: Mapping[str, Any], overrides: Mapping[str, Any] | None, config: SimulatorConfig
) -> dict[str, McpOffer]:
    """Tool name → the server that offers it and whether a call needs approval (the first
    server offering a name wins)."""
    offers: dict[str, McpOffer] = {}
    for server in mcp_servers(session, overrides):
        for name in _offered(server, config):
            offers.setdefault(name, McpOffer(server["server_label"], _needs_approval(server, name)))
    return offers


def list_tools_item(item_id: str, server: Mapping[str, Any], config: SimulatorConfig) -> Event:
    """The ``mcp_list_tools`` item of a server (``input_schema`` an empty object schema)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "mcp_list_tools",
        "server_label": server["server_label"],
        "tools": [
            {"name": name, "input_schema": {"type": "object", "properties": {}}}
            for name in _offered(server, config)
        ],
    }


def approval_item(item_id: str, call: McpCall) -> Event:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "mcp_approval_request",
        "server_label": call.server_label,
        "name": call.name,
        "arguments": call.arguments,
    }


def call_item(item_id: str, call: McpCall, output: str) -> Event:
    """A finished ``mcp_call`` item with its output."""
    item: Event = {
        "id": item_id,
        "object": "realtime.item",
        "type": "mcp_call",
        "server_label": call.server_label,
        "name": call.name,
        "arguments": call.arguments,
        "output": output,
    }
    if call.approval_request_id is not None:
        item["approval_request_id"] = call.approval_request_id
    return item


def item_events(
    response_id: str, index: int, item: Event, previous: str | None, *, in_conversation: bool
) -> list[Event]:
    """The events of one finished MCP output item of a response, in the server's order
    (without ``event_id``: the caller stamps them)."""
    started = dict(item, output=None) if item.get("type") == "mcp_call" else item
    out: list[Event] = [
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": index,
            "item": copy.deepcopy(started),
        }
    ]
    if in_conversation:
        out.append(
            {
                "type": "conversation.item.added",
                "previous_item_id": previous,
                "item": copy.deepcopy(started),
            }
        )
    if item.get("type") == "mcp_call":
        loc = {"response_id": response_id, "item_id": item["id"], "output_index": index}
        out.append({"type": "response.mcp_call_arguments.delta", **loc, "delta": item["arguments"]})
        out.append(
            {"type": "response.mcp_call_arguments.done", **loc, "arguments": item["arguments"]}
        )
        at = {"item_id": item["id"], "output_index": index}
        out.append({"type": "response.mcp_call.in_progress", **at})
        out.append({"type": "response.mcp_call.completed", **at})
    out.append(
        {
            "type": "response.output_item.done",
            "response_id": response_id,
            "output_index": index,
            "item": copy.deepcopy(item),
        }
    )
    if in_conversation:
        out.append(
            {
                "type": "conversation.item.done",
                "previous_item_id": previous,
                "item": copy.deepcopy(item),
            }
        )
    return out


def spoken_results(calls: Sequence[McpCall], config: SimulatorConfig) -> str:
    """What the model says after running (or being refused) MCP calls."""
    said = [
        f"{c.name} returned {config.mcp_tools.get(c.name, '')}."
        if c.approved
        else f"{c.name} was not approved."
        for c in calls
    ]
    return " ".join(said)


def _offered(server: Mapping[str, Any], config: SimulatorConfig) -> list[str]:
    allowed = server.get("allowed_tools")
    names = list(config.mcp_tools)
    if isinstance(allowed, list):
        return [n for n in names if n in allowed]
    if isinstance(allowed, dict) and isinstance(allowed.get("tool_names"), list):
        return [n for n in names if n in allowed["tool_names"]]
    return names


def _needs_approval(server: Mapping[str, Any], name: str) -> bool:
    rule = server.get("require_approval")
    if rule == "never":
        return False
    if rule == "always" or not isinstance(rule, dict):
        return _APPROVAL_DEFAULT
    for key, needs in (("never", False), ("always", True)):
        named = rule.get(key)
        names = named.get("tool_names") if isinstance(named, dict) else None
        if isinstance(names, list) and name in names:
            return needs
    return _APPROVAL_DEFAULT
