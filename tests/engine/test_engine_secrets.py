"""Secrets never leak (SPEC §8): not in any log record at DEBUG (wire log included), not in
``repr``/``str`` of the config, not in exceptions; and ``wss``/``https`` verify TLS."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any, Literal

import pytest
import trio
from trio_websocket import WebSocketRequest, serve_websocket

from duplex.engine import (
    ConversationClosed,
    ConversationStartError,
    EngineConfig,
    Error,
    HandoffRequested,
    McpTool,
    OutputTranscriptDone,
    ResponseDone,
    SessionUpdated,
    open_engine,
)
from duplex.simulator import Scenario, ScenarioStep, SimulatorConfig, open_simulator

from .._support import SelfSignedCert
from ._engine_helpers import (
    API_KEY,
    engine_with_events,
    of_type,
    pcm_frames,
    silence,
    sim_config,
    sine,
)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    """Every logger at DEBUG (the wire log too), captured at the root."""
    capture = _Capture()
    root = logging.getLogger()
    names = ["duplex", "duplex.wire", "duplex.engine", *logging.root.manager.loggerDict]
    saved = {name: logging.getLogger(name).level for name in names}
    saved_root = root.level
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("transport", "control", "version"),
    [
        ("websocket", "datachannel", "v2"),
        ("websocket", "datachannel", "v1"),
        ("webrtc", "datachannel", "v2"),
        ("webrtc", "sideband", "v2"),
    ],
)
async def test_full_conversation_at_debug_never_logs_the_key(
    debug_logs: _Capture, transport: str, control: str, version: str
) -> None:
    async with open_simulator(SimulatorConfig(api_key=API_KEY)) as sim:
        config = sim_config(sim, transport=transport, webrtc_control=control, version=version)
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="secret-free prompt")
                await events.until(of_type(SessionUpdated))
                await engine.send_text("hello")
                await events.until(of_type(OutputTranscriptDone))
                for frame in pcm_frames(silence(100) + sine(300) + silence(200)):
                    engine.send_audio(frame)
                await engine.send_text("please delegate it")
                handoff = (await events.until(of_type(HandoffRequested)))[-1]
                await events.until(of_type(ResponseDone))
                await engine.send_handoff_output(handoff.handoff_id, "done")
                await events.until(
                    lambda e: isinstance(e, OutputTranscriptDone) and e.text == "done"
                )
                await engine.close()
                await events.until(of_type(ConversationClosed))
    assert debug_logs.records, "nothing was captured: the capture is broken"
    wire = [r for r in debug_logs.records if r.name == "duplex.wire"]
    assert wire, "the wire logger logged nothing at DEBUG"
    assert all(len(r.getMessage()) < 200 for r in wire), "the wire log must not carry payloads"
    for text in debug_logs.texts:
        assert API_KEY not in text
        assert API_KEY[8:] not in text  # not even a tail of it


def test_config_repr_and_str_redact_the_key() -> None:
    config = EngineConfig(api_key=API_KEY, headers={"x-api-key": API_KEY})
    for text in (repr(config), str(config), f"{config}", f"{config!r}"):
        assert API_KEY not in text
    assert "<redacted>" in repr(config)
    assert EngineConfig.from_env.__doc__  # documented
    assert "api_key=None" in repr(EngineConfig())


def test_from_env_reads_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    config = EngineConfig.from_env(model="m")
    assert (config.api_key, config.base_url, config.model) == (
        API_KEY,
        "http://127.0.0.1:9/v1",
        "m",
    )
    assert API_KEY not in repr(config)


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)


async def test_401_start_error_never_contains_the_key(debug_logs: _Capture) -> None:
    async with open_simulator(SimulatorConfig(api_key="sk-another-key-entirely-000")) as sim:
        for transport in ("websocket", "webrtc"):
            with trio.fail_after(10):
                async with open_engine(sim_config(sim, transport=transport)) as engine:
                    with pytest.raises(ConversationStartError) as info:
                        await engine.start()
            assert info.value.status == 401
            assert API_KEY not in _exception_text(info.value)
    assert all(API_KEY not in text for text in debug_logs.texts)


@pytest.mark.parametrize("key", ["   ", "sk-bad\nkey"])
async def test_unusable_key_fails_start_cleanly(key: str) -> None:
    """Regression: a blank key (or one that cannot be a header value) escaped start() as a
    raw LocalProtocolError instead of the documented ConversationStartError."""
    with trio.fail_after(10):
        async with open_engine(EngineConfig(api_key=key)) as engine:
            with pytest.raises(ConversationStartError) as info:
                await engine.start()
            assert key.strip() not in str(info.value) or not key.strip()
            assert engine.statistics().running is False


# ---- TLS verification ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_tls_with_untrusted_certificate_is_refused(
    self_signed: SelfSignedCert, transport: Literal["websocket", "webrtc"]
) -> None:
    server_ctx = self_signed.server_context()
    accepted: list[str] = []

    async def handler(request: WebSocketRequest) -> None:
        accepted.append(request.path)
        await request.accept()

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, server_ctx)
            port = server.port
            # Control: the server works for a client that trusts its certificate.
            trusting = self_signed.client_context()
            stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=trusting)
            await stream.do_handshake()
            await stream.aclose()

            config = EngineConfig(
                base_url=f"https://127.0.0.1:{port}/v1",
                api_key=API_KEY,
                transport=transport,
                connect_timeout=5,
            )
            async with open_engine(config) as engine:
                with pytest.raises(ConversationStartError) as info:
                    await engine.start()
            assert API_KEY not in _exception_text(info.value)
            assert accepted == []
            nursery.cancel_scope.cancel()


async def test_mcp_credentials_are_redacted_like_the_key_also_when_declared_later(
    debug_logs: _Capture,
) -> None:
    # Regression (review): only the authorization of EngineConfig.tools was redacted; a
    # header value, and a token declared later by update_session, reached Error.message.
    token, header, late = (f"{kind}-0123456789abcdef" for kind in ("tok", "hdr", "late"))

    def quoting(secret: str) -> dict[str, Any]:
        message = f"MCP credential {secret} refused"
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}

    early = McpTool(
        server_label="docs",
        server_url="https://mcp.example.test",
        authorization=token,
        headers={"X-Key": header},
    )
    later = McpTool(server_label="more", server_url="https://mcp2.example.test", authorization=late)
    async with open_simulator(SimulatorConfig()) as sim:
        steps = (
            ScenarioStep(expect="session.update", emit=(quoting(token), quoting(header))),
            ScenarioStep(expect="session.update", emit=(quoting(late),)),
        )
        sim.add_scenario(Scenario(steps=steps))
        config = sim_config(sim, tools=(early,))
        assert token not in repr(config)
        assert header not in repr(config)
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                await engine.start()

                async def errors(count: int) -> list[str]:
                    while len(found := [e for e in events.log if isinstance(e, Error)]) < count:
                        await events.until(of_type(Error))
                    return [e.message for e in found]

                await errors(2)
                await engine.update_session(tools=[early, later])
                messages = await errors(3)
                await engine.close()
    assert len(messages) == 3, messages
    assert all("refused" in m for m in messages)
    for secret in (token, header, late):
        assert not [m for m in messages if secret in m]
        assert not [t for t in debug_logs.texts if secret in t]
