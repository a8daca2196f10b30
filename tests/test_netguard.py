"""The suite's network guard (``tests/_netguard.py``, installed by the root conftest): nothing a
test, the demo or the simulator does resolves or sends beyond this machine (SPEC §8)."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from duplex.cli import main

from ._netguard import NetworkGuard, own_interface_addresses

REPO_ROOT = Path(__file__).resolve().parent.parent
# TEST-NET-3 (RFC 5737): documentation addresses, never this machine's.
OUTSIDE = "203.0.113.7"


def test_resolving_an_outside_name_is_blocked_and_recorded(network_guard: NetworkGuard) -> None:
    with network_guard.expect_blocked() as blocked:
        with pytest.raises(socket.gaierror, match="network guard"):
            socket.getaddrinfo("stun.l.google.com", 19302)
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("example.com")
    assert [(a.call, a.target) for a in blocked] == [
        ("getaddrinfo", "stun.l.google.com"),
        ("gethostbyname", "example.com"),
    ]
    assert "test_resolving_an_outside_name_is_blocked_and_recorded" in blocked[0].stack


def test_connect_and_send_to_an_outside_address_are_blocked(network_guard: NetworkGuard) -> None:
    with network_guard.expect_blocked() as blocked:
        with socket.socket() as tcp, pytest.raises(OSError, match="network guard") as refused:
            tcp.connect((OUTSIDE, 443))
        assert refused.value.errno == errno.ENETUNREACH
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            assert udp.connect_ex((OUTSIDE, 53)) == errno.ENETUNREACH
            with pytest.raises(OSError, match="network guard"):
                udp.sendto(b"x", (OUTSIDE, 3478))
        with (
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6,
            pytest.raises(OSError, match="network guard"),
        ):
            udp6.sendto(b"x", 0, ("::ffff:" + OUTSIDE, 3479))
    targets = [(a.call, a.target) for a in blocked]
    assert ("socket.connect", f"{OUTSIDE}:443") in targets
    assert ("socket.connect_ex", f"{OUTSIDE}:53") in targets
    assert ("socket.sendto", f"{OUTSIDE}:3478") in targets
    assert ("socket.sendto", f"::ffff:{OUTSIDE}:3479") in targets


def test_loopback_and_this_machines_addresses_pass(network_guard: NetworkGuard) -> None:
    with network_guard.expect_blocked() as blocked:
        assert socket.getaddrinfo("localhost", 80)
        assert socket.getaddrinfo(None, 80)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
            receiver.bind(("127.0.0.1", 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"ping", receiver.getsockname())
            assert receiver.recv(16) == b"ping"
    assert blocked == []
    for address in own_interface_addresses():
        assert network_guard.is_local(str(address))
    assert network_guard.is_local("::1")
    assert network_guard.is_local("127.8.9.10")
    assert network_guard.is_local(socket.gethostname())
    assert not network_guard.is_local("224.0.0.251")  # mDNS multicast leaves the machine
    assert not network_guard.is_local("<broadcast>")


def test_attempts_from_another_thread_are_recorded(network_guard: NetworkGuard) -> None:
    errors: list[BaseException] = []

    def resolve(index: int) -> None:
        try:
            socket.getaddrinfo(f"host{index}.example.com", 80)
        except OSError as exc:
            errors.append(exc)

    with network_guard.expect_blocked() as blocked:
        threads = [threading.Thread(target=resolve, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(errors) == 8
    assert sorted(a.target for a in blocked) == sorted(f"host{i}.example.com" for i in range(8))
    assert all(a.thread != threading.current_thread().name for a in blocked)


def test_an_asyncio_datagram_send_is_blocked_before_it_leaves(
    network_guard: NetworkGuard,
) -> None:
    """aioice's path: a datagram endpoint bound locally, then ``transport.sendto`` outside."""
    received: list[Exception] = []

    class Protocol(asyncio.DatagramProtocol):
        def error_received(self, exc: Exception) -> None:
            received.append(exc)

    async def send() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
        try:
            transport.sendto(b"stun binding request", (OUTSIDE, 19302))
        finally:
            transport.close()

    with network_guard.expect_blocked() as blocked:
        asyncio.run(send())
    assert [(a.call, a.target) for a in blocked] == [("socket.sendto", f"{OUTSIDE}:19302")]
    assert [getattr(exc, "errno", None) for exc in received] == [errno.ENETUNREACH]


def test_aiortc_default_configuration_is_caught_reaching_for_public_stun(
    network_guard: NetworkGuard,
) -> None:
    """``RTCPeerConnection()`` without a configuration uses stun.l.google.com: the guard sees
    the lookup of that name and blocks it, so not even the DNS query leaves."""
    aiortc = pytest.importorskip("aiortc")

    async def offer() -> None:
        pc = aiortc.RTCPeerConnection()
        try:
            pc.createDataChannel("probe")
            await pc.setLocalDescription(await pc.createOffer())
        finally:
            await pc.close()

    with network_guard.expect_blocked() as blocked:
        asyncio.run(offer())
    # aioice resolves it with gethostbyname on an executor thread (one per host candidate).
    assert {(a.call, a.target) for a in blocked} == {("gethostbyname", "stun.l.google.com")}


def _pytest_env(*, ci: bool) -> dict[str, str]:
    """The environment for a child pytest: with ``CI`` set pytest prints whole summary lines,
    without it (and a narrow terminal) it cuts them; the assertions hold either way."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER", "COLUMNS")}
    if ci:
        env["CI"] = "1"
    else:
        env["COLUMNS"] = "60"
    return env


@pytest.mark.parametrize("ci", [False, True], ids=["terminal", "ci"])
def test_an_unexpected_attempt_fails_the_test_that_made_it(tmp_path: Path, ci: bool) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        textwrap.dedent(
            r"""
            import socket
            import subprocess
            import sys

            def test_reaches_out():
                try:
                    socket.getaddrinfo("api.openai.com", 443)
                except OSError:
                    pass  # swallowing the error does not hide the attempt

            def test_stays_home():
                socket.getaddrinfo("127.0.0.1", 443)

            CHILD = "import socket\ntry: socket.gethostbyname('example.com')\nexcept OSError: pass"

            def test_child_reaches_out():
                subprocess.run([sys.executable, "-c", CHILD], check=True)
            """
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            str(sample),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=_pytest_env(ci=ci),
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed" in done.stdout
    # The FAILED summary line; pytest appends the message only when the terminal is wide
    # enough or when it detects CI (the `CI` variable), so match the line's start alone.
    assert re.search(r"^FAILED \S*test_sample\.py::test_reaches_out\b", done.stdout, re.MULTILINE)
    assert re.search(r"^FAILED \S*test_sample\.py::test_child_reaches_out\b", done.stdout, re.M)
    assert "FAILED test_sample.py::test_stays_home" not in done.stdout
    assert "network attempt(s) beyond this machine during the test" in done.stdout
    assert "getaddrinfo(api.openai.com)" in done.stdout
    assert "gethostbyname(example.com) on thread 'MainThread (pid " in done.stdout


def test_a_python_subprocess_runs_under_the_guard(network_guard: NetworkGuard) -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('api.openai.com', 443)\n"
        "except OSError as exc:\n"
        "    print(exc)\n"
        "socket.getaddrinfo('127.0.0.1', 443)\n"
    )
    with network_guard.expect_blocked() as blocked:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
    assert "blocked by the test suite's network guard" in done.stdout
    assert [(a.call, a.target) for a in blocked] == [("getaddrinfo", "api.openai.com")]
    assert "(pid " in blocked[0].thread


def test_the_websocket_demo_stays_on_this_machine(
    network_guard: NetworkGuard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``duplex demo`` in-process under the guard: it completes, and nothing was blocked."""
    assert main(["demo", "--transport", "websocket", "--out-dir", str(tmp_path)]) == 0
    assert network_guard.take() == []
    assert "websocket  yes" in capsys.readouterr().out


def test_the_webrtc_demo_stays_on_this_machine(network_guard: NetworkGuard, tmp_path: Path) -> None:
    assert main(["demo", "--transport", "webrtc", "--out-dir", str(tmp_path)]) == 0
    assert network_guard.take() == []
