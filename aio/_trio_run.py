"""The trio run that serves asyncio hosts: guest mode on the host's loop, or a thread.

``TrioRun`` is one trio run with one nursery; every ``duplex.aio`` engine of an asyncio loop
runs its trio side as a task in it. Two ways to run it, one interface:

- ``"guest"`` (the default): ``trio.lowlevel.start_guest_run`` on the running asyncio loop.
  trio's scheduler ticks as asyncio callbacks on the loop's thread; only trio's blocking I/O
  wait runs on a helper thread of trio's own (its thread cache), which wakes the loop with
  ``call_soon_threadsafe``. One guest run per loop, shared by all its engines, started by the
  first engine and ended when the last one closes.
- ``"thread"``: ``trio.run`` on a dedicated thread per loop; results come back with
  ``loop.call_soon_threadsafe``. For loops that cannot host a guest run.

Why guest mode (measured, docs/aio.md): CPU per event, burst of 10 000 server events, medians
of 5 interleaved rounds on a loaded 2-core machine: trio host 15.0 µs, guest 20.5–21.7,
thread 17.4–22.7, openai-agents 28.8–32.6. Paced (50 conversations × 50 events/s): trio host
≈ 60 µs, guest ≈ 72–89, thread ≈ 93–105, openai-agents ≈ 68–88. Guest is as cheap as the
thread (each wake of an idle trio costs one round trip through trio's I/O thread in guest
mode, one hop plus GIL hand-offs with a thread), keeps every Python callback on the loop's
thread, and shares one run per loop.

Invariants:
- ``submit(fn)`` runs ``fn()`` in trio context (any thread may call it); ``deliver(fn)`` runs
  ``fn()`` on the asyncio loop's thread (only trio-side code calls it). In guest mode the
  trio side already runs on the loop's thread, so ``deliver`` is a direct call.
- Signals stay with the host: trio never installs its SIGINT handler (a thread never does; a
  guest run is started while SIGINT has a non-default handler, see ``_keep_sigint``), and the
  guest run is told the host owns ``signal.set_wakeup_fd``.
- A ``KeyboardInterrupt`` or ``SystemExit`` raised in trio code (a host's signal handler
  raises it in whatever code runs on the loop's thread, trio's included) is the host's: it is
  handed back (``host_interrupt``, ``raise_in_host``) and never ends the shared run silently.
- A run ends only when its last user released it; ``release`` waits for the end, so after the
  last engine's block no task of it is left (in ``"thread"`` mode the thread is joined).
- At most one run per loop and mechanism is alive: a run stays registered in ``_RUNS`` until
  it has ended, so an ``acquire_run`` that finds it ending waits for that end before starting
  the next (two guest runs on one thread are refused by trio), and a run is registered only
  once it has begun (one that failed to begin can strand no later caller).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Literal

import trio

__all__ = ["Mechanism", "TrioRun", "acquire_run", "host_interrupt", "settle", "wait_settled"]

logger = logging.getLogger(__name__)

Mechanism = Literal["guest", "thread"]

# The run of each loop (and mechanism), from its start until it has ended (also while it is
# ending, so nobody starts a second one meanwhile). Keyed by the loop's id: entries are removed
# when their run ends, so no loop is kept alive by this table.
_RUNS: dict[tuple[int, Mechanism], TrioRun] = {}


class TrioRun:
    """One trio run (guest or thread) with a nursery that engines spawn their tasks into."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mechanism: Mechanism) -> None:
        self.loop = loop
        self.mechanism = mechanism
        self.nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._users = 0
        # Set when the last user left: the run is ending and takes no new user.
        self._ending = False
        self._stop: trio.Event | None = None
        self._ready: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._thread: threading.Thread | None = None
        self.deliver: Callable[..., Any] = (
            _call_now if mechanism == "guest" else loop.call_soon_threadsafe
        )

    # ---- lifecycle (asyncio side) -------------------------------------------------------

    def _begin(self) -> None:
        if self.mechanism == "guest":
            with _keep_sigint():
                trio.lowlevel.start_guest_run(
                    self._main,
                    run_sync_soon_threadsafe=self.loop.call_soon_threadsafe,
                    run_sync_soon_not_threadsafe=self.loop.call_soon,
                    done_callback=self._finished,
                    host_uses_signal_set_wakeup_fd=True,
                    restrict_keyboard_interrupt_to_checkpoints=True,
                )
        else:
            self._thread = threading.Thread(
                target=self._thread_main, name="duplex-aio-trio", daemon=True
            )
            self._thread.start()

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.loop.call_soon_threadsafe(self._failed, exc)
        finally:
            self.loop.call_soon_threadsafe(self._mark_ended)

    def _finished(self, outcome: Any) -> None:
        # The guest run's done_callback, on the loop's thread.
        try:
            outcome.unwrap()
        except BaseException as exc:
            self._failed(exc)
        self._mark_ended()

    def _failed(self, exc: BaseException) -> None:
        """The run ended by itself with ``exc`` (on the loop's thread). A KeyboardInterrupt or
        SystemExit that reached trio's scheduler (trio makes it a TrioInternalError) is the
        host's: raised there. Anything else is a bug, logged. A caller still waiting for the
        run to start gets it either way; the engines of the run end (they watch ``_ended``)."""
        interrupt = host_interrupt(exc)
        if interrupt is None:
            logger.error("duplex.aio: the trio run failed", exc_info=exc)
        if not self._ready.done():
            settle(self._ready, interrupt or exc)
        elif interrupt is not None:
            self.raise_in_host(interrupt)

    def _mark_ended(self) -> None:
        # On the loop's thread. Unregistered in the same step as ``_ended`` settles, so an
        # ``acquire_run`` that saw the end never finds this run in the table again.
        key = (id(self.loop), self.mechanism)
        if _RUNS.get(key) is self:
            del _RUNS[key]
        settle(self._ended, None)

    async def acquire(self) -> None:
        assert not self._ending  # acquire_run never hands out an ending run
        self._users += 1
        try:
            await asyncio.shield(self._ready)
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        """Drop one user; the last one ends the run and waits until it has ended."""
        self._users -= 1
        if self._users > 0:
            return
        # It stays registered until it has ended: a new user meanwhile waits for that end
        # (``acquire_run``) instead of starting a second run beside this one.
        self._ending = True
        await wait_settled(self._ready)  # a run still starting is ended once it has started
        self.submit(self._request_stop, retry=True)
        await wait_settled(self._ended)
        if self._thread is not None:
            self._thread.join()  # it has returned from trio.run; only its exit remains

    # ---- crossing over ------------------------------------------------------------------

    def submit(self, fn: Callable[[], object], *, retry: bool = False) -> None:
        """Run ``fn()`` in trio context soon (thread-safe; ignored once the run has ended).

        ``retry``: ``fn`` must run to its end and may run twice (it checks itself): if a
        KeyboardInterrupt lands in it, it is submitted again after the interrupt goes to the
        host — its work (spawning a call, asking an engine to exit) would otherwise be lost
        and whoever waits for it would wait for ever."""
        token = self._token
        if token is None:
            return
        with suppress(trio.RunFinishedError):
            token.run_sync_soon(self._guarded, fn, retry)

    def _guarded(self, fn: Callable[[], object], retry: bool) -> None:
        # trio ends the whole run when a run_sync_soon callback raises; a KeyboardInterrupt
        # that lands in one belongs to the host, not to every engine of the loop.
        try:
            fn()
        except BaseException as exc:
            interrupt = host_interrupt(exc)
            if interrupt is None:
                raise
            self.raise_in_host(interrupt)
            if retry:
                self.submit(fn, retry=True)

    def raise_in_host(self, exc: BaseException) -> None:
        """Raise ``exc`` (a KeyboardInterrupt or SystemExit) in a callback of the host's loop
        (any thread may call this): it escapes ``run_forever``/``run_until_complete`` as one
        landing in any asyncio callback does."""
        self.loop.call_soon_threadsafe(_raise, exc)

    # ---- trio side ----------------------------------------------------------------------

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self.deliver(settle, self._ready, None)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()


async def acquire_run(mechanism: Mechanism) -> TrioRun:
    """The running loop's trio run for ``mechanism`` (started if needed), with one more user."""
    loop = asyncio.get_running_loop()
    key = (id(loop), mechanism)
    while True:
        run = _RUNS.get(key)
        if run is None or run.loop is not loop:
            break
        if not run._ending:
            await run.acquire()
            return run
        # The last engine of this run is leaving and waits for the run to end; a guest run
        # started now would be trio's second on this thread. Wait for the end (cancellable:
        # nothing of ours is pending here), then look again: another caller may have started
        # the next run meanwhile.
        await asyncio.shield(run._ended)
    run = TrioRun(loop, mechanism)
    try:
        run._begin()
    except BaseException as exc:
        # Never registered, so nobody else waits on it; settled for completeness.
        settle(run._ready, exc)
        run._ready.exception()  # retrieved: it is raised to this caller below
        settle(run._ended, None)
        raise
    _RUNS[key] = run
    await run.acquire()
    return run


# ---- helpers ------------------------------------------------------------------------------


def _call_now(fn: Callable[..., object], *args: Any) -> None:
    fn(*args)


def _raise(exc: BaseException) -> None:
    raise exc


def host_interrupt(exc: BaseException) -> BaseException | None:
    """The ``KeyboardInterrupt`` or ``SystemExit`` that ``exc`` carries, if any: ``exc``
    itself, a leaf of its group (trio's nurseries wrap it), or what a ``TrioInternalError`` was
    raised from (trio's scheduler wraps one that lands in it)."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for leaf in exc.exceptions:
            found = host_interrupt(leaf)
            if found is not None:
                return found
    if isinstance(exc, trio.TrioInternalError):
        for origin in (exc.__cause__, exc.__context__):
            if origin is not None:
                found = host_interrupt(origin)
                if found is not None:
                    return found
    return None


def settle(future: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``future`` with ``value`` (an exception instance is raised) unless it is done."""
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


async def wait_settled(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, even through cancellation of the waiting task.

    Used where the trio side must finish first (its own cancellation is bounded by the
    engine's close timeout); a cancellation that arrived meanwhile is re-raised afterwards.
    """
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


def _forward_sigint(signum: int, frame: Any) -> None:
    signal.default_int_handler(signum, frame)


@contextmanager
def _keep_sigint() -> Iterator[None]:
    """Start a guest run without letting trio take SIGINT.

    trio installs its KeyboardInterrupt handler only when SIGINT still has Python's default
    handler (``asyncio.run`` and uvicorn install their own, so there it never does). For a
    host that kept the default, a forwarding handler stands in while the run starts, and the
    default is put back at once: Ctrl-C then raises ``KeyboardInterrupt`` in the host's code as
    it would without duplex.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _forward_sigint)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is _forward_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
