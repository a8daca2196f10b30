"""``validate_tools``: the one rule for the function tools a host declares, for a session
(``_session_builder``) or for one response (``_control_builders``).

Invariants: a name is 1-64 letters, digits, ``_`` or ``-``, unique among the tools, and not
the handoff or silence tool's; parameters are a JSON Schema object; nothing is changed, a bad
tool raises ``LocalProtocolError`` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ._errors import LocalProtocolError
from ._server_parser import (
    DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME,
    check_tool_names,
)
from ._session import FunctionTool

__all__ = ["validate_tools"]

_FUNCTION_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_tools(
    tools: Iterable[FunctionTool],
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
) -> tuple[FunctionTool, ...]:
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
    out: list[FunctionTool] = []
    for tool in tools:
        if not isinstance(tool, FunctionTool):
            raise LocalProtocolError(f"tools must be FunctionTool values, got {tool!r}")
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
