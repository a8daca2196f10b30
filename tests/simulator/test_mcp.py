"""MCP servers in the scripted model: tool listing on ``session.update``, the approval loop
(request → the client's ``mcp_approval_response`` → the call runs, or is refused), calls that
need no approval, and the errors for answers to no open request. Every event is validated
against the ``openai`` package's ``RealtimeServerEvent`` models (``feed``/``drain``)."""

from __future__ import annotations

from typing import Any

import pytest

from duplex.simulator import ScriptedModel

from .test_model_behaviour import _model, drain, feed, of, types

DOCS: dict[str, Any] = {
    "type": "mcp",
    "server_label": "docs",
    "server_url": "https://mcp.example.test/mcp",
}


def _declare(model: ScriptedModel, **server: Any) -> list[dict[str, Any]]:
    session = {"type": "realtime", "output_modalities": ["text"], "tools": [{**DOCS, **server}]}
    return feed(model, {"type": "session.update", "session": session})


def _ask(model: ScriptedModel, text: str) -> list[dict[str, Any]]:
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    feed(model, {"type": "conversation.item.create", "item": item})
    return feed(model, {"type": "response.create"}) + drain(model)


def _answer(model: ScriptedModel, request_id: str, **answer: Any) -> list[dict[str, Any]]:
    item = {"type": "mcp_approval_response", "approval_request_id": request_id, **answer}
    return feed(model, {"type": "conversation.item.create", "item": item})


def _said(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in of(events, "response.output_text.done")]


def test_declaring_a_server_lists_its_tools_once() -> None:
    model = _model(mcp_tools={"search_docs": "3 pages", "fetch_page": "a page"})
    events = _declare(model, allowed_tools=["search_docs"])
    assert types(events) == [
        "session.updated",
        "conversation.item.added",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "conversation.item.done",
    ]
    listed = of(events, "conversation.item.done")[0]["item"]
    assert listed["type"] == "mcp_list_tools"
    assert [t["name"] for t in listed["tools"]] == ["search_docs"]
    assert types(_declare(model, allowed_tools=["search_docs"])) == ["session.updated"]


def test_a_call_waits_for_approval_then_runs_and_is_spoken() -> None:
    model = _model(mcp_tools={"search_docs": "3 pages"})
    _declare(model)  # GA's default: every call asks first
    asked = _ask(model, "call search_docs please")
    request = of(asked, "conversation.item.done")[-1]["item"]
    assert request["type"] == "mcp_approval_request"
    assert (request["server_label"], request["name"]) == ("docs", "search_docs")
    assert of(asked, "response.done")[0]["response"]["output"] == [request]
    assert _said(asked) == []

    _answer(model, request["id"], approve=True)
    ran = feed(model, {"type": "response.create"}) + drain(model)
    call = of(ran, "response.output_item.done")[0]["item"]
    assert call["type"] == "mcp_call"
    assert (call["output"], call["approval_request_id"]) == ("3 pages", request["id"])
    assert types(ran).index("response.mcp_call.completed") < types(ran).index(
        "response.output_text.done"
    )
    assert _said(ran) == ["search_docs returned 3 pages."]
    output = of(ran, "response.done")[0]["response"]["output"]
    assert [o["type"] for o in output] == ["mcp_call", "message"]


def test_a_refused_call_does_not_run() -> None:
    model = _model()
    _declare(model, require_approval="always")
    request = of(_ask(model, "call search_docs"), "conversation.item.done")[-1]["item"]
    _answer(model, request["id"], approve=False, reason="not now")
    refused = feed(model, {"type": "response.create"}) + drain(model)
    assert "response.mcp_call.completed" not in types(refused)
    assert _said(refused) == ["search_docs was not approved."]


@pytest.mark.parametrize(
    "rule", ["never", {"never": {"tool_names": ["search_docs"]}}], ids=["never", "filter"]
)
def test_a_call_that_needs_no_approval_runs_in_the_same_response(rule: Any) -> None:
    model = _model(mcp_tools={"search_docs": "3 pages"})
    _declare(model, require_approval=rule)
    events = _ask(model, "call search_docs")
    assert len(of(events, "response.created")) == 1
    assert "response.mcp_call_arguments.done" in types(events)
    assert _said(events) == ["search_docs returned 3 pages."]


def test_an_answer_to_no_open_request_is_an_error() -> None:
    model = _model()
    _declare(model)
    error = _answer(model, "item_nope", approve=True)
    assert error[0]["type"] == "error"
    assert error[0]["error"]["param"] == "item.approval_request_id"
    request = of(_ask(model, "call search_docs"), "conversation.item.done")[-1]["item"]
    assert _answer(model, request["id"], approve=True)[0]["type"] == "conversation.item.added"
    again = _answer(model, request["id"], approve=True)
    assert again[0]["type"] == "error"  # answered once already
