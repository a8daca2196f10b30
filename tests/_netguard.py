"""The suite's network guard: nothing is resolved or sent beyond this machine (SPEC §8).

``NetworkGuard.install()`` wraps, process-wide, every door a packet or a DNS query leaves by:

- name resolution: ``socket.getaddrinfo`` (trio's and asyncio's resolvers call it),
  ``gethostbyname`` (aioice resolves its STUN server with it), ``gethostbyname_ex``,
  ``gethostbyaddr``, ``getnameinfo``;
- sockets: ``socket.socket.connect``/``connect_ex`` (TCP, and asyncio's connected datagram
  endpoints), ``sendto``/``sendmsg`` (asyncio's datagram transports — aioice's STUN and ICE
  packets — end in ``sock.sendto`` on the aiortc bridge thread), and ``bind`` with a host *name*
  (the C library would resolve it).

A target is allowed when it is loopback (127.0.0.0/8, ::1, ``localhost``), unspecified
(``0.0.0.0``/``::``: the local host), this machine's own name, or an address one of this
machine's interfaces has — ICE needs those (aioice offers no loopback host candidates), and
the interfaces are enumerated with ``ifaddr``, the very list aioice takes its host candidates
from. Anything else is *blocked*, not just noted: resolution raises ``socket.gaierror`` and a
send or connect fails with ``ENETUNREACH``, so nothing leaves; the attempt (call, target,
thread, stack) is recorded under a lock, since the aiortc bridge thread and resolver threads
make attempts too.

``take()`` hands the recorded attempts to whoever reports them (the root conftest fails the
test phase that made them); inside ``expect_blocked()`` attempts are collected for the test
that provokes them on purpose instead.

Child processes: ``guard_this_process(LOG)`` installs a guard that appends each attempt to the
file LOG as a JSON line, and ``watch(LOG)`` makes a parent's guard report those lines as its
own attempts (into ``expect_blocked`` when one is open as they are read). The root conftest
has every Python subprocess do this at start-up (``_netguard_site/sitecustomize.py`` on
``PYTHONPATH``). Processes that are not Python (node, Chromium) are not covered; they are
given loopback addresses only.

Run as a script, ``python tests/_netguard.py LOG MODULE [ARGS…]`` runs ``python -m MODULE
ARGS…`` under the guard and appends each attempt to the file LOG: the CLI tests run the
console script this way and read the log themselves.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Attempt", "NetworkGuard"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")
SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg", "bind")
INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@dataclass(frozen=True)
class Attempt:
    """One blocked attempt to resolve or reach a host beyond this machine."""

    call: str  # "getaddrinfo", "socket.connect", …
    target: str  # what it tried to reach, e.g. "stun.l.google.com" or "8.8.8.8:53"
    thread: str
    stack: str  # where the attempt was made, innermost frame last

    def describe(self) -> str:
        return f"{self.call}({self.target}) on thread {self.thread!r}\n{self.stack}"


def own_interface_addresses() -> frozenset[IPAddress]:
    """Every address this machine's interfaces have (what aioice builds host candidates from)."""
    found: set[IPAddress] = set()
    for raw in _interface_addresses():
        with contextlib.suppress(ValueError):
            found.add(ipaddress.ip_address(raw.split("%", 1)[0]))
    with contextlib.suppress(OSError):  # the host name's own addresses (from /etc/hosts)
        for address in socket.gethostbyname_ex(socket.gethostname())[2]:
            found.add(ipaddress.ip_address(address))
    return frozenset(found)


def _interface_addresses() -> list[str]:
    try:
        import ifaddr  # aioice's own interface enumeration (a dependency of aiortc)
    except ImportError:  # no WebRTC extra: then nothing needs more than loopback
        return []
    return [
        ip.ip if isinstance(ip.ip, str) else ip.ip[0]
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
    ]


class NetworkGuard:
    """Blocks and records resolution of, and traffic to, anything but this machine."""

    def __init__(
        self,
        own_addresses: frozenset[IPAddress] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        self._own = own_interface_addresses() if own_addresses is None else own_addresses
        self._names = LOCAL_NAMES | {socket.gethostname().lower()}
        self._on_attempt = on_attempt
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []
        self._expected: list[list[Attempt]] = []
        self._originals: dict[tuple[Any, str], Any] = {}
        self._watched: list[tuple[str, int]] = []  # children's logs, and how far they were read

    # -- policy ---------------------------------------------------------------------------

    def is_local(self, host: object) -> bool:
        """Whether ``host`` (a name or an address literal, as sockets take it) is this machine."""
        if host is None:
            return True
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return False
        if host == "":
            return True  # INADDR_ANY
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 scope id
        except ValueError:
            name = host.lower().rstrip(".")
            return name in self._names or name.endswith(".localhost")
        return self._is_local_address(address)

    def _is_local_address(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback or address.is_unspecified or address in self._own

    # -- recording ------------------------------------------------------------------------

    def _record(self, call: str, target: str) -> str:
        attempt = Attempt(
            call=call,
            target=target,
            thread=threading.current_thread().name,
            stack="".join(traceback.format_stack()[:-2]),  # up to the guarded call
        )
        with self._lock:
            (self._expected[-1] if self._expected else self._attempts).append(attempt)
        if self._on_attempt is not None:
            self._on_attempt(attempt)
        return f"blocked by the test suite's network guard: {call}({target}) leaves this machine"

    def watch(self, log_path: str) -> None:
        """Also report the attempts child processes append to ``log_path``
        (``guard_this_process``), as if made here when they are read."""
        with self._lock:
            self._watched.append((log_path, 0))

    def _read_children(self) -> None:
        # Under self._lock. A line is complete once its newline is there (each child appends
        # whole lines under its own lock); a partial last line is read next time.
        for index, (path, offset) in enumerate(self._watched):
            try:
                with open(path, "rb") as file:
                    file.seek(offset)
                    data = file.read()
            except FileNotFoundError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self._watched[index] = (path, offset + len(complete))
            for line in complete.splitlines():
                attempt = Attempt(**json.loads(line))
                (self._expected[-1] if self._expected else self._attempts).append(attempt)

    def take(self) -> list[Attempt]:
        """The attempts recorded since the last ``take()`` (outside ``expect_blocked``)."""
        with self._lock:
            self._read_children()
            taken, self._attempts = self._attempts, []
        return taken

    @contextlib.contextmanager
    def expect_blocked(self) -> Iterator[list[Attempt]]:
        """Collect the attempts made (by any thread) inside the block into the yielded list."""
        collected: list[Attempt] = []
        with self._lock:
            self._expected.append(collected)
        try:
            yield collected
        finally:
            with self._lock:
                self._read_children()
                self._expected.remove(collected)

    # -- the wrappers ---------------------------------------------------------------------

    def _resolver(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def resolve(host: object, *args: Any, **kwargs: Any) -> Any:
            target = host[0] if name == "getnameinfo" and isinstance(host, tuple) else host
            if isinstance(target, bytes):
                target = target.decode("ascii", "replace")
            # Resolving an address literal asks no resolver: what is then done with the
            # address (connect, sendto) is checked on its own.
            if not guard.is_local(target) and not _is_address_literal(target):
                message = guard._record(name, str(target))
                raise socket.gaierror(socket.EAI_NONAME, message)
            return original(host, *args, **kwargs)

        return resolve

    def _socket_method(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def guarded(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            address = _destination(name, args, kwargs)
            if sock.family in INET_FAMILIES and isinstance(address, tuple) and address:
                host = address[0]
                literal = _is_address_literal(host)
                # bind() sends nothing: only a host name there (a DNS query) is checked.
                if (name != "bind" or not literal) and not guard.is_local(host):
                    message = guard._record(f"socket.{name}", _format_target(address))
                    if not literal:
                        raise socket.gaierror(socket.EAI_NONAME, message)
                    if name == "connect_ex":  # reports errors as its return value
                        return errno.ENETUNREACH
                    raise OSError(errno.ENETUNREACH, message)
            return original(sock, *args, **kwargs)

        return guarded

    def install(self) -> None:
        """Wrap the resolvers and socket methods (idempotent)."""
        if self._originals:
            return
        for name in RESOLVERS:
            original = getattr(socket, name)
            self._originals[(socket, name)] = original
            setattr(socket, name, self._resolver(name, original))
        for name in SOCKET_METHODS:
            original = getattr(socket.socket, name)
            self._originals[(socket.socket, name)] = original
            setattr(socket.socket, name, self._socket_method(name, original))

    def uninstall(self) -> None:
        """Restore what ``install`` wrapped."""
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()


def _destination(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """The address argument of ``socket.<name>(*args, **kwargs)``, or None."""
    if name in ("connect", "connect_ex", "bind"):
        return args[0] if args else kwargs.get("address")
    if name == "sendto":  # sendto(data, address) or sendto(data, flags, address)
        return args[-1] if len(args) >= 2 else kwargs.get("address")
    # sendmsg(buffers, ancdata=(), flags=0, address=None)
    return args[3] if len(args) >= 4 else kwargs.get("address")


def _is_address_literal(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host in ("", "<broadcast>")
    return True


def _format_target(address: tuple[Any, ...]) -> str:
    return f"{address[0]}:{address[1]}" if len(address) >= 2 else str(address[0])


def guard_this_process(log_path: str) -> NetworkGuard:
    """Install a guard in this process that appends each attempt to ``log_path`` as a JSON
    line (for a parent to read back with ``NetworkGuard.watch``)."""
    log_lock = threading.Lock()
    pid = os.getpid()

    def log(attempt: Attempt) -> None:
        line = json.dumps(asdict(attempt) | {"thread": f"{attempt.thread} (pid {pid})"})
        with log_lock, open(log_path, "a", encoding="utf-8") as file:
            file.write(line + "\n")

    guard = NetworkGuard(on_attempt=log)
    guard.install()
    return guard


def _run_guarded(log_path: str, module: str, args: list[str]) -> None:
    """``python -m module args…`` under the guard, logging each attempt to ``log_path``."""
    import runpy
    import sys

    guard_this_process(log_path)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    import sys

    # This folder is on sys.path as the script's own: drop it, so tests/<name>/ folders cannot
    # shadow a top-level module the program imports.
    del sys.path[0]
    _run_guarded(sys.argv[1], sys.argv[2], sys.argv[3:])
