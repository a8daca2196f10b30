"""``validate_tools``: the one rule for the tools a host declares, for a session
(``_session_builder``) or for one response (``_control_builders``).

Invariants: a function's name is 1-64 letters, digits, ``_`` or ``-``, unique among the
tools, and not the handoff or silence tool's; its parameters are a JSON Schema object. An
MCP server has a label of the same shape, unique among the servers, exactly one of
``server_url`` (http or https) and ``connector_id``, and ``require_approval`` /
``allowed_tools`` in one of GA's forms. Nothing is changed; a bad tool raises
``LocalProtocolError`` naming it — by name or label, never with its credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._errors import LocalProtocolError
from ._server_parser import (
    DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME,
    check_tool_names,
)
from ._session import FunctionTool, McpTool

__all__ = ["validate_tools"]

_FUNCTION_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_tools(
    tools: Iterable[FunctionTool | McpTool],
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
) -> tuple[FunctionTool | McpTool, ...]:
    """The host's tools as a tuple, or ``LocalProtocolError`` naming the first bad one (or a
    bad handoff/silence tool name: a string of 1-64 letters, digits, ``_``, ``-``, or None)."""
    for what, tool_name in (("handoff", handoff_tool_name), ("silence", silence_tool_name)):
        if tool_name is not None and (
            type(tool_name) is not str or not _FUNCTION_NAME.fullmatch(tool_name)
        ):
            raise LocalProtocolError(
                f"{what} tool name must be 1-64 letters, digits, '_' or '-', or None; "
                f"got {tool_name!r}"
            )
    handoff_tool_name, silence_tool_name = check_tool_names(handoff_tool_name, silence_tool_name)
    reserved = {n for n in (handoff_tool_name, silence_tool_name) if n is not None}
    seen: set[str] = set()
    labels: set[str] = set()
    out: list[FunctionTool | McpTool] = []
    for tool in tools:
        if isinstance(tool, McpTool):
            _check_mcp(tool, labels)
            out.append(tool)
            continue
        if not isinstance(tool, FunctionTool):
            # The type only: a wire-shaped dict given by mistake may hold a server's token.
            raise LocalProtocolError(
                f"tools must be FunctionTool or McpTool values, got a {type(tool).__name__}"
            )
        name = tool.name
        if type(name) is not str or not _FUNCTION_NAME.fullmatch(name):
            raise LocalProtocolError(
                f"tool name {name!r} must be 1-64 characters of letters, digits, '_' or '-'"
            )
        if name in reserved:
            raise LocalProtocolError(
                f"tool name {name!r} is taken by the handoff or silence tool; rename one"
            )
        if name in seen:
            raise LocalProtocolError(f"tool name {name!r} is declared twice")
        seen.add(name)
        if tool.description is not None and type(tool.description) is not str:
            raise LocalProtocolError(f"tool {name!r}: description must be a string")
        params = tool.parameters
        if params is not None and (type(params) is not dict or params.get("type") != "object"):
            raise LocalProtocolError(
                f"tool {name!r}: parameters must be a JSON Schema object "
                f'({{"type": "object", ...}}), got {params!r}'
            )
        if tool.type != "function":
            raise LocalProtocolError(f"tool {name!r}: type must be 'function'")
        out.append(tool)
    return tuple(out)


_APPROVAL_WORDS: Final = ("always", "never")


def _check_mcp(tool: McpTool, labels: set[str]) -> None:
    label = tool.server_label
    if type(label) is not str or not _FUNCTION_NAME.fullmatch(label):
        raise LocalProtocolError(
            f"MCP server_label {label!r} must be 1-64 letters, digits, '_' or '-'"
        )
    if label in labels:
        raise LocalProtocolError(f"MCP server_label {label!r} is declared twice")
    labels.add(label)
    where = f"MCP server {label!r}"
    if (tool.server_url is None) == (tool.connector_id is None):
        raise LocalProtocolError(f"{where}: give exactly one of server_url and connector_id")
    url = tool.server_url
    if url is not None and (type(url) is not str or not url.startswith(("https://", "http://"))):
        raise LocalProtocolError(f"{where}: server_url must be an http(s) URL")
    if tool.connector_id is not None and not _text(tool.connector_id):
        raise LocalProtocolError(f"{where}: connector_id must be a non-empty string")
    if tool.server_description is not None and type(tool.server_description) is not str:
        raise LocalProtocolError(f"{where}: server_description must be a string")
    if not _approval(tool.require_approval):
        raise LocalProtocolError(
            f"{where}: require_approval must be 'always', 'never' or "
            '{"always"|"never": {"tool_names": [...]}}'
        )
    if not _allowed(tool.allowed_tools):
        raise LocalProtocolError(
            f"{where}: allowed_tools must be a list of tool names or a filter object"
        )
    if tool.authorization is not None and not _text(tool.authorization):
        raise LocalProtocolError(f"{where}: authorization must be a non-empty string")
    headers = tool.headers
    if headers is not None and (
        not isinstance(headers, Mapping)
        or not all(type(k) is str and type(v) is str for k, v in headers.items())
    ):
        raise LocalProtocolError(f"{where}: headers must map strings to strings")
    if tool.type != "mcp":
        raise LocalProtocolError(f"{where}: type must be 'mcp'")


def _text(value: Any) -> bool:
    return type(value) is str and bool(value)


def _names(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_text(v) for v in value)


def _approval(value: Any) -> bool:
    if value is None or value in _APPROVAL_WORDS:
        return True
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(key in _APPROVAL_WORDS and isinstance(rule, Mapping) for key, rule in value.items())
    )


def _allowed(value: Any) -> bool:
    return value is None or _names(value) or isinstance(value, Mapping)
