"""The engine's boundary: one mapping from what leaves its tasks to what a host sees.

``host_exception`` is the only place where an exception (or an exception group) leaving
``open_engine``'s nursery or a ``start()`` becomes what the host catches: never a group,
never a trio internal; a failed start is a ``ConversationStartError`` naming the URL.
``tests/engine/test_engine_exception_mapping.py`` walks its table.
"""

from __future__ import annotations

import trio

from duplex.transports import TransportError

from ._errors import ConversationStartError, EngineError

__all__ = ["host_exception"]


def host_exception(
    exc: BaseException,
    *,
    host_error: BaseException | None = None,
    start_url: str | None = None,
    connect_timeout: float | None = None,
) -> BaseException:
    """The one exception a host sees for ``exc`` (an exception or an exception group)
    leaving the engine — from ``open_engine``'s nursery or from a ``start()``.

    The table, first match wins, over the group's leaves:

    ==========================================  ============================================
    leaf                                         the host sees
    ==========================================  ============================================
    ``KeyboardInterrupt`` / ``SystemExit``       itself
    (anything, when the host's own code raised)  the host's exception, as itself
    ``EngineError``                              itself
    ``trio.Cancelled``                           itself: the scope that cancelled catches it
    ``TransportError`` (start)                   ``ConversationStartError`` (status, URL)
    ``trio.TooSlowError`` (start)                ``ConversationStartError`` (timed out)
    anything else (start)                        ``ConversationStartError`` (``__cause__``)
    anything else (engine task)                  ``EngineError("internal error …")``
    ==========================================  ============================================
    """
    leaves = _leaves(exc)
    from_host: set[int] = set()
    if host_error is not None:
        from_host.add(id(host_error))
        from_host.update(id(leaf) for leaf in _leaves(host_error))
    own = [leaf for leaf in leaves if id(leaf) not in from_host]
    for leaf in own:
        if isinstance(leaf, KeyboardInterrupt | SystemExit):
            return leaf
    if host_error is not None:
        return host_error  # the host's own exception (a group only if the host raised one)
    for leaf in own:
        if isinstance(leaf, EngineError):
            return leaf
    for leaf in own:
        if isinstance(leaf, trio.Cancelled):
            return leaf
    if start_url is not None:
        for leaf in own:
            if isinstance(leaf, TransportError):
                return _cause(_transport_start_error(leaf, start_url, connect_timeout), leaf)
        for leaf in own:
            if isinstance(leaf, trio.TooSlowError):
                timeout = f" after {connect_timeout:g} s" if connect_timeout is not None else ""
                return _cause(
                    ConversationStartError(
                        f"connecting to {start_url} timed out{timeout} "
                        "(EngineConfig.connect_timeout)",
                        url=start_url,
                    ),
                    leaf,
                )
        first = own[0] if own else exc
        return _cause(
            ConversationStartError(
                f"starting the conversation with {start_url} failed: "
                f"{type(first).__name__}: {first}",
                url=start_url,
            ),
            first,
        )
    if own:
        return _cause(EngineError(f"internal error: {type(own[0]).__name__}: {own[0]}"), own[0])
    return exc


def _cause(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def _leaves(exc: BaseException) -> list[BaseException]:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(exc)
    return leaves


def _transport_start_error(
    exc: TransportError, url: str, timeout: float | None = None
) -> ConversationStartError:
    message = f"connecting to {url} failed: {exc}"
    if timeout is not None and "timed out" in str(exc) and f"{timeout:g} s" not in str(exc):
        message += f" (EngineConfig.connect_timeout = {timeout:g} s)"
    return ConversationStartError(message, status=getattr(exc, "status", None), url=url)
