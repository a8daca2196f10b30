"""``duplex serve``'s flags and runner, through ``add_serve_arguments`` / ``run_serve``."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from duplex.simulator import (
    FaultConfig,
    SimulatorConfig,
    add_serve_arguments,
    config_from_args,
    run_serve,
)

from .._netguard import NetworkGuard


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="duplex serve")
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_the_simulator_defaults() -> None:
    config = config_from_args(_parse())
    assert config == SimulatorConfig(port=8765)


def test_flags_map_onto_config_and_faults() -> None:
    config = config_from_args(
        _parse(
            "--host=0.0.0.0",
            "--port=0",
            "--api-key=sk-local",
            "--seed=7",
            "--speed=0",
            "--handoff-trigger=hand over",
            "--handoff-tool=helper",
            "--silence-trigger=",
            "--reply-prefix=Echo: ",
            "--session-cap=30",
            "--websocket-compression",
            "--no-webrtc-dtx",
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--close-after=5",
            "--close-code=4000",
            "--drop-after=9",
            "--silent-after=11",
            "--garbage=text",
            "--garbage=binary",
            "--event-delay=0.1",
            "--calls-status=503",
            "--calls-location=missing",
            "--sideband-refuse=2",
            "--datachannel-never-opens",
        )
    )
    assert config == SimulatorConfig(
        host="0.0.0.0",
        port=0,
        api_key="sk-local",
        seed=7,
        audio_speedup=0.0,
        trigger_phrase="hand over",
        handoff_tool_name="helper",
        silence_phrase="",
        reply_prefix="Echo: ",
        websocket_compression=True,
        webrtc_dtx=False,
        tls_certfile="c.pem",
        tls_keyfile="k.pem",
        faults=FaultConfig(
            close_after_events=5,
            close_code=4000,
            drop_after_events=9,
            silent_after_frames=11,
            garbage_after_created=("text", "binary"),
            event_delay_s=0.1,
            calls_status=503,
            calls_location="missing",
            sideband_refuse_first=2,
            datachannel_never_opens=True,
            session_max_duration_s=30.0,
        ),
    )


@pytest.mark.parametrize(
    "argv",
    [["--speed=-1"], ["--calls-status=200"], ["--close-code=1006"], ["--garbage=nope"]],
)
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_says_which_base_url_and_how_to_hand_off(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "base_url http://HOST:PORT/v1" in out
    assert "http://127.0.0.1:8765/v1" in out
    assert 'handoff trigger phrase ("delegate" by default' in out
    assert "--session-cap" in out
    assert "--calls-status" in out


def test_busy_port_is_one_line_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = run_serve(_parse(f"--port={port}"))
    err = capsys.readouterr()
    assert status == 1
    assert err.out == ""
    lines = err.err.strip().splitlines()
    assert lines[-1].startswith(f"duplex serve: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in err.err


def test_unknown_host_is_one_line_and_status_1(
    capsys: pytest.CaptureFixture[str], network_guard: NetworkGuard
) -> None:
    # The lookup would leave this machine: the test suite's guard refuses it with the
    # gaierror a failed lookup raises, which is what the message must report.
    with network_guard.expect_blocked() as blocked:
        status = run_serve(_parse("--host=no-such-host.invalid", "--port=0"))
    assert blocked
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err[-1].startswith("duplex serve: cannot listen on no-such-host.invalid:0")


_RUNNER = """
import argparse, sys
from duplex.simulator import add_serve_arguments, run_serve
parser = argparse.ArgumentParser()
add_serve_arguments(parser)
sys.exit(run_serve(parser.parse_args(sys.argv[1:])))
"""


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_serves_with_the_flags_and_ctrl_c_exits_130() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, "--port=0", "--api-key=sk-local", "--seed=5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        base = line.split()[-1] + "/v1"
        with httpx.Client(timeout=10) as http:
            wrong = http.post(
                f"{base}/realtime/client_secrets",
                json={},
                headers={"Authorization": "Bearer sk-other"},
            )
            right = http.post(
                f"{base}/realtime/client_secrets",
                json={},
                headers={"Authorization": "Bearer sk-local"},
            )
        assert wrong.status_code == 401
        assert right.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stdout.read() == ""  # the listening line was the only stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
