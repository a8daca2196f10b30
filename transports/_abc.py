"""The ``Transport`` interface every connection type implements, its inbound item types and
its statistics snapshot.

A transport moves *frames*, not events: text frames (one JSON event each, undecoded) and, on
audio-native transports, decoded ``AudioFrame``s. Parsing belongs to ``protocol``; lifecycle
decisions belong to the engine.

Invariants (checked by ``tests/transports/conformance.py`` for every implementation):
- ``receive_batch()`` waits until at least one inbound item exists, then returns *everything*
  already available without waiting again (SPEC §3 hot-path rule: one scheduler round trip per
  wakeup, not per message). Items are in arrival order.
- Exactly one ``TransportEnded`` is delivered, as the last item of the last batch, whatever
  ended the transport (peer close, drop, read error, ICE failure, local ``aclose()``). After it,
  ``receive_batch()`` raises ``TransportClosed``.
- ``send_text`` never waits on reading. It raises ``TransportClosed`` once the transport ended.
- ``aclose()`` is idempotent and never raises for an already-dead connection.
- A frame the transport cannot carry upward (a binary WebSocket frame) is dropped and counted
  in ``TransportStatistics.binary_frames_dropped``; it never ends the transport.

How a transport ended — one rule for every transport (``TransportEnded``):
- ``reason="requested"``: ``aclose()`` was called here. ``error`` is ``None``.
- ``reason="closed"``: the peer ended the connection gracefully: a WebSocket close handshake
  with code 1000, 1001 or 1005 (no code), a WebRTC call the peer hung up (its data channel
  or peer connection closed in order), a memory peer's ``close(1000)``. ``error`` is
  ``None``.
- ``reason="error"``: everything else: a drop without a close handshake (1006), a close
  with any other code (1002 protocol error, 1011 server error, 4000+ application codes),
  a protocol violation by the peer (invalid UTF-8, masked or RSV-flagged frames, a bad
  close code, an oversized ping: the code wsproto fails the connection with), an oversized
  message (1009), no liveness within ``liveness_timeout`` (keepalive, dead WebRTC peer),
  ICE/DTLS failure, sideband join exhausted. ``error`` is always a message then.
- ``code`` is a plain ``int`` (never an enum): the WebSocket close code when the end came
  from a WebSocket (sideband included), else ``None``.
- ``error`` never contains a secret or a raw control character: text from the server
  passes ``_errors.server_text``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Final, Literal, Protocol, TypeAlias, final

import attrs

from duplex.protocol._audio import AudioFrame

__all__ = [
    "Inbound",
    "LoopWatch",
    "Transport",
    "TransportEnded",
    "TransportKind",
    "TransportStatistics",
]

TransportKind: TypeAlias = Literal["websocket", "webrtc", "memory"]

#: WebSocket close codes that end a connection gracefully (``TransportEnded`` "closed").
GRACEFUL_CLOSE_CODES: Final = frozenset({1000, 1001, 1005})

#: ``TransportEnded.reason`` values.
ENDED_REQUESTED: Final = "requested"  # local aclose()
ENDED_CLOSED: Final = "closed"  # the peer closed cleanly (a close frame, a data channel close)
ENDED_ERROR: Final = "error"  # everything else: drops, read errors, ICE failure, oversize


@final
@attrs.frozen(slots=True)
class TransportEnded:
    """The last inbound item of a transport.

    See the module docstring for the rule every transport follows.

    Attributes:
        reason: ``"requested"`` (``aclose()`` was called here), ``"closed"`` (the peer closed
            gracefully), or ``"error"`` (everything else).
        code: the WebSocket close code (a plain ``int``) when one is known (1006 for a drop
            without a close frame, 1009 for an oversized message), else ``None``.
        error: what went wrong, set exactly when ``reason == "error"``. Never contains a
            secret or a raw control character.
    """

    reason: str
    code: int | None = None
    error: str | None = None


def ended_by_peer_close(code: int, detail: str | None) -> TransportEnded:
    """The end after the peer's close handshake with ``code``: graceful for 1000/1001/1005,
    an error otherwise (``detail``: the peer's reason text, already made safe)."""
    code = int(code)
    if code in GRACEFUL_CLOSE_CODES:
        return TransportEnded(ENDED_CLOSED, code, None)
    message = f"the server closed the connection with code {code}"
    return TransportEnded(ENDED_ERROR, code, f"{message}: {detail}" if detail else message)


#: What ``receive_batch`` yields: a text frame (one undecoded JSON event), a decoded audio
#: frame (audio-native transports only; 24 kHz mono PCM16), or the final ``TransportEnded``.
Inbound: TypeAlias = str | AudioFrame | TransportEnded


@final
@attrs.frozen(slots=True)
class TransportStatistics:
    """A snapshot of a transport's counters.

    ``bytes_*`` count text payload length in characters (the wire carries UTF-8; the realtime
    protocol's JSON is ASCII except inside transcripts, and counting characters avoids an
    encode per message). Audio is counted in frames, not in ``bytes_*``.

    Drops (SPEC §8: nothing lost silently; an engine adds these to its own statistics):
    ``audio_in_dropped``: inbound audio frames dropped because the consumer fell behind;
    ``audio_out_dropped``: host audio the WebRTC outbound track dropped because the host sent
    faster than real time (counted in 20 ms frames of the track, not in host frames);
    ``binary_frames_dropped``: binary frames (no event in them) dropped, sideband included.
    """

    kind: TransportKind
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    batches_in: int = 0
    largest_batch: int = 0
    audio_frames_in: int = 0
    audio_frames_out: int = 0
    audio_in_dropped: int = 0
    audio_out_dropped: int = 0
    binary_frames_dropped: int = 0
    outbound_queued: int = 0


class Counters:
    """Mutable counters behind ``TransportStatistics`` (plain attributes: the hot path
    increments them, so no properties and no locking; everything runs on the trio thread)."""

    __slots__ = (
        "audio_frames_in",
        "audio_frames_out",
        "audio_in_dropped",
        "audio_out_dropped",
        "batches_in",
        "binary_frames_dropped",
        "bytes_in",
        "bytes_out",
        "largest_batch",
        "messages_in",
        "messages_out",
    )

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.batches_in = 0
        self.largest_batch = 0
        self.audio_frames_in = 0
        self.audio_frames_out = 0
        self.audio_in_dropped = 0
        self.audio_out_dropped = 0
        self.binary_frames_dropped = 0

    def count_batch(self, size: int) -> None:
        self.batches_in += 1
        if size > self.largest_batch:
            self.largest_batch = size

    def snapshot(self, kind: TransportKind, *, outbound_queued: int = 0) -> TransportStatistics:
        return TransportStatistics(
            kind=kind,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            batches_in=self.batches_in,
            largest_batch=self.largest_batch,
            audio_frames_in=self.audio_frames_in,
            audio_frames_out=self.audio_frames_out,
            audio_in_dropped=self.audio_in_dropped,
            audio_out_dropped=self.audio_out_dropped,
            binary_frames_dropped=self.binary_frames_dropped,
            outbound_queued=outbound_queued,
        )


class LoopWatch(Protocol):
    """A host event loop that watches a descriptor for readability (``duplex.aio``: the
    asyncio loop that hosts the trio run). Called only on the loop's own thread."""

    def watch(self, fd: int, ready: Callable[[], object]) -> bool:
        """Call ``ready()`` on the loop whenever ``fd`` is readable (level-triggered);
        False when this loop cannot watch descriptors."""

    def unwatch(self, fd: int) -> None:
        """Stop calling for ``fd`` (idempotent)."""


class Transport(abc.ABC):
    """One realtime connection, as the engine's transport actor sees it.

    Exactly one task should call ``receive_batch`` at a time; ``send_text``/``send_audio``
    may be called from another task concurrently (sends never wait on reads).
    """

    @property
    @abc.abstractmethod
    def kind(self) -> TransportKind:
        """``"websocket"``, ``"webrtc"`` or ``"memory"``."""

    @property
    @abc.abstractmethod
    def audio_native(self) -> bool:
        """True when audio travels outside the JSON events (WebRTC RTP): the engine then
        calls ``send_audio`` and receives ``AudioFrame`` items. False for WebSocket, where the
        engine itself sends ``input_audio_buffer.append`` and parses audio deltas."""

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """Send one text frame (one JSON event).

        Raises:
            TransportClosed: the transport has ended or was closed.
        """

    @abc.abstractmethod
    async def send_audio(self, frame: AudioFrame) -> None:
        """Queue host audio for the media track (audio-native transports only).

        Raises:
            TypeError: the transport is not audio-native.
            TransportClosed: the transport has ended or was closed.
        """

    @property
    def max_text_bytes(self) -> int | None:
        """The largest text frame (UTF-8 bytes) the peer takes, when it states one: a
        WebRTC data channel's ``a=max-message-size``. ``send_text`` refuses a larger frame
        (``MessageTooLarge``) and the transport goes on. ``None``: no limit known here."""
        return None

    def offer_audio(self, frame: AudioFrame) -> bool:
        """Hand ``frame`` (24 kHz mono PCM16, whole samples) to the media track at once, when
        this transport can without waiting; False when it cannot (the default, and an ended
        transport), and the caller then uses ``send_audio``, which reports why. Saves the
        engine a task switch per host frame on a transport whose media queue never blocks."""
        return False

    @abc.abstractmethod
    async def receive_batch(self) -> list[Inbound]:
        """Wait for at least one inbound item, then return all items already available.

        Raises:
            TransportClosed: the ``TransportEnded`` item was already delivered.
        """

    # ---- reading on the host's event loop (``duplex.aio`` in guest mode) ----------------
    # The consumer of ``receive_batch`` may instead be called by the host's loop when the
    # connection is readable and take what is there without waiting, so no trio wake-up is
    # spent per event. A transport that cannot (the default) says so and the consumer
    # stays with ``receive_batch``.

    def read_on(self, loop: LoopWatch, ready: Callable[[], object]) -> bool:
        """Have ``loop`` call ``ready()`` whenever data may be there to take with
        ``receive_batch_nowait``, until ``stop_reading_on()`` (or the transport closes, which
        stops it and calls ``ready()`` once more). False when this transport cannot, or has
        something a ``receive_batch`` must deliver first."""
        return False

    def stop_reading_on(self) -> None:  # noqa: B027 — nothing to stop unless read_on can start
        """Stop what ``read_on`` started (idempotent)."""

    def receive_batch_nowait(self) -> list[Inbound] | None:
        """What ``receive_batch`` would return at once, without waiting and without a
        checkpoint: ``[]`` when nothing is there yet, ``None`` when only ``receive_batch`` can
        go on (the end, a control frame to answer, another reader). Never raises."""
        return None

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection (idempotent). A later ``receive_batch`` delivers
        ``TransportEnded(reason="requested")`` unless the transport had already ended."""

    @abc.abstractmethod
    def statistics(self) -> TransportStatistics:
        """A snapshot of the counters."""
