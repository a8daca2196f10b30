"""The scripted model's reply rules (``simulator._replies``), without a running model."""

from __future__ import annotations

from typing import Any

from duplex.protocol import ProtocolVersion
from duplex.simulator import SimulatorConfig
from duplex.simulator._replies import (
    Reply,
    arguments_for,
    decide,
    forced_tool,
    handoff_tool,
    last_user_text,
    tool_names,
)

CONFIG = SimulatorConfig()


def _user(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def _decide(
    pending: list[dict[str, Any]],
    tools: tuple[str, ...] | list[str] = (),
    *,
    version: ProtocolVersion = ProtocolVersion.V2,
    items: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
    handoff: str | None = None,
) -> Reply:
    return decide(
        pending,
        list(tools),
        config=CONFIG,
        version=version,
        items={i["id"]: i for i in items},
        order=[i["id"] for i in items],
        handoff=handoff,
    )


def test_plain_text_is_echoed_with_the_reply_prefix() -> None:
    assert _decide([_user("a", "hello")]) == Reply("say", "You said: hello.")


def test_named_tools_are_called_in_the_order_the_text_names_them() -> None:
    reply = _decide([_user("a", "please call weather and lookup.")], ["lookup", "weather"])
    assert reply == Reply("tools", "please call weather and lookup.", ("weather", "lookup"))


def test_undeclared_tool_names_are_not_called() -> None:
    assert _decide([_user("a", "call weather")], ["lookup"]).kind == "say"


def test_tools_are_a_v2_rule_only() -> None:
    reply = _decide([_user("a", "call weather")], ["weather"], version=ProtocolVersion.V1)
    assert reply.kind == "say"


def test_silence_phrase_wins_over_named_tools() -> None:
    reply = _decide([_user("a", "stay silent and call weather")], ["weather"])
    assert reply.kind == "silent"


def test_trigger_phrase_asks_for_a_handoff() -> None:
    assert _decide([_user("a", "delegate the build")]).kind == "handoff"


def test_recall_answers_with_the_user_text_before_the_question() -> None:
    items = [_user("a", "the sky is green"), _user("b", "what did I say")]
    reply = _decide([items[1]], items=items)
    assert reply == Reply("say", "Before that you said: the sky is green.")


def test_recall_with_no_earlier_text_says_so() -> None:
    only = _user("b", "what did I say")
    assert _decide([only], items=[only]).text == "You have not said anything before."


def test_tool_results_are_spoken_with_the_tool_name_and_a_handoff_output_as_is() -> None:
    items = [
        {"id": "c1", "type": "function_call", "call_id": "x", "name": "weather"},
        {"id": "c2", "type": "function_call", "call_id": "y", "name": "codex"},
    ]
    weather = {"type": "function_call_output", "call_id": "x", "output": "sunny"}
    assert _decide([weather], items=items, handoff="codex").text == "weather returned sunny."
    handed = {"type": "function_call_output", "call_id": "y", "output": "Build is green."}
    assert _decide([weather, handed], items=items, handoff="codex").text == "Build is green."


def test_nothing_to_answer_is_answered_with_listening() -> None:
    assert _decide([]) == Reply("say", "I am listening.")


def test_tool_names_read_the_override_then_the_session_and_skip_malformed_entries() -> None:
    session = {"tools": [{"type": "function", "name": "a"}, "junk", {"type": "mcp", "name": "m"}]}
    assert tool_names(session) == ["a"]
    assert tool_names(session, {"tools": [{"type": "function", "name": "b"}]}) == ["b"]
    assert tool_names(session, {"tools": "not a list"}) == ["a"]


def test_handoff_tool_is_the_configured_name_else_a_tool_with_a_prompt_parameter() -> None:
    named = {"tools": [{"type": "function", "name": "codex"}]}
    assert handoff_tool(named, CONFIG) == "codex"
    prompt: dict[str, Any] = {"type": "function", "name": "agent"}
    prompt["parameters"] = {"properties": {"prompt": {"type": "string"}}}
    assert handoff_tool({"tools": [prompt]}, CONFIG) == "agent"
    assert handoff_tool({"tools": [{"type": "function", "name": "x"}]}, CONFIG) is None


def test_arguments_fill_the_template_and_default_to_the_handoff_prompt() -> None:
    config = SimulatorConfig(tool_arguments={"lookup": '{"q": "{text}"}'})
    assert arguments_for("lookup", 'say "hi"', config, None) == '{"q": "say \\"hi\\""}'
    assert arguments_for("codex", "build it", CONFIG, "codex") == '{"prompt":"build it"}'
    assert arguments_for("other", "x", CONFIG, "codex") == "{}"


def test_forced_tool_names_a_declared_function_or_the_first_non_silence_tool() -> None:
    tools = ["remain_silent", "a", "b"]
    assert forced_tool({"type": "function", "name": "b"}, tools, CONFIG) == "b"
    assert forced_tool({"type": "function", "name": "zz"}, tools, CONFIG) is None
    assert forced_tool("required", tools, CONFIG) == "a"
    assert forced_tool("auto", tools, CONFIG) is None


def test_last_user_text_skips_items_without_text() -> None:
    output = {"type": "function_call_output", "call_id": "x", "output": "1"}
    assert last_user_text([_user("a", "first"), output]) == "first"
    assert last_user_text([output]) == ""


def _system(item_id: str, text: str) -> dict[str, Any]:
    return {**_user(item_id, text), "role": "system"}


def test_a_system_message_is_an_instruction_not_a_turn_to_answer() -> None:
    # The engine's re-anchor note after a resume (a system message) was answered as if the
    # user had said it ("You said: <note>").
    reply = _decide([_user("a", "hello"), _system("b", "the connection was re-established")])
    assert reply == Reply("say", "You said: hello.")
    assert _decide([_system("c", "be brief")]) == Reply("say", "I am listening.")
    assert last_user_text([_user("a", "hello"), _system("b", "be brief")]) == "hello"
