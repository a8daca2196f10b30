"""``Inbox``: the batch-drained inbound queue behind the memory and WebRTC transports.

Producers (the memory peer, asyncio-side callbacks hopping over through ``TrioPort.call``) put
items synchronously on the trio thread; the single consumer's ``get_batch`` parks until the
first item arrives and then takes the whole list in one swap, so a burst costs one wakeup.

Invariants:
- Items come out in the order they were put.
- ``end()`` queues exactly one ``TransportEnded`` (the first call wins); nothing is accepted
  after it, so it is always the last item. Once the batch holding it was returned,
  ``get_batch`` raises ``TransportClosed``.
- Text is never dropped (structural events must arrive; the producer rate is bounded by the
  peer and the consumer is the engine's always-reading transport actor). Audio is bounded by
  ``audio_limit`` frames waiting: beyond it the newest frame is dropped and counted, because
  an engine that stopped reading must not make a real-time media source grow memory forever.
- Filler audio (silence the transport made up for a sender's pause, ``put_filler``) obeys
  the same bound but counts as nothing the peer sent: not in ``audio_frames_in``, and its
  drops not in ``audio_in_dropped`` (the WebRTC liveness watch reads both as activity).
"""

from __future__ import annotations

import trio

from duplex.protocol._audio import AudioFrame

from ._abc import Counters, Inbound, TransportEnded
from ._errors import TransportClosed

__all__ = ["Inbox"]


class Inbox:
    """An unbounded-for-text, bounded-for-audio FIFO with one batch consumer."""

    __slots__ = (
        "_audio_limit",
        "_audio_waiting",
        "_counters",
        "_ended",
        "_finished",
        "_items",
        "_lot",
    )

    def __init__(self, counters: Counters, *, audio_limit: int = 500) -> None:
        self._counters = counters
        self._audio_limit = audio_limit
        self._audio_waiting = 0
        self._items: list[Inbound] = []
        self._lot = trio.lowlevel.ParkingLot()
        self._ended = False  # a TransportEnded is queued (or was delivered)
        self._finished = False  # the TransportEnded was delivered

    @property
    def ended(self) -> bool:
        """True once ``end()`` was called."""
        return self._ended

    def put_text(self, text: str) -> None:
        if self._ended:
            return
        counters = self._counters
        counters.messages_in += 1
        counters.bytes_in += len(text)
        self._items.append(text)
        self._lot.unpark_all()

    def put_audio(self, frame: AudioFrame) -> None:
        if self._ended:
            return
        if self._audio_waiting >= self._audio_limit:
            self._counters.audio_in_dropped += 1
            return
        self._audio_waiting += 1
        self._counters.audio_frames_in += 1
        self._items.append(frame)
        self._lot.unpark_all()

    def put_filler(self, frames: tuple[AudioFrame, ...]) -> None:
        if self._ended:
            return
        frames = frames[: max(0, self._audio_limit - self._audio_waiting)]
        if frames:
            self._audio_waiting += len(frames)
            self._items.extend(frames)
            self._lot.unpark_all()

    def end(self, ended: TransportEnded) -> None:
        """Queue the final item; later calls (and later puts) are ignored."""
        if self._ended:
            return
        self._ended = True
        self._items.append(ended)
        self._lot.unpark_all()

    async def get_batch(self) -> list[Inbound]:
        if self._finished:
            await trio.lowlevel.checkpoint()  # a looping caller still sees cancellation
            raise TransportClosed("the transport has ended")
        if self._items:
            # Still a checkpoint (trio convention: every async call can be cancelled and
            # yields), but one per batch, not per item.
            await trio.lowlevel.checkpoint()
        while not self._items:
            await self._lot.park()
        items = self._items
        self._items = []
        self._audio_waiting = 0
        if self._ended and isinstance(items[-1], TransportEnded):
            self._finished = True
        self._counters.count_batch(len(items))
        return items
