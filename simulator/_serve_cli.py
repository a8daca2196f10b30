"""``duplex serve``: the simulator's command-line flags and runner.

The console script (``duplex.cli``) owns the top-level parser; it calls
``add_serve_arguments(subparser)`` and then ``run_serve(args)``, which returns the exit status.
Every flag maps onto one ``SimulatorConfig`` / ``FaultConfig`` field (``config_from_args``), so
``duplex serve`` exposes the knobs tests set in code.

Invariants:
- ``run_serve`` prints exactly one line on stdout, ``listening on http://H:P``, once the socket
  accepts connections (scripts wait for it); logs go to stderr;
- expected failures are one line on stderr and a non-zero status, never a traceback: a busy
  port or an unknown host → 1 (``SimulatorBindError``); bad flag values are argparse usage
  errors (exit 2);
- Ctrl-C (SIGINT) stops the server and returns 130, SIGTERM returns 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from functools import partial
from typing import Final, get_args

import trio

from ._config import FaultConfig, GarbageKind, SimulatorConfig
from ._server import Simulator, SimulatorBindError

__all__ = ["DEFAULT_PORT", "add_serve_arguments", "config_from_args", "run_serve"]

DEFAULT_PORT: Final = 8765

_DEFAULTS: Final = SimulatorConfig()

EPILOG: Final = f"""\
Clients: use base_url http://HOST:PORT/v1 (default http://127.0.0.1:{DEFAULT_PORT}/v1; https://
with --tls-cert) with any API key (or the one given by --api-key). WebSocket: ws://HOST:PORT/v1/realtime?model=gpt-realtime
(GA), ?intent=quicksilver (v1), ?intent=transcription. WebRTC: POST /v1/realtime/calls with the
SDP offer; a browser page may mint an ephemeral key with POST /v1/realtime/client_secrets.

The scripted model answers "{_DEFAULTS.reply_prefix}<your text>." To trigger a handoff, send user
text (or speech whose transcript contains) the handoff trigger phrase ("{_DEFAULTS.trigger_phrase}"
by default, see --handoff-trigger): the model calls the handoff tool
("{_DEFAULTS.handoff_tool_name}" unless the session declares another). Text containing the
silence trigger ("{_DEFAULTS.silence_phrase}") makes it call the
"{_DEFAULTS.silence_tool_name}" tool when the session declares it.
"""


def _non_negative(kind: type[float] | type[int]) -> partial[float | int]:
    return partial(_parse_non_negative, kind)


def _parse_non_negative(kind: type[float] | type[int], text: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _http_error_status(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a status code: {text!r}") from None
    if not 400 <= value <= 599:
        raise argparse.ArgumentTypeError(f"must be an HTTP error status (400-599): {text!r}")
    return value


def _close_code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a close code: {text!r}") from None
    if not (1000 <= value <= 1015 or 3000 <= value <= 4999) or value in (1004, 1005, 1006):
        raise argparse.ArgumentTypeError(f"not a close code a server may send: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {port}")
    return port


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``duplex serve``'s flags (and its help epilog) to ``parser``."""
    if not parser.description:
        parser.description = "Run the local realtime simulator (WebSocket, WebRTC, client secrets)."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    listen = parser.add_argument_group("listening")
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    listen.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port to bind; 0 picks a free one (default %(default)s)",
    )
    listen.add_argument(
        "--tls-cert",
        default=None,
        metavar="PEM",
        help="serve https:// and wss:// with this certificate chain (with --tls-key); "
        "clients that only speak wss://, like the official JS SDK, need it",
    )
    listen.add_argument("--tls-key", default=None, metavar="PEM", help="the key for --tls-cert")
    listen.add_argument(
        "--api-key",
        default=None,
        help="accept only this key (and ek_ keys); default: any non-empty key",
    )
    model = parser.add_argument_group("scripted model")
    model.add_argument(
        "--seed", type=int, default=None, help="pin every id (default: random per run)"
    )
    model.add_argument(
        "--speed",
        type=_non_negative(float),
        default=_DEFAULTS.audio_speedup,
        help="model audio is streamed this many times faster than real time; 0 sends a whole "
        "response at once (default %(default)s)",
    )
    model.add_argument(
        "--handoff-trigger",
        default=_DEFAULTS.trigger_phrase,
        metavar="PHRASE",
        help="user text containing it makes the model call the handoff tool (default %(default)r)",
    )
    model.add_argument(
        "--handoff-tool",
        default=_DEFAULTS.handoff_tool_name,
        metavar="NAME",
        help="handoff tool called when the session declares none by this name "
        "(default %(default)r)",
    )
    model.add_argument(
        "--silence-trigger",
        default=_DEFAULTS.silence_phrase,
        metavar="PHRASE",
        help="user text containing it makes the model call the silence tool; '' disables "
        "(default %(default)r)",
    )
    model.add_argument(
        "--reply-prefix",
        default=_DEFAULTS.reply_prefix,
        help="the scripted reply is PREFIX + your text (default %(default)r)",
    )
    model.add_argument(
        "--session-cap",
        type=_non_negative(float),
        default=None,
        metavar="SECONDS",
        help="end every session after this long (session_expired, close 1001)",
    )
    model.add_argument(
        "--no-webrtc-dtx",
        dest="webrtc_dtx",
        action="store_false",
        help="stream WebRTC audio continuously even when the offer asks for Opus DTX",
    )
    model.add_argument(
        "--websocket-compression",
        action="store_true",
        help="accept a client's permessage-deflate offer (off by default)",
    )
    faults = parser.add_argument_group("faults (for testing clients)")
    faults.add_argument(
        "--close-after", type=int, default=None, metavar="N", help="close after N events"
    )
    faults.add_argument(
        "--close-code",
        type=_close_code,
        default=1011,
        help="close code for --close-after (default %(default)s)",
    )
    faults.add_argument(
        "--drop-after",
        type=int,
        default=None,
        metavar="N",
        help="reset the TCP connection (no close frame) after N events",
    )
    faults.add_argument(
        "--silent-after",
        type=int,
        default=None,
        metavar="N",
        help="after N frames stop sending and answering (pings too) but keep the connection "
        "open: a hung server",
    )
    faults.add_argument(
        "--garbage",
        action="append",
        choices=list(get_args(GarbageKind)),
        default=[],
        help="send this bad frame right after session.created (repeatable)",
    )
    faults.add_argument(
        "--event-delay",
        type=_non_negative(float),
        default=0.0,
        metavar="SECONDS",
        help="sleep before every server event",
    )
    faults.add_argument(
        "--calls-status",
        type=_http_error_status,
        default=None,
        metavar="STATUS",
        help="answer POST /v1/realtime/calls with this HTTP error",
    )
    faults.add_argument(
        "--calls-location",
        choices=["ok", "missing", "malformed"],
        default="ok",
        help="the Location header of a created call (default %(default)s)",
    )
    faults.add_argument(
        "--sideband-refuse",
        type=int,
        default=0,
        metavar="N",
        help="refuse the first N sideband (?call_id=) joins with 403",
    )
    faults.add_argument(
        "--datachannel-never-opens",
        action="store_true",
        help="never answer the oai-events data channel",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The ``SimulatorConfig`` the parsed flags describe."""
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        seed=args.seed,
        audio_speedup=args.speed,
        trigger_phrase=args.handoff_trigger,
        handoff_tool_name=args.handoff_tool,
        silence_phrase=args.silence_trigger,
        reply_prefix=args.reply_prefix,
        webrtc_dtx=args.webrtc_dtx,
        websocket_compression=args.websocket_compression,
        tls_certfile=args.tls_cert,
        tls_keyfile=args.tls_key,
        faults=FaultConfig(
            close_after_events=args.close_after,
            close_code=args.close_code,
            drop_after_events=args.drop_after,
            silent_after_frames=args.silent_after,
            garbage_after_created=tuple(args.garbage),
            event_delay_s=args.event_delay,
            calls_status=args.calls_status,
            calls_location=args.calls_location,
            sideband_refuse_first=args.sideband_refuse,
            datachannel_never_opens=args.datachannel_never_opens,
            session_max_duration_s=args.session_cap,
        ),
    )


async def _serve(config: SimulatorConfig) -> int:
    """Serve until SIGINT/SIGTERM; the exit status (130 for Ctrl-C)."""
    sim = Simulator(config)
    status = 0
    # The receiver is open before the ready line is printed: a signal sent as soon as a script
    # sees "listening on" is a clean stop, never the default handler's abrupt exit.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        listeners = await sim.listen()  # SimulatorBindError before anything is printed
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(partial(sim.serve_on, listeners))
            print(f"listening on {url.removesuffix('/v1')}", flush=True)
            async for signum in received:
                status = 130 if signum == signal.SIGINT else 0
                break
            nursery.cancel_scope.cancel()
    return status


def run_serve(args: argparse.Namespace) -> int:
    """Run ``duplex serve`` with parsed flags; returns the exit status."""
    # Info logs (the port, call and session events) go to stderr; stdout carries only the
    # "listening on http://H:P" line that scripts wait for.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = config_from_args(args)
    try:
        return trio.run(_serve, config)
    except SimulatorBindError as exc:
        print(f"duplex serve: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
